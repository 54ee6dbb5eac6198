"""LEACE: least-squares concept erasure (Belrose et al. 2023), oblique and orthogonal."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from .base import Eraser, LabelMatrixFitter
from .linalg import EPS64, psd_eigh
from .stats import Moments

# Entries of x − b held at once while erasing (16 MiB of float32): no n×d temporary.
CENTRED_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True, repr=False)
class LeaceEraser(Eraser):
    """`x' = x − L R (x − b)`: removes every linear trace of the concept, moving x least.

    Stored as factors so that applying costs O(d·r) per vector; `.P` materialises `I − LR`.
    """

    proj_left: Tensor
    """`[d, m]` L = W⁺U_r (columns past the retained rank are zero)."""
    proj_right: Tensor
    """`[m, d]` R = U_rᵀW."""
    bias: Tensor | None
    """`[d]` the mean μ_x when fitted with `affine=True`, else None."""

    @property
    def dim(self) -> int:
        return self.proj_left.shape[0]

    @property
    def P(self) -> Tensor:
        """The `[d, d]` projection `I − LR` (x' = P x + (I − P) b)."""
        eye = torch.eye(self.dim, dtype=self.proj_left.dtype, device=self.proj_left.device)
        return eye - self.proj_left @ self.proj_right

    @property
    def rank(self) -> int:
        """Rank r of the erased subspace."""
        return int((self.proj_left.abs().sum(0) > 0).sum())

    def _apply(self, x: Tensor, z) -> Tensor:
        left, right = self.proj_left.to(x.dtype), self.proj_right.to(x.dtype)
        if self.bias is None:
            coords = x @ right.mT
        else:  # R (x − b), centred first: R x − R b would cancel in float32 far from 0
            bias, rows = self.bias.to(x.dtype), max(1, CENTRED_CHUNK // x.shape[1])
            coords = torch.cat([(x[i:i + rows] - bias) @ right.mT
                                for i in range(0, x.shape[0], rows)])
        return torch.addmm(x, coords, left.mT, alpha=-1)


class LeaceFitter(LabelMatrixFitter):
    """Streaming statistics for LEACE.

    Args:
        x_dim: width d of the activations.
        z_dim: number of label columns m (classes, for integer labels).
        method: `"leace"` (oblique, least-squares optimal) or `"orth"` (orthogonal projection
            removing col(Σ_xz); needs no Σ_xx).
        affine: erase about the mean (keeps the mean; class means coincide afterwards).
        shrinkage: estimate Σ_xx with optimal linear shrinkage (breaks exact optimality).
        svd_tol: singular values of WΣ_xz at or below this are treated as zero.
        dtype: dtype of the statistics.
    """

    eraser_class = LeaceEraser

    def __init__(self, x_dim: int, z_dim: int, *, method: str = "leace", affine: bool = True,
                 shrinkage: bool = False, svd_tol: float = 0.01,
                 dtype: torch.dtype = torch.float64, device=None):
        check.choice(method, "method", ("leace", "orth"))
        super().__init__(x_dim, z_dim, shrinkage=shrinkage, svd_tol=svd_tol, dtype=dtype)
        self.method, self.affine = method, affine
        self.stats = Moments(x_dim, z_dim, xx=method == "leace", dtype=dtype, device=device)

    def _compute(self) -> LeaceEraser:
        self._require(int(self.stats.n.sum()))
        sigma_xz = self.stats.covariance("xz")[0]
        if self.method == "orth":
            whiten = unwhiten = None
            cross = sigma_xz
            still = (sigma_xz == 0).all(1)
        else:
            sigma_xx = self.stats.covariance("xx", shrinkage=self.shrinkage)[0]
            # Data computed in float64 carry rounding noise of relative size ~ d·eps, so
            # (already-erased) data with no real variance still show some; whitening must
            # not blow it up into a direction. Variance below (1e3·d·eps)² of the second
            # moment E‖x‖² (a relative spread under ~1e-10 for d = 1000) counts as none.
            second_moment = self.stats.mean_x[0].square().sum() + sigma_xx.trace()
            floor = (1e3 * self.x_dim * EPS64) ** 2 * second_moment
            lam, vecs, mask = psd_eigh(sigma_xx, atol=floor)
            still = sigma_xx.diagonal() <= floor
            root = torch.where(mask, lam.sqrt(), 0)
            inv_root = torch.where(mask, 1 / torch.where(mask, root, 1), 0)
            whiten = (vecs * inv_root) @ vecs.mT
            unwhiten = (vecs * root) @ vecs.mT
            cross = whiten @ sigma_xz
        u, s, _ = torch.linalg.svd(cross, full_matrices=False)
        u = u * (s > self.svd_tol)  # static shape: no device sync, zero columns are inert
        left = u if unwhiten is None else unwhiten @ u
        # Coordinates without variance (dead units) carry no concept. An edit there could only
        # write rounding noise (~1e-19) that tracks the label, and a probe that standardises
        # each unit would blow that noise up into a perfect predictor: leave them untouched.
        left = left.masked_fill(still[:, None], 0)
        right = u.mT if whiten is None else u.mT @ whiten
        bias = self.stats.mean_x[0] if self.affine else None
        return LeaceEraser(left, right, bias)

    @property
    def trace_diagnostics(self) -> dict[str, float]:
        """`tr Σ_xx` before and after erasure (after ≤ before in exact arithmetic)."""
        if self.stats.m_xx is None:
            raise ConfigError("trace diagnostics need Σ_xx, which method='orth' does not track")
        sigma = self.stats.covariance("xx", shrinkage=self.shrinkage)[0]
        p = self.eraser.P
        return {"trace_before": float(sigma.trace()),
                "trace_after": float((p @ sigma @ p.mT).trace())}


LeaceEraser.fitter = LeaceFitter
