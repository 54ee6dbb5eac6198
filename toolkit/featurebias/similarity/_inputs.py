"""Boundary checks and float64 helpers shared by the similarity measures.

Rows are stimuli and columns are units: activations `[n, ...]` are flattened to `[n, p]`, so a
conv map `[n, c, h, w]` becomes `[n, c·h·w]`. The two representations of a pair must have the
same `n` (the same stimuli) but may differ in width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import _validate as check
from ..erasure.linalg import symmetric_product
from ..errors import ConfigError, DTypeError, LabelError, RangeError, ShapeError

F64 = torch.float64
CHUNK_ELEMENTS = 1 << 22  # rows per chunk × width: ~32 MiB of float64 per chunk


def matrix(x, name: str = "x", *, min_rows: int = 2) -> Tensor:
    """Activations `[n, ...]` as a finite floating matrix `[n, p]` (non-floats become float64)."""
    x = check.as_tensor(x, name)
    if isinstance(x, Tensor):
        x = x.detach()
    if x.ndim < 2:
        raise ShapeError(f"{name} has shape {tuple(x.shape)}; expected [n, p] (rows are stimuli, "
                         "columns units) or [n, ...]")
    if x.is_complex():
        raise DTypeError(f"{name} has dtype {x.dtype}; expected real values")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] == 0:
        raise ShapeError(f"{name} has shape {tuple(x.shape)}; expected at least one column")
    if x.shape[0] < min_rows:
        raise ShapeError(f"{name} has {x.shape[0]} rows; expected at least {min_rows} stimuli")
    if not x.is_floating_point():
        x = x.to(F64)
    check.check_finite(x, name)
    return x


def pair(x, y, *, min_rows: int = 2, names: tuple[str, str] = ("x", "y")) -> tuple[Tensor, Tensor]:
    """Validate two representations of the same stimuli: `[n, p]` and `[n, q]`."""
    x = matrix(x, names[0], min_rows=min_rows)
    y = matrix(y, names[1], min_rows=min_rows)
    if x.shape[0] != y.shape[0]:
        raise ShapeError(f"{names[0]} has {x.shape[0]} rows but {names[1]} has {y.shape[0]}; "
                         "expected the same stimuli (rows) in both")
    check.same_device((names[0], x), (names[1], y))
    return x, y


def column_mean(x: Tensor) -> Tensor:
    """Column means in float64, without a float64 copy of `x`."""
    if x.dtype == F64:  # a product with ones: much faster than a reduction over rows on CPU
        return (x.new_ones(1, x.shape[0]) @ x)[0] / x.shape[0]
    return x.sum(0, dtype=F64) / x.shape[0]


def centred(x: Tensor) -> Tensor:
    """`x` minus its column means, as a new float64 matrix."""
    return x.to(F64) - column_mean(x)


def self_product(a: Tensor, *, rows: bool) -> Tensor:
    """The symmetric float64 product `a @ aᵀ` (`rows`) or `aᵀ @ a` (syrk on CPU)."""
    return symmetric_product(a.to(F64), rows=rows)


def chunk_rows(*widths: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Rows per chunk so that a chunk of the widest width holds about `elements` values."""
    return max(1, elements // max(widths))


def require_varying(x: Tensor, name: str, measure: str) -> None:
    """Raise when every row of `x` is the same (no variance: the measure is 0/0)."""
    # Rows nearly always differ early: the whole matrix is only compared when the first agree.
    if not (bool((x[:64] != x[:1]).any()) or bool((x != x[:1]).any())):
        raise RangeError(f"{name} is constant: all {x.shape[0]} rows are identical, so "
                         f"{measure} is undefined; expected at least two distinct rows")


def require_no_constant_columns(x: Tensor, name: str, measure: str) -> None:
    """Raise when some column of `x` is constant (its whitening is undefined)."""
    constant = ~(x != x[:1]).any(0)
    if bool(constant.any()):
        cols = constant.nonzero()[:, 0].tolist()
        shown = ", ".join(map(str, cols[:8])) + (", ..." if len(cols) > 8 else "")
        raise RangeError(f"{name} has {len(cols)} constant column(s) ({shown}); {measure} "
                         "whitens each side and is undefined there. Expected varying columns: "
                         f"drop them first ({name}[:, {name}.std(0) > 0]) or use svcca, which "
                         "keeps only high-variance directions")


def generator(seed) -> torch.Generator:
    """A CPU generator from an int seed or an existing generator."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check.positive_int(seed, "seed", minimum=0))


def labels(values, n: int, name: str) -> tuple[Tensor, np.ndarray]:
    """Labels `[n]` (ints, strings, ...) as codes `[n]` (CPU int64) and the sorted levels."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = check.one_per_row(np.asarray(values), n, name)
    missing = (arr.dtype.kind == "f" and not np.isfinite(arr).all()) or (
        arr.dtype.kind == "O" and bool(pd.isna(arr).any()))
    if missing or arr.dtype.kind == "c":
        raise LabelError(f"{name} has missing, non-finite or complex labels; expected one "
                         "label (an int or a string) per row")
    try:
        levels, codes = np.unique(arr, return_inverse=True)
    except TypeError as e:
        raise LabelError(f"{name} mixes label types that cannot be sorted; expected labels "
                         "of one kind (ints or strings)") from e
    return torch.as_tensor(codes.reshape(-1).astype(np.int64)), levels


def choice(value, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{name} must be one of {options}, got {value!r}")
    return value
