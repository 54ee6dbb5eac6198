"""Per-unit feature strength: R² of each unit on each feature, selectivity and density.

All three measure on the test rows of `split` (the rows `variance_explained` and
`pc_attribution` score on with the same `split` and `seed`), or on every row with
`in_sample=True`; nothing is fitted on the fit rows. Units constant on those rows have no
variance to explain and are skipped.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd
import torch

from ..errors import ConfigError
from ._inputs import (
    activation_blocks,
    encode_features,
    frame,
    progress_bar,
    require_varying,
    split_rows,
)
from ._linear import r2_in_sample


def _per_unit(acts, features, split, seed, in_sample, site, progress, desc):
    """Per block: the block, R² `[features, units]`, unit variances and unit indices (kept)."""
    blocks, has_steps = activation_blocks(acts, site)
    feats = encode_features(features, blocks[0].n)
    rows = split_rows(blocks[0].n, split, seed, in_sample)[1]
    require_varying(feats, rows, "test split")
    out = []
    for b in progress_bar(blocks, progress, desc):
        h = b.load().to(torch.float64)
        r = rows.to(h.device)
        h = h[r]
        fits = [r2_in_sample(f.design.to(h.device)[r], h) for f in feats]
        r2 = torch.stack([fit[0] for fit in fits])
        keep = ~r2[0].isnan()
        units = keep.nonzero()[:, 0]
        out.append((b, r2[:, keep], fits[0][1][keep] / (len(rows) - 1), units))
    return out, has_steps, feats


def unit_r2(acts, features, *, split=0.5, seed=0, in_sample: bool = False, site: str = "x",
            progress: bool = True) -> pd.DataFrame:
    """`R²_uj = corr²(h_u, f_j)` per unit and feature (class-means R² for many-level features).

    Inputs as in `variance_explained`; units are the columns of the `[n, p]` flattening.

    Returns:
        Columns `site, [step], unit` (column index), `feature, variance` (the unit's sample
        variance on the rows measured) and `r2`. In-sample, the variance-weighted mean of
        `r2` over units is the feature's `variance_explained` R².
    """
    out, has_steps, feats = _per_unit(acts, features, split, seed, in_sample, site, progress,
                                      "unit_r2")
    rows = []
    for b, r2, var, units in out:
        r2_l, var_l, units_l = r2.T.tolist(), var.tolist(), units.tolist()
        rows += [(b.step, b.site, u, f.name, var_l[i], r2_l[i][j])
                 for i, u in enumerate(units_l) for j, f in enumerate(feats)]
    return frame(rows, ["site", "unit", "feature", "variance", "r2"], has_steps)


def unit_selectivity(acts, features, *, split=0.5, seed=0, in_sample: bool = False,
                     site: str = "x", progress: bool = True) -> pd.DataFrame:
    """Per unit, the feature that explains it best, how much, and by how much it beats the rest.

    Returns:
        Columns `site, [step], unit, feature` (the best; ties go to the earlier feature),
        `r2` (its R²_uj), `selectivity` (`R²_uj − max_{j'≠j} R²_uj'`; with one feature, R²_uj)
        and `variance` (the unit's sample variance on the rows measured).
    """
    out, has_steps, feats = _per_unit(acts, features, split, seed, in_sample, site, progress,
                                      "unit_selectivity")
    rows = []
    for b, r2, var, units in out:
        top = r2.topk(min(2, len(feats)), dim=0)
        best = top.values[0]
        runner_up = top.values[1] if len(feats) > 1 else torch.zeros_like(best)
        cols = (units, top.indices[0], best, best - runner_up, var)
        rows += [(b.step, b.site, u, feats[j].name, r, s, v)
                 for u, j, r, s, v in zip(*(c.tolist() for c in cols), strict=True)]
    return frame(rows, ["site", "unit", "feature", "r2", "selectivity", "variance"], has_steps)


def unit_density(acts, features, threshold=0.1, *, split=0.5, seed=0, in_sample: bool = False,
                 site: str = "x", progress: bool = True) -> pd.DataFrame:
    """Density `ρ_j(τ)`: the fraction of (non-constant) units with `R²_uj > τ`.

    Args:
        threshold: τ, a number in [0, 1] or a sequence of them (one row each).

    Returns:
        Columns `site, [step], feature, threshold, density, n_units` (units counted; density
        is NaN where a site has none).
    """
    taus = [threshold] if isinstance(threshold, numbers.Real) else threshold
    try:
        taus = [float(t) for t in taus]
    except (TypeError, ValueError):
        taus = []
    if not taus or not all(0 <= t <= 1 for t in taus) or isinstance(threshold, bool):
        raise ConfigError(f"threshold must be a number in [0, 1] or a non-empty sequence of "
                          f"them, got {threshold!r}")
    out, has_steps, feats = _per_unit(acts, features, split, seed, in_sample, site, progress,
                                      "unit_density")
    rows = []
    for b, r2, _, units in out:
        n = len(units)
        for j, f in enumerate(feats):
            rows += [(b.step, b.site, f.name, t,
                      float((r2[j] > t).sum()) / n if n else math.nan, n) for t in taus]
    return frame(rows, ["site", "feature", "threshold", "density", "n_units"], has_steps)
