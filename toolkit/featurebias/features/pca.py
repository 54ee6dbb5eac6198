"""Top-PC attribution: how much of each principal component's variance each feature explains."""

from __future__ import annotations

import pandas as pd
import torch

from .. import _validate as check
from ..erasure.linalg import rounding_floor
from ._inputs import (
    activation_blocks,
    encode_features,
    frame,
    progress_bar,
    require_varying,
    split_rows,
)
from ._linear import centre, r2_in_sample


def pc_attribution(acts, features, n_components: int | None = 10, *, split=0.5, seed=0,
                   in_sample: bool = False, site: str = "x",
                   progress: bool = True) -> pd.DataFrame:
    """Per site, principal component and feature: the PC's variance and the feature's share of it.

    PCA of φ = h − mean on the fit rows gives `(λ_k, u_k)`; on the test rows, `R²_kj` is
    `corr²(u_kᵀφ, f_j)` (for a categorical feature with more than two levels, the R² of the
    class means, which is corr² for two). Inputs, `split`, `seed` and `in_sample` are as in
    `variance_explained`.

    Args:
        n_components: how many top PCs to report; None for all. At most the numerical rank
            of φ on the fit rows (at the input dtype's precision) is reported, so a constant
            site gives no rows.

    Returns:
        Columns `site, [step], component` (1 = largest), `feature, eigenvalue` (λ_k, sample
        variance on the fit rows), `variance_fraction` (λ_k / total variance), `r2` (R²_kj),
        `attributed` (λ_k R²_kj) and `cumulative_fraction`: the fraction of the variance of
        PCs 1..k due to the feature, `Σ_{k'≤k} λ_k' R²_k'j / Σ_{k'≤k} λ_k'`. In-sample and over
        all PCs, the last equals the feature's `variance_explained` R².
    """
    if n_components is not None:
        check.positive_int(n_components, "n_components")
    blocks, has_steps = activation_blocks(acts, site)
    feats = encode_features(features, blocks[0].n)
    fit, test = split_rows(blocks[0].n, split, seed, in_sample)
    require_varying(feats, test, "test split")
    rows = []
    for b in progress_bar(blocks, progress, "pc_attribution"):
        h = b.load()
        f_rows, t_rows = fit.to(h.device), test.to(h.device)
        stored = h[f_rows]  # in its own dtype: its rounding sets the numerical rank
        h = h.to(torch.float64)
        phi = centre(h, f_rows)
        _, s, vh = torch.linalg.svd(phi[f_rows], full_matrices=False)
        rank = int((s > rounding_floor(stored, float(s[0]))).sum()) if bool(s[0] > 0) else 0
        k = rank if n_components is None else min(n_components, rank)
        if k == 0:
            continue
        lam = s[:k].square() / (len(fit) - 1)
        total = float(phi[f_rows].square().sum()) / (len(fit) - 1)
        scores = phi[t_rows] @ vh[:k].T
        r2 = torch.stack([r2_in_sample(f.design.to(h.device)[t_rows], scores)[0]
                          for f in feats])  # [features, k]
        attributed = lam * r2
        cumulative = attributed.cumsum(1) / lam.cumsum(0)
        lam_l, r2_l, att_l, cum_l = (t.tolist() for t in (lam, r2, attributed, cumulative))
        rows += [(b.step, b.site, c + 1, f.name, lam_l[c], lam_l[c] / total, r2_l[j][c],
                  att_l[j][c], cum_l[j][c]) for c in range(k) for j, f in enumerate(feats)]
    return frame(rows, ["site", "component", "feature", "eigenvalue", "variance_fraction", "r2",
                        "attributed", "cumulative_fraction"], has_steps)
