"""Orthogonal Procrustes distance and the angular shape metric (§8.4).

X and Y are centred and scaled to unit Frobenius norm (zero-padding to equal width changes
nothing below). Then `min_R ‖XR − Y‖_F² = 2 − 2‖XᵀY‖_*` over orthogonal R (Ding, Denain &
Steinhardt 2021 call this the orthogonal Procrustes distance), and `arccos ‖XᵀY‖_*` is the
angular shape metric of Williams et al. (2021), a proper metric.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._inputs import centred, pair, require_varying


def procrustes(x, y, *, angular: bool = False) -> float:
    """Orthogonal Procrustes distance `2 − 2‖XᵀY‖_*` in [0, 2] between `x [n, p]` and
    `y [n, q]` (0 when equal up to translation, rotation/reflection and scale); with `angular`,
    the shape metric `arccos ‖XᵀY‖_*` in [0, π/2]."""
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "the Procrustes distance")
    xc, yc = _compact(centred(x)), _compact(centred(y))
    xc, yc = xc / xc.norm(), yc / yc.norm()
    nuclear = min(1.0, float(torch.linalg.svdvals(xc.T @ yc).sum()))
    return math.acos(nuclear) if angular else max(0.0, 2 - 2 * nuclear)


def _compact(x: Tensor) -> Tensor:
    """A matrix `[n, min(n, p)]` with the same Gram matrix `xxᵀ`.

    ‖XᵀY‖_* depends on X only through XXᵀ, so wide activations (p > n) are replaced by the
    transposed R factor of `xᵀ = QR`: the SVD is then at most n×n instead of p×q.
    """
    if x.shape[1] <= x.shape[0]:
        return x
    return torch.linalg.qr(x.T).R.T
