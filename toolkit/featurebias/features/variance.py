"""Encoding R²: how much of a representation's variance a linear map from each feature explains."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor

from .. import distributed as _distributed
from . import _sharded
from ._inputs import (
    Feature,
    activation_blocks,
    encode_features,
    frame,
    progress_bar,
    require_varying,
    split_rows,
    variance_rows,
)
from ._linear import centre, predict


def _models(k: int) -> list[tuple[int, ...]]:
    """Feature subsets to fit: each alone, all together, and all but each one."""
    every = tuple(range(k))
    wanted = [(j,) for j in every] + [every] + [every[:j] + every[j + 1:] for j in every]
    return list(dict.fromkeys(wanted))


def _sums(phi: Tensor, feats: list[Feature], fit: Tensor, test: Tensor,
          models: list[tuple[int, ...]]) -> tuple[Tensor, dict[tuple[int, ...], Tensor]]:
    """Per test item: ‖φ_i‖² and, per model, the squared residual ‖φ_i − φ̂_i‖²."""
    y_fit, y_test = phi[fit], phi[test]
    fits = [f.design.to(phi.device)[fit] for f in feats]
    tests = [f.test_design(test, d.mean(0), len(fit)) for f, d in zip(feats, fits, strict=True)]
    sse = {}
    for m in models:
        if m:
            x_fit, x_test = (torch.cat([d[j] for j in m], 1) for d in (fits, tests))
        else:
            x_fit, x_test = phi.new_zeros(len(fit), 0), phi.new_zeros(len(test), 0)
        sse[m] = (y_test - predict(x_fit, y_fit, x_test)).square().sum(1)
    return y_test.square().sum(1), sse


def _explained(sst: Tensor, sse: Tensor, den: Tensor, per_item: bool) -> tuple[float, float]:
    """(explained, unexplained) variance as fractions of the denominator `den`."""
    if per_item:
        keep = den > 0  # items sitting at the fit mean have no variance to explain
        if not bool(keep.any()):
            return float("nan"), float("nan")
        return (float(((sst - sse)[keep] / den[keep]).mean()),
                float((sse[keep] / den[keep]).mean()))
    total = float(den.sum())
    if total == 0:  # a constant representation: nothing to explain
        return float("nan"), float("nan")
    return float((sst - sse).sum()) / total, float(sse.sum()) / total


def variance_explained(acts, features, *, split=0.5, seed=0, in_sample: bool = False,
                       per_item: bool = False, site: str = "x", progress: bool = True,
                       distributed: bool = False, group=None) -> pd.DataFrame:
    """Encoding R² of each feature, of all features jointly, and each feature's unique share.

    Per site (and step), φ = h − mean of h on the fit rows; an affine least-squares map from
    the feature (one-hot for categorical ones, so it predicts the class means) to φ is fitted on
    the fit rows and scored on the test rows: `R²_j = 1 − Σ_T ‖φ − φ̂‖² / Σ_T ‖φ‖²`.

    Args:
        acts: a tensor `[n, ...]` (one site, named `site`), a dict `{site: tensor}`, an
            ActivationStore, or `{step: {site: tensor} | store}` for checkpoints. Each block is
            flattened to `[n, p]`: reduce token activations `[b, t, d]` first.
        features: `{name: values [n]}` or a DataFrame. Integer, boolean and label columns are
            categorical; float columns continuous. A test row whose level no fit row has gets
            that feature's fit mean (the map knows nothing of the level), whatever its code.
        split: fraction of rows to fit on (drawn with `seed`), or `(fit_idx, test_idx)`.
        in_sample: fit and score on all rows (ignores `split`).
        per_item: average the per-item ratios `1 − ‖φ_i − φ̂_i‖² / ‖φ_i‖²` instead of taking the
            ratio of sums (items with φ_i = 0 are left out).
        distributed: the items are sharded over the ranks of `group` (torch.distributed; None:
            the default group): each rank passes its own rows (at least one) of `acts` and
            `features`, and every rank gets the table of all rows, equal to one process given
            them all (the fit's moments merge exactly). `split` indices are this rank's rows;
            a fraction split is drawn per rank from `(seed, rank)`. A collective: every rank
            calls it.

    Returns:
        Columns `site, [step], feature, measure, value`. Per feature: measure `"r2"` and
        `"unique"` (R²_joint minus the joint R² of all other features). Feature `"joint"`:
        measure `"r2"` (all features additively) and `"residual"` (`1 − R²_joint`). With
        checkpoints the denominator of every step is the last (largest) step's test variance of
        that site (per item with `per_item`), so curves share a scale:
        `value = (Σ_T ‖φ‖² − Σ_T ‖φ − φ̂‖²) / Σ_T ‖φ_last‖²`, and `r2 + residual` of the joint
        model is the step's variance relative to the last step's. A constant representation
        (no test variance about the fit mean) gives NaN.
    """
    if distributed and _distributed.active(group):
        return _sharded.variance_explained(
            acts, features, split=split, seed=seed, in_sample=in_sample, per_item=per_item,
            site=site, progress=progress, group=group)
    blocks, has_steps = activation_blocks(acts, site)
    feats = encode_features(features, blocks[0].n)
    fit, test = split_rows(blocks[0].n, split, seed, in_sample)
    require_varying(feats, fit, "fit split")
    models = _models(len(feats))
    sums = []
    for b in progress_bar(blocks, progress, "variance_explained"):
        h = b.load().to(torch.float64)
        f_rows, t_rows = fit.to(h.device), test.to(h.device)
        sums.append(_sums(centre(h, f_rows), feats, f_rows, t_rows, models))
    # Blocks come sorted by step, so the last one seen per site is the final checkpoint.
    last = {b.site: sst for b, (sst, _) in zip(blocks, sums, strict=True)}
    rows = []
    for b, (sst, sse) in zip(blocks, sums, strict=True):
        key, den = (b.step, b.site), last[b.site]
        r2 = {m: _explained(sst, e, den, per_item) for m, e in sse.items()}
        rows += variance_rows(key, feats, r2)
    return frame(rows, ["site", "feature", "measure", "value"], has_steps)
