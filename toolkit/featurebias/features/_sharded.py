"""`variance_explained` over rows sharded across torch.distributed ranks, merged exactly.

Each rank holds some of the items (rows of every block and the features' values for them).
The least-squares fit needs only the fit rows' count, means and co-moments of (design, φ),
which merge exactly across ranks (`Moments.all_reduce`); every rank then scores its own test
rows with the common fit, and the per-model sums of squares (or per-item ratios) are added up
over the ranks. Categorical levels are the union over the ranks, so every rank builds the same
design columns. The result equals the one-process computation on all rows, up to rounding.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import _validate as check
from .. import distributed
from ..erasure.stats import Moments
from ..errors import ConfigError, DTypeError, LabelError, NonFiniteError, ShapeError
from ._inputs import (
    RESERVED,
    Feature,
    activation_blocks,
    flat_feature,
    frame,
    progress_bar,
    split_rows,
    variance_rows,
)
from ._linear import RTOL

F64 = torch.float64


def _raw(name: str, values) -> tuple[np.ndarray | Tensor, bool]:
    """A feature's local values `[n]` and whether it is categorical (levels kept as values)."""
    if isinstance(values, Tensor):
        t = values.detach().cpu()
        if t.is_complex():
            raise DTypeError(f"feature {name!r} has dtype {t.dtype}; expected real values")
        return (t.to(F64), False) if t.is_floating_point() else (t.numpy(), True)
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":
        if pd.isna(pd.Series(arr.reshape(-1))).any():
            raise NonFiniteError(f"feature {name!r} has missing values; expected none")
        return arr.astype(object), True
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"feature {name!r} has dtype {arr.dtype}; expected numbers, booleans "
                         "or labels")
    if arr.dtype.kind == "f":
        return torch.as_tensor(arr.astype(np.float64)), False
    return arr, True


def _raw_features(features, n: int) -> dict[str, tuple]:
    """Each feature's local values and kind, checked (no collective: may raise locally)."""
    if isinstance(features, pd.DataFrame):
        features = {c: features[c] for c in features.columns}
    if not isinstance(features, Mapping) or not features:
        raise ConfigError(f"features is an empty or unsupported {type(features).__name__}; "
                          "expected a non-empty dict {name: values [n]} or a DataFrame")
    raw = {}
    for name, values in features.items():
        if not isinstance(name, str) or name == RESERVED:
            raise ConfigError(f"feature name {name!r} is not allowed; expected a string other "
                              f"than {RESERVED!r} (which names the all-features model)")
        v, categorical = _raw(name, values)
        v = flat_feature(name, v, n)
        if not categorical:
            check.check_finite(v, f"feature {name!r}")
        raw[name] = (v, categorical)
    return raw


def _designs(raw: dict[str, tuple], group) -> list[Feature]:
    """Design blocks built alike on every rank: categorical levels are the ranks' union."""
    kinds = [(name, cat) for name, (_, cat) in raw.items()]
    local = {name: list(pd.unique(v)) for name, (v, cat) in raw.items() if cat}
    gathered = distributed.all_gather_object((kinds, local), group)
    if any(k != kinds for k, _ in gathered):
        raise ConfigError(f"ranks passed different features (name, categorical): "
                          f"{[k for k, _ in gathered]}; expected the same on every rank")
    out = []
    for name, (v, categorical) in raw.items():
        if categorical:
            levels = pd.Index(pd.unique(np.array(
                [x for _, part in gathered for x in part[name]], dtype=object)))
            codes = torch.as_tensor(levels.get_indexer(np.asarray(v, dtype=object)))
            design = torch.nn.functional.one_hot(codes, len(levels))[:, 1:].to(F64)
        else:
            design = v[:, None]
        out.append(Feature(name, design, categorical))
    return out


def _constant(columns: Tensor, group) -> Tensor:
    """Per column: whether it takes one value on every rank's rows (an empty rank agrees)."""
    big = torch.finfo(F64).max
    high = columns.amax(0) if columns.shape[0] else torch.full(columns.shape[1:], -big,
                                                                 dtype=F64)
    low = columns.amin(0) if columns.shape[0] else torch.full(columns.shape[1:], big, dtype=F64)
    high = distributed.all_reduce(high.to(F64), "max", group)
    low = distributed.all_reduce(low.to(F64), "min", group)
    return high == low, high


def _check_varying(feats: list[Feature], rows: Tensor | None, where: str, group) -> None:
    for f in feats:
        d = f.design if rows is None else f.design[rows]
        if d.shape[1] == 0 or bool(_constant(d, group)[0].all()):
            raise LabelError(f"feature {f.name!r} is constant on the {where} of all ranks; "
                             "expected at least two values there")


def _split(n: int, split, seed, in_sample: bool, group) -> tuple[Tensor, Tensor]:
    """This rank's fit and test rows; a fraction split is drawn per rank (seed, rank)."""
    if isinstance(split, numbers.Real) and not isinstance(split, bool) and not in_sample:
        seed = torch.Generator().manual_seed(
            check.positive_int(seed, "seed", minimum=0) * 1_000_003 + distributed.rank(group))
    # A rank may hold few rows: the all-rank totals are checked after the reduction.
    return split_rows(n, split, seed, in_sample, min_rows=0)


def _block_sums(h: Tensor, feats: list[Feature], columns: list[list[int]], fit: Tensor,
                test: Tensor, group) -> tuple[Tensor, list[Tensor]]:
    """Per local test item: ‖φ_i‖² and, per model (its design columns), ‖φ_i − φ̂_i‖²."""
    design = torch.cat([f.design for f in feats], 1).to(h.device)
    stats = Moments(design.shape[1], h.shape[1], dtype=F64, device=h.device)
    if fit.numel():
        stats.update(design[fit], h[fit])
    stats = stats.all_reduce(group)
    n_fit = stats.n.to(F64)[0]
    # Each feature's test rows against all ranks' fit rows (unseen levels at their mean).
    starts = np.cumsum([0] + [f.design.shape[1] for f in feats]).tolist()
    design_test = torch.cat([f.test_design(test, stats.mean_x[0][a:b], int(n_fit))
                             for f, a, b in zip(feats, starts[:-1], starts[1:], strict=True)], 1)
    const, value = _constant(h[fit], group)
    # As `_linear.centre`: a column constant on the fit rows is centred to exactly 0 there.
    centre = torch.where(const.to(h.device), value.to(h.device), stats.mean_z[0])
    phi = h[test] - centre
    fit_mean = stats.mean_z[0] - centre  # the mean of φ on the fit rows
    sd = (stats.m_xx[0].diagonal() / (n_fit - 1)).sqrt()
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    sse = []
    for idx in columns:
        if not idx:
            sse.append((phi - fit_mean).square().sum(1))
            continue
        i = torch.tensor(idx, device=h.device)
        s = sd[i]
        gram = stats.m_xx[0][i][:, i] / (s[:, None] * s[None, :])
        cross = stats.m_xz[0][i] / s[:, None]
        coef = torch.linalg.pinv(gram, rtol=RTOL, hermitian=True) @ cross
        b = (design_test[:, i] - stats.mean_x[0][i]) / s
        sse.append((phi - (b @ coef + fit_mean)).square().sum(1))
    return phi.square().sum(1), sse


def variance_explained(acts, features, *, split, seed, in_sample: bool, per_item: bool,
                       site: str, progress: bool, group) -> pd.DataFrame:
    """`features.variance_explained` with this rank's rows, merged over `group`'s ranks."""
    from .variance import _models

    with distributed.together("variance_explained", group):
        blocks, has_steps = activation_blocks(acts, site)
        n = blocks[0].n
        raw = _raw_features(features, n)
        fit, test = _split(n, split, seed, in_sample, group)
    distributed.check_agree([len(blocks)], "the number of (step, site) blocks", group)
    feats = _designs(raw, group)
    counts = distributed.all_reduce(torch.tensor([fit.numel(), test.numel()]), group=group)
    if int(counts.min()) < 2:
        raise ShapeError(f"the split leaves {counts.tolist()} fit and test rows over all ranks; "
                         "expected at least 2 of each")
    _check_varying(feats, None, "rows", group)
    _check_varying(feats, fit, "fit split", group)
    models = _models(len(feats))
    widths = [f.design.shape[1] for f in feats]
    starts = np.cumsum([0, *widths]).tolist()
    columns = [[c for j in m for c in range(starts[j], starts[j + 1])] for m in models]
    local = []
    for b in progress_bar(blocks, progress and distributed.rank(group) == 0,
                          "variance_explained"):
        with distributed.together(f"variance_explained at site {b.site!r}", group):
            h = b.load().to(F64)
        local.append(_block_sums(h, feats, columns, fit.to(h.device), test.to(h.device),
                                 group))
    last = {b.site: sst for b, (sst, _) in zip(blocks, local, strict=True)}
    # One vector of partial sums per block and model, added over the ranks in one call.
    parts = []
    for b, (sst, sse) in zip(blocks, local, strict=True):
        den = last[b.site]
        for e in sse:
            if per_item:
                keep = den > 0
                parts.append(torch.stack([((sst - e)[keep] / den[keep]).sum(),
                                          (e[keep] / den[keep]).sum(), keep.sum().to(F64)]))
            else:
                parts.append(torch.stack([(sst - e).sum(), e.sum(), den.sum()]))
    totals = distributed.all_reduce(torch.stack(parts).cpu(), group=group).tolist()
    rows, at = [], 0
    for b in blocks:
        r2 = {}
        for m in models:
            explained, unexplained, den = totals[at]
            at += 1
            r2[m] = ((float("nan"),) * 2 if den == 0 else (explained / den, unexplained / den))
        key = (b.step, b.site)
        rows += variance_rows(key, feats, r2)
    return frame(rows, ["site", "feature", "measure", "value"], has_steps)
