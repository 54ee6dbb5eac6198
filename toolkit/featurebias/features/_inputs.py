"""Normalise the inputs of the feature-strength metrics: activations, features and splits.

Activations come as one tensor `[n, ...]`, a dict `{site: tensor}`, an ActivationStore, or, for
learning dynamics, a dict `{step: {site: tensor}}` / `{step: store}`. Every block is flattened to
`[n, p]` (so token activations `[b, t, d]` become `[b, t·d]`: reduce over positions first, or
reshape to `[b·t, d]` and repeat the features, to analyse tokens as items).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import _validate as check
from .._progress import tqdm
from ..errors import ConfigError, DTypeError, LabelError, NonFiniteError, ShapeError

RESERVED = "joint"  # the feature name of the all-features model in variance_explained


@dataclasses.dataclass(frozen=True)
class Block:
    """One site at one step; `load()` gives its finite activations `[n, p]`, floating."""

    step: object | None
    site: str
    n: int
    load: Callable[[], Tensor]


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature as a float64 design block `[n, q]` (categorical: one-hot minus one level)."""

    name: str
    design: Tensor
    categorical: bool = False

    def test_design(self, test: Tensor, fit_mean: Tensor, n_fit: int) -> Tensor:
        """The design of the `test` rows, given the fit rows' mean design row and count."""
        design = self.design.to(fit_mean.device)[test]
        return unseen_at_mean(design, fit_mean, n_fit) if self.categorical else design


def unseen_at_mean(design: Tensor, fit_mean: Tensor, n_fit: int) -> Tensor:
    """One-hot rows (first level dropped) of levels no fit row has, as the fit rows' mean row.

    A map fitted without a level can only predict the mean for it: whichever level the
    coding dropped, the prediction is then the same (the fit rows' mean of φ, plus the other
    features' parts).
    """
    seen = fit_mean > 0
    unseen = (design[:, ~seen] != 0).any(1)
    if float(fit_mean.sum()) > 1 - 0.5 / n_fit:  # no fit row has the dropped level either
        unseen |= (design == 0).all(1)
    return torch.where(unseen[:, None], fit_mean, design)


def matrix(x, name: str) -> Tensor:
    """Activations `[n, ...]` as a finite matrix `[n, p]` (floats kept, others float64)."""
    x = check.as_tensor(x, name).detach()
    if x.ndim < 1 or x.shape[0] == 0 or x[:1].numel() == 0:
        raise ShapeError(f"{name} has shape {tuple(x.shape)}; expected [n, ...] with n >= 1 "
                         "rows and at least one value per row")
    if x.is_complex():
        raise DTypeError(f"{name} has dtype {x.dtype}; expected real values")
    x = x.reshape(x.shape[0], -1)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    check.check_finite(x, name)
    return x


def _is_store(obj) -> bool:
    # Duck-typed: features/ is pure tensor code and must not import the store module.
    return not isinstance(obj, Mapping) and hasattr(obj, "sites") and hasattr(obj, "__getitem__")


def _site_blocks(acts, step) -> list[Block]:
    label = "" if step is None else f" at step {step!r}"
    if _is_store(acts):
        sites = list(acts.sites)
        if not sites:
            raise ConfigError(f"the ActivationStore{label} holds no sites; expected at least one")
        return [Block(step, s, len(acts), lambda s=s: matrix(acts[s], f"site {s!r}{label}"))
                for s in sites]
    if not acts:
        raise ConfigError(f"the activations dict{label} is empty; expected {{site: tensor}}")
    blocks = []
    for site, x in acts.items():
        if not isinstance(site, str):
            raise ConfigError(f"site names must be strings, got {site!r}{label}; expected "
                              "{site: tensor}, or {step: {site: tensor}} for checkpoints")
        x = check.as_tensor(x, f"site {site!r}{label}")
        if x.ndim < 1:
            raise ShapeError(f"site {site!r}{label} is a scalar; expected [n, ...]")
        blocks.append(Block(step, site, x.shape[0],
                            lambda x=x, s=site: matrix(x, f"site {s!r}{label}")))
    return blocks


def activation_blocks(acts, site: str = "x") -> tuple[list[Block], bool]:
    """Every (step, site) block, steps ascending; also whether steps were given."""
    if isinstance(acts, Mapping) and acts and all(
            isinstance(v, Mapping) or _is_store(v) for v in acts.values()):
        steps = list(acts)
        if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in steps):
            raise ConfigError(f"checkpoint keys are {steps}; expected numbers (training steps)")
        blocks = [b for s in sorted(steps) for b in _site_blocks(acts[s], s)]
        sites = {s: [b.site for b in blocks if b.step == s] for s in steps}
        first = sites[steps[0]]
        for s, names in sites.items():
            if set(names) != set(first):
                raise ConfigError(f"step {s!r} has sites {names} but step {steps[0]!r} has "
                                  f"{first}; expected the same sites at every checkpoint")
        has_steps = True
    elif isinstance(acts, Mapping) or _is_store(acts):
        blocks, has_steps = _site_blocks(acts, None), False
    else:
        if not isinstance(site, str):
            raise ConfigError(f"site is {site!r}; expected a string naming the tensor's site")
        blocks, has_steps = _site_blocks({site: acts}, None), False
    n = blocks[0].n
    for b in blocks:
        if b.n != n:
            where = "" if b.step is None else f" at step {b.step!r}"
            raise ShapeError(f"site {b.site!r}{where} has {b.n} rows but site "
                             f"{blocks[0].site!r} has {n}; expected the same items (rows) "
                             "in every block")
    if n == 0:
        raise ShapeError(f"site {blocks[0].site!r} has no rows; expected at least one item")
    return blocks, has_steps


def _column(name: str, values) -> tuple[Tensor, bool]:
    """A feature as a 1-D tensor and whether it is categorical."""
    if isinstance(values, Tensor):
        t = values.detach()
        if t.is_complex():
            raise DTypeError(f"feature {name!r} has dtype {t.dtype}; expected real values")
        categorical = not t.is_floating_point()
    else:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            if (codes < 0).any():
                raise NonFiniteError(f"feature {name!r} has missing values; expected none")
            return torch.as_tensor(codes.astype(np.int64)), True
        arr = np.asarray(values)
        if arr.dtype.kind in "OUS":  # strings or Python objects: name the levels by code
            if pd.isna(pd.Series(arr.reshape(-1))).any():
                raise NonFiniteError(f"feature {name!r} has missing values; expected none")
            codes = pd.factorize(arr.reshape(-1))[0].reshape(arr.shape)
            return torch.as_tensor(codes.astype(np.int64)), True
        if arr.dtype.kind not in "biuf":
            raise DTypeError(f"feature {name!r} has dtype {arr.dtype}; expected numbers, "
                             "booleans or labels")
        categorical = arr.dtype.kind in "biu"
        t = torch.as_tensor(arr.astype(np.int64 if categorical else np.float64))
    return t, categorical


def encode_features(features, n: int) -> list[Feature]:
    """Features `{name: [n]}` or a DataFrame as design blocks; ints/bools/labels categorical."""
    if isinstance(features, pd.DataFrame):
        features = {c: features[c] for c in features.columns}
    if not isinstance(features, Mapping) or not features:
        raise ConfigError(f"features is an empty or unsupported {type(features).__name__}; "
                          "expected a non-empty dict {name: values [n]} or a DataFrame")
    out = []
    for name, values in features.items():
        if not isinstance(name, str) or name == RESERVED:
            raise ConfigError(f"feature name {name!r} is not allowed; expected a string other "
                              f"than {RESERVED!r} (which names the all-features model)")
        t, categorical = _column(name, values)
        t = flat_feature(name, t, n).cpu()
        if categorical:
            codes = torch.unique(t, return_inverse=True)[1]
            design = torch.nn.functional.one_hot(codes)[:, 1:].to(torch.float64)
        else:
            design = t.to(torch.float64)[:, None]
            check.check_finite(design, f"feature {name!r}")
        if design.shape[1] == 0 or not bool((design != design[0]).any()):
            raise LabelError(f"feature {name!r} is constant (one distinct value); expected at "
                             "least two values")
        out.append(Feature(name, design, categorical))
    return out


def require_varying(features: list[Feature], rows: Tensor, where: str) -> None:
    """Raise when a feature takes one value on `rows` (nothing to regress on there)."""
    for f in features:
        d = f.design[rows]
        if not bool((d != d[0]).any()):
            raise LabelError(f"feature {f.name!r} is constant on the {where}; expected at least "
                             "two values there (use another split or seed)")


def split_rows(n: int, split, seed, in_sample: bool, *,
               min_rows: int = 2) -> tuple[Tensor, Tensor]:
    """Fit and test row indices (CPU int64, sorted); both all rows when `in_sample`.

    `seed` is an int or a `torch.Generator`; each side must keep `min_rows` rows.
    """
    if in_sample:
        rows = torch.arange(n)
        fit, test = rows, rows
    elif isinstance(split, numbers.Real) and not isinstance(split, bool):
        if not 0 < split < 1:
            raise ConfigError(f"split is {split!r}; expected a fraction in (0, 1) of rows to "
                              "fit on, or (fit_idx, test_idx)")
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(
            check.positive_int(seed, "seed", minimum=0))
        perm = torch.randperm(n, generator=gen)
        n_fit = int(round(split * n))
        fit, test = perm[:n_fit].sort().values, perm[n_fit:].sort().values
    elif isinstance(split, (tuple, list)) and len(split) == 2:
        fit, test = _indices(split[0], n, "fit_idx"), _indices(split[1], n, "test_idx")
        if bool(torch.isin(fit, test).any()):
            raise ConfigError("fit_idx and test_idx share rows; expected disjoint splits (use "
                              "in_sample=True to fit and score on the same rows)")
    else:
        raise ConfigError(f"split is {split!r}; expected a fraction in (0, 1) or a pair "
                          "(fit_idx, test_idx)")
    if fit.numel() < min_rows or test.numel() < min_rows:
        raise ShapeError(f"the split leaves {fit.numel()} fit and {test.numel()} test rows of "
                         f"{n}; expected at least {min_rows} of each")
    return fit, test


def _indices(idx, n: int, name: str) -> Tensor:
    t = check.as_tensor(idx, name).detach().cpu().reshape(-1)
    if t.dtype == torch.bool:
        if t.numel() != n:
            raise ShapeError(f"{name} is a mask of length {t.numel()}, expected {n}")
        t = t.nonzero()[:, 0]
    if t.is_floating_point() or t.is_complex():
        raise ConfigError(f"{name} has dtype {t.dtype}; expected integer row indices or a mask")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ConfigError(f"{name} holds indices in [{int(t.min())}, {int(t.max())}], expected "
                          f"indices in [0, {n})")
    t = t.sort().values
    if t.numel() > 1 and bool((t[1:] == t[:-1]).any()):
        raise ConfigError(f"{name} repeats row indices; expected each row at most once")
    return t


def variance_rows(key: tuple, feats: list, r2: dict) -> list[tuple]:
    """`variance_explained`'s rows of one block: per feature "r2" and "unique", the joint
    "r2" and "residual". `r2[models]` is (explained, unexplained) for the feature subsets."""
    every = tuple(range(len(feats)))
    rows = [(*key, f.name, "r2", r2[(j,)][0]) for j, f in enumerate(feats)]
    rows.append((*key, RESERVED, "r2", r2[every][0]))
    rows += [(*key, f.name, "unique", r2[every][0] - r2[every[:j] + every[j + 1:]][0])
             for j, f in enumerate(feats)]
    rows.append((*key, RESERVED, "residual", r2[every][1]))
    return rows


def frame(rows: list[tuple], columns: list[str], has_steps: bool) -> pd.DataFrame:
    """Tidy frame from rows that start with (step, site, ...); no `step` column without steps."""
    df = pd.DataFrame(rows, columns=["step", *columns])
    df = df[["site", "step", *columns[1:]]] if has_steps else df[columns]
    return df.reset_index(drop=True)


def progress_bar(blocks: list[Block], progress: bool, desc: str):
    return tqdm(blocks, desc=desc, disable=not progress or len(blocks) < 2, leave=False)


def flat_feature(name: str, values, n: int):
    """One feature's values as `[n]` (a `[n, 1]` column is flattened); other shapes raise."""
    return check.one_per_row(values, n, f"feature {name!r}", what="value",
                             rows_of="the activations",
                             hint=" (pass each column of a multi-column feature as its own "
                                  "feature)")
