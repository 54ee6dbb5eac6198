"""Canonical correlation analysis: mean CCA, SVCCA and PWCCA (§8.3).

The canonical correlations are the singular values of `Q_xᵀQ_y`, with `Q_x`, `Q_y` orthonormal
bases of the centred column spaces (a thin SVD, dropping directions with singular value below
1e-10·s_max or below what rounding the input to its dtype can produce, whichever is larger),
which is CCA on whitened data without inverting a covariance matrix.

Constant columns: `cca` and `pwcca` whiten each side, which is undefined for a constant unit,
so they raise `RangeError` (drop such units first). Other collinear columns only lower the rank
and are absorbed by the SVD. `svcca` keeps the high-variance directions only, so constant
units, which carry no variance, are simply never kept.
"""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor

from ..erasure.linalg import rounding_floor
from ..errors import ConfigError
from ._inputs import centred, pair, require_no_constant_columns, require_varying

RANK_TOL = 1e-10


def canonical_correlations(x, y) -> Tensor:
    """All canonical correlations of `x [n, p]` and `y [n, q]`, descending, float64."""
    x, y = _checked(x, y, "CCA")
    return _correlations(_basis(x), _basis(y))[0]


def cca(x, y, *, squared: bool = False) -> float:
    """Mean canonical correlation `ρ̄ = Σρᵢ / c`, c = min(rank x, rank y); with `squared`,
    `R²_CCA = Σρᵢ² / c`. Invariant to invertible linear maps; needs n ≫ p (else every ρ → 1)."""
    rho = canonical_correlations(x, y)
    return float((rho.square() if squared else rho).mean())


def svcca(x, y, keep=0.99, *, squared: bool = False) -> float:
    """SVCCA (Raghu et al. 2017): CCA on each side's top singular directions.

    Args:
        keep: a fraction in (0, 1]: keep the fewest directions explaining at least that share
            of the variance; or an int: keep that many directions (at most the rank).
    """
    _check_keep(keep)
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "SVCCA")
    qx, qy = _top_directions(x, keep), _top_directions(y, keep)
    rho = _correlations(qx, qy)[0]
    return float((rho.square() if squared else rho).mean())


def pwcca(x, y) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): `Σ αᵢρᵢ`, with `αᵢ ∝ Σⱼ |⟨hᵢ, xⱼ⟩|` over
    the units xⱼ of the side with fewer units (x on a tie) and hᵢ its orthonormal canonical
    variates. Not symmetric in x and y."""
    x, y = _checked(x, y, "PWCCA")
    xc, yc = centred(x), centred(y)
    qx, qy = _basis(x, xc), _basis(y, yc)
    rho, u, v = _correlations(qx, qy)
    acts, variates = (xc, qx @ u) if x.shape[1] <= y.shape[1] else (yc, qy @ v)
    weights = (variates.T @ acts).abs().sum(1)
    return float((weights / weights.sum() * rho).sum())


def _checked(x, y, measure: str) -> tuple[Tensor, Tensor]:
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, measure)
        require_no_constant_columns(t, name, measure)
    return x, y


def _basis(x: Tensor, xc: Tensor | None = None) -> Tensor:
    """Orthonormal basis `[n, r]` of the column space of `x` centred (`xc`, if given)."""
    u, s, _ = torch.linalg.svd(centred(x) if xc is None else xc, full_matrices=False)
    return u[:, :_rank(x, s)]


def _rank(x: Tensor, s: Tensor) -> int:
    """How many singular values `s` of centred `x` stand above rounding: float32 input leaves
    spurious directions at ~1e-7 of the largest, far above RANK_TOL."""
    floor = max(RANK_TOL * float(s[0]), rounding_floor(x, float(s[0])))
    return int((s > floor).sum())


def _correlations(qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Canonical correlations `[c]` and the rotations `[r_x, c]`, `[r_y, c]` to the variates."""
    n = qx.shape[0]
    if qx.shape[1] + qy.shape[1] > n:
        warnings.warn(f"rank(x) + rank(y) = {qx.shape[1] + qy.shape[1]} exceeds n = {n}: the "
                      "column spaces must intersect and some canonical correlations are 1 by "
                      "construction. Use more stimuli, or svcca / PCA to fewer dimensions",
                      stacklevel=3)
    u, s, vh = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    c = min(qx.shape[1], qy.shape[1])
    return s[:c].clamp(0, 1), u[:, :c], vh[:c].T


def _top_directions(x: Tensor, keep) -> Tensor:
    """Left singular vectors of centred `x` for the kept directions (an orthonormal basis)."""
    u, s, _ = torch.linalg.svd(centred(x), full_matrices=False)
    rank = _rank(x, s)
    if isinstance(keep, numbers.Integral):
        k = min(int(keep), rank)
    else:
        share = (s[:rank].square().cumsum(0) / s[:rank].square().sum())
        # The tolerance keeps keep=1.0 from failing on a cumulative sum that rounds below 1.
        k = int((share < keep - 1e-12).sum()) + 1
    return u[:, :k]


def _check_keep(keep) -> None:
    if isinstance(keep, bool):
        raise ConfigError(f"keep must be a fraction in (0, 1] or an int >= 1, got {keep!r}")
    if isinstance(keep, numbers.Integral):
        if keep < 1:
            raise ConfigError(f"keep must be an int >= 1 (directions), got {keep!r}")
    elif not isinstance(keep, numbers.Real) or not 0 < keep <= 1:
        raise ConfigError(f"keep must be a fraction in (0, 1] of the variance or an int >= 1, "
                          f"got {keep!r}")
