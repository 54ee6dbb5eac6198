"""Checks at the public boundary: turn bad input into a clear `FeatureBiasError`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .errors import ConfigError, DeviceError, DTypeError, LabelError, NonFiniteError, ShapeError


def as_tensor(x, name: str) -> Tensor:
    """`x` as a tensor (numpy arrays and nested lists are converted)."""
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise DTypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from e


def check_finite(x: Tensor, name: str) -> None:
    # NaN and ±Inf propagate through a sum, so one reduction (no n×d temporary) clears the
    # common case; only a non-finite sum (possibly mere overflow) gets the exact check.
    if not x.is_floating_point() or bool(torch.isfinite(x.sum(dtype=torch.float64))):
        return
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{name} holds {bad} NaN/Inf value(s); expected finite values")


def features(x, name: str = "x", dim: int | None = None, *, min_rows: int = 1,
             min_ndim: int = 2) -> Tensor:
    """Validate activations `[..., d]` and flatten them to a float matrix `[n, d]`."""
    x = as_tensor(x, name)
    if x.ndim < min_ndim:
        raise ShapeError(f"{name} must have shape [..., d] with at least {min_ndim} dim(s), "
                         f"got {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8, torch.int8,
                                                  torch.int16, torch.int32, torch.int64)):
        raise DTypeError(f"{name} must be real-valued, got dtype {x.dtype}")
    if dim is not None and x.shape[-1] != dim:
        raise ShapeError(f"{name} has last dimension {x.shape[-1]}, expected {dim}")
    x = x.reshape(-1, x.shape[-1])
    if x.shape[0] < min_rows:
        raise ShapeError(f"{name} has {x.shape[0]} rows, expected at least {min_rows}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    check_finite(x, name)
    return x


def one_per_row(values, n: int, name: str, *, what: str = "label", rows_of: str = "x",
                hint: str = ""):
    """`values` (a tensor or an array) as `[n]`, one `what` per row of `rows_of`; a `[n, 1]`
    column is flattened. `hint` follows the shape error (how to pass something wider)."""
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ShapeError(f"{name} has shape {tuple(values.shape)}; expected one {what} per "
                         f"row, [n]{hint}")
    if values.shape[0] != n:
        raise ShapeError(f"{name} has {values.shape[0]} {what}s for the {n} rows of {rows_of}; "
                         f"expected one {what} per row")
    return values


def same_device(*named: tuple[str, Tensor | None]) -> None:
    present = [(n, t) for n, t in named if t is not None]
    devices = {t.device for _, t in present}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {t.device}" for n, t in present)
        raise DeviceError(f"tensors must share one device, got {where}")


def class_ids(z, n: int, num_classes: int, name: str = "z") -> Tensor:
    """Labels as int64 class ids `[n]`; accepts ids `[...]` or one-hot rows `[..., k]`."""
    z = as_tensor(z, name)
    if z.is_floating_point() and z.ndim >= 2 and z.shape[-1] == num_classes:
        flat = z.reshape(-1, num_classes)
        check_finite(flat, name)
        onehot = ((flat == 0) | (flat == 1)).all() and bool((flat.sum(-1) == 1).all())
        if not onehot:
            raise LabelError(f"{name} is a float matrix but not one-hot; expected class ids "
                             f"in [0, {num_classes}) or one-hot rows")
        z = flat.argmax(-1)
    elif z.is_floating_point() or z.is_complex():
        raise LabelError(f"{name} must hold integer class ids in [0, {num_classes}), "
                         f"got dtype {z.dtype}")
    z = one_per_row(z.reshape(-1).long(), n, name)
    if z.numel() and (int(z.min()) < 0 or int(z.max()) >= num_classes):
        raise LabelError(f"{name} holds ids in [{int(z.min())}, {int(z.max())}], expected ids "
                         f"in [0, {num_classes})")
    return z


def label_matrix(z, n: int, z_dim: int, name: str = "z") -> Tensor:
    """Labels as a float matrix `[n, z_dim]`.

    Integer ids `[...]` are one-hot encoded when `z_dim > 1`; a 1-D tensor with `z_dim == 1`
    is one column; otherwise `z` must be `[..., z_dim]`. Integers with one entry per row are
    ids whatever their shape (token labels `[b, t]` with `t == z_dim` included).
    """
    z = as_tensor(z, name)
    if z.dtype == torch.bool:
        z = z.long()
    integer = not (z.is_floating_point() or z.is_complex())
    if integer and z_dim > 1 and (z.ndim == 1 or z.shape[-1] != z_dim or z.numel() == n):
        ids = class_ids(z, n, z_dim, name)
        return torch.nn.functional.one_hot(ids, z_dim)
    if z.ndim == 1:
        z = z.reshape(-1, 1)
    if z.shape[-1] != z_dim:
        raise ShapeError(f"{name} has last dimension {z.shape[-1]}, expected {z_dim} "
                         "(or integer class ids)")
    z = z.reshape(-1, z_dim)
    if z.shape[0] != n:
        raise ShapeError(f"{name} has {z.shape[0]} rows but x has {n}; expected one label per row")
    check_finite(z, name)
    return z


def positive_int(value, name: str, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`; numpy integers count (grids are often built in numpy)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def real(value, name: str) -> float:
    """A finite real number as a float: Python, numpy or a one-element tensor, not a bool."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def choice(value, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{name} must be one of {options}, got {value!r}")
    return value


def float_dtype(dtype, name: str = "dtype") -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"{name} must be a floating torch dtype, got {dtype!r}")
    return dtype
