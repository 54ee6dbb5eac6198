"""Orthogonal Procrustes distance and the angular shape metric (§8.4), with partial whitening.

X and Y are centred and scaled to unit Frobenius norm (zero-padding to equal width changes
nothing below). Then `min_R ‖XR − Y‖_F² = 2 − 2‖XᵀY‖_*` over orthogonal R (Ding, Denain &
Steinhardt 2021 call this the orthogonal Procrustes distance), and `arccos ‖XᵀY‖_*` is the
angular shape metric of Williams et al. (2021), a proper metric.

Partial whitening (Williams et al.) first maps `X ← X_c(αI + (1−α)(X_cᵀX_c/n)^{+1/2})`, the
pseudo-inverse root (SCIENCE.md marks the exact form unverified). In the SVD `X_c = USVᵀ`
that keeps U and V and moves each singular value to `αs + (1−α)√n`, on X's numerical rank:
α = 1 is plain Procrustes, α = 0 whitens (`1 − d²/2` is then `Σρ / √(r_x r_y)` over the
canonical correlations ρ, invariant to invertible linear maps).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ..erasure.linalg import rounding_floor
from ..errors import ConfigError
from ._inputs import centred, pair, require_varying


def procrustes(x, y, *, angular: bool = False, alpha: float = 1.0) -> float:
    """Orthogonal Procrustes distance `2 − 2‖XᵀY‖_*` in [0, 2] between `x [n, p]` and
    `y [n, q]` (0 when equal up to translation, rotation/reflection and scale); with `angular`,
    the shape metric `arccos ‖XᵀY‖_*` in [0, π/2]; `alpha` < 1 whitens both partially first
    (0: fully)."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be a number in [0, 1] (1: no whitening), got {alpha!r}")
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "the Procrustes distance")
    if alpha == 1:
        xc, yc = _compact(centred(x)), _compact(centred(y))
    else:
        xc, yc = _whitened(x, float(alpha)), _whitened(y, float(alpha))
    xc, yc = xc / xc.norm(), yc / yc.norm()
    nuclear = min(1.0, float(torch.linalg.svdvals(xc.T @ yc).sum()))
    return math.acos(nuclear) if angular else max(0.0, 2 - 2 * nuclear)


def _whitened(x: Tensor, alpha: float) -> Tensor:
    """`X_c(αI + (1−α)(X_cᵀX_c/n)^{+1/2})` up to the rotation Vᵀ on the right, which
    ‖XᵀY‖_* ignores: `U diag(αs + (1−α)√n)` `[n, r]` over the singular values above the
    input's rounding."""
    u, s, _ = torch.linalg.svd(centred(x), full_matrices=False)
    rank = int((s > rounding_floor(x, float(s[0]))).sum())
    return u[:, :rank] * (alpha * s[:rank] + (1 - alpha) * math.sqrt(x.shape[0]))


def _compact(x: Tensor) -> Tensor:
    """A matrix `[n, min(n, p)]` with the same Gram matrix `xxᵀ`.

    ‖XᵀY‖_* depends on X only through XXᵀ, so wide activations (p > n) are replaced by the
    transposed R factor of `xᵀ = QR`: the SVD is then at most n×n instead of p×q.
    """
    if x.shape[1] <= x.shape[0]:
        return x
    return torch.linalg.qr(x.T).R.T
