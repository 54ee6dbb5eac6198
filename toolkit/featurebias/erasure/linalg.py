"""Numerical primitives in float64: PSD roots, shrinkage, Gaussian optimal transport.

All functions are batched over leading dimensions and run unchanged on CUDA.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ..errors import ShapeError

EPS64 = torch.finfo(torch.float64).eps


def sym(a: Tensor) -> Tensor:
    """Symmetric part `(A + Aᵀ)/2`; rounding leaves accumulated matrices slightly asymmetric."""
    return (a + a.mT) / 2


def rounding_floor(x: Tensor, s_max: float) -> float:
    """The largest singular value rounding alone can put into `x [n, p]` (or a centred copy of
    it) whose largest is `s_max`: storing x in its dtype moves each entry by up to
    eps·max|x|, noise whose singular values reach about eps·max|x|·(√n + √p), and a float64
    SVD adds ~eps64·max(n, p)·s_max. Directions below it are not resolved by the data."""
    n, p = x.shape
    stored = torch.finfo(x.dtype).eps if x.is_floating_point() else 0.0
    top = float(x.abs().max()) if x.numel() else 0.0
    return stored * top * (n ** 0.5 + p ** 0.5) + EPS64 * max(n, p) * s_max


def symmetric_product(a: Tensor, *, rows: bool = False) -> Tensor:
    """The symmetric product `aᵀ a` (or `a aᵀ` with `rows`), in `a`'s dtype.

    On CPU, float32 and float64 go to numpy, which sends a product of an array with its own
    transpose to BLAS syrk: one triangle, half the multiply-adds, mirrored exactly. With one
    thread that is 1.1-1.9x faster than torch's general product for float32 and 1.0-1.7x
    for float64 (measured at 2k-20k rows of width 128-1024). Elsewhere, and for tensors that
    need gradients, it is a plain matmul.
    """
    if a.device.type != "cpu" or a.requires_grad or a.dtype not in (torch.float32,
                                                                     torch.float64):
        return sym(a @ a.T if rows else a.T @ a)  # exactly symmetric, as syrk's is
    an = a.detach().contiguous().numpy()
    return torch.from_numpy(an @ an.T if rows else an.T @ an)


def _fortran_t(a: Tensor) -> np.ndarray:
    """A Fortran-ordered view of `aᵀ` (BLAS then copies nothing)."""
    return a.detach().contiguous().numpy().T


def _from_upper(upper: np.ndarray) -> Tensor:
    """The symmetric matrix whose upper triangle (Fortran order) is `upper`'s; the lower is 0."""
    u = torch.from_numpy(upper)
    full = u.T + u  # u is Fortran-ordered: its transpose first gives a C-order sum
    full.diagonal().copy_(u.diagonal())
    return full


class SymmetricSum:
    """A running float64 sum `Σ aᵀa` over row chunks `a [m, width]`.

    On CPU each chunk goes to BLAS dsyrk, which adds into one triangle of the total in
    place: half the multiply-adds of a general product and no `width²` temporary per chunk.
    Elsewhere, a plain `addmm`.
    """

    def __init__(self, width: int, device=None):
        self.width = width
        self.device = torch.device(device or "cpu")
        if self.device.type == "cpu":  # a Fortran-ordered triangle that dsyrk updates in place
            self._upper = np.zeros((width, width), order="F")
        else:
            self._full = torch.zeros(width, width, dtype=torch.float64, device=self.device)

    def add(self, a: Tensor) -> SymmetricSum:
        """Add `aᵀa` for `a [m, width]` (moved to the sum's device, in float64); returns self."""
        if a.ndim != 2 or a.shape[1] != self.width:
            raise ShapeError(f"expected rows of width {self.width}, [m, {self.width}], got "
                             f"{tuple(a.shape)}")
        a = a.to(self.device, torch.float64)
        if self.device.type != "cpu":
            self._full.addmm_(a.T, a)
            return self
        from scipy.linalg import blas

        self._upper = blas.dsyrk(1.0, _fortran_t(a), beta=1.0, c=self._upper, trans=0,
                                 overwrite_c=1)
        return self

    def total(self) -> Tensor:
        """The full symmetric `[width, width]` sum so far."""
        if self.device.type != "cpu":
            return sym(self._full)
        return _from_upper(self._upper.copy(order="F"))


def psd_eigh(a: Tensor, rtol: float | None = None,
             atol: Tensor | float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Eigen-decomposition of a PSD matrix: clamped eigenvalues, vectors, and support mask.

    The support is `λ > max(rtol · λ_max, atol)` with `rtol = d · eps(float64)` by default
    (the `pinv` heuristic), always in float64 so that low-precision statistics don't mask
    everything. `atol` lets a caller discard a spectrum that is rounding noise altogether.
    """
    lam, vecs = torch.linalg.eigh(sym(a))
    lam = lam.clamp_min(0)
    rtol = a.shape[-1] * EPS64 if rtol is None else rtol
    mask = (lam > rtol * lam[..., -1:]) & (lam > atol)
    return lam, vecs, mask


def _rebuild(vecs: Tensor, diag: Tensor) -> Tensor:
    return (vecs * diag[..., None, :]) @ vecs.mT


def psd_sqrt(a: Tensor) -> Tensor:
    """The PSD square root `A^{1/2}`."""
    lam, vecs, mask = psd_eigh(a)
    return _rebuild(vecs, torch.where(mask, lam.sqrt(), 0))


def psd_roots(a: Tensor) -> tuple[Tensor, Tensor]:
    """`A^{1/2}` and the pseudo-inverse root `A^{+1/2}` from one decomposition."""
    lam, vecs, mask = psd_eigh(a)
    root = torch.where(mask, lam.sqrt(), 0)
    inv_root = torch.where(mask, 1 / torch.where(mask, root, 1), 0)
    return _rebuild(vecs, root), _rebuild(vecs, inv_root)


def olse(s: Tensor, n: Tensor | float) -> Tensor:
    """Optimal linear shrinkage (Bodnar, Gupta & Parolya) of ML covariances `S = M/n`.

    `α S + (1 − α)(tr S / p) I` with `α = 1 − (tr S)² / (n (‖S‖²_F − (tr S)²/p))` clipped to
    [0, 1]; α = 0 where S is isotropic or zero (the estimate then equals S).
    """
    p = s.shape[-1]
    tr = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    spread = s.square().sum((-2, -1), keepdim=True) - tr.square() / p
    n = torch.as_tensor(n, dtype=s.dtype, device=s.device)
    degenerate = spread <= EPS64 * tr.square() / p
    alpha = 1 - tr.square() / (n * torch.where(degenerate, 1, spread))
    alpha = torch.where(degenerate, 0, alpha.clamp(0, 1))
    eye = torch.eye(p, dtype=s.dtype, device=s.device)
    shrunk = alpha * s + (1 - alpha) * (tr / p) * eye
    return torch.where(degenerate, s, shrunk)


def ot_map(source: Tensor, target: Tensor) -> Tensor:
    """Gaussian OT map `A = Σs^{+1/2} (Σs^{1/2} Σt Σs^{1/2})^{1/2} Σs^{+1/2}` (batched).

    `x ↦ μt + A (x − μs)` moves `N(μs, Σs)` onto `N(μt, Σt)`; A is symmetric PSD and
    `A Σs A = Σt` when Σs has full rank.
    """
    root, inv_root = psd_roots(source)
    return inv_root @ psd_sqrt(root @ target @ root) @ inv_root


def w2_squared(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between two Gaussians (batched)."""
    root = psd_sqrt(cov_a)
    lam, _, mask = psd_eigh(root @ cov_b @ root)
    cross = torch.where(mask, lam.sqrt(), 0).sum(-1)  # rounding-level λ would add √eps
    trace = torch.diagonal(cov_a + cov_b, dim1=-2, dim2=-1).sum(-1)
    return (mean_a - mean_b).square().sum(-1) + trace - 2 * cross


def _factor(s: Tensor) -> tuple[Tensor, Tensor]:
    """A factor F with FᵀF = S and its pseudo-inverse; Cholesky where S is PD (cheap)."""
    chol, info = torch.linalg.cholesky_ex(s)
    if int(info) == 0:
        eye = torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
        return chol.mT, torch.linalg.solve_triangular(chol, eye, upper=False).mT
    return psd_roots(s)


def barycenter_maps(covs: Tensor, weights: Tensor, *, tol: float = 1e-12,
                    max_iter: int = 100) -> tuple[Tensor, Tensor]:
    """W₂ barycenter `Σ̄` of centred Gaussians and the OT map of each onto it.

    Args:
        covs: `[k, d, d]` class covariances.
        weights: `[k]` weights summing to one (class priors).
        tol: stop when the relative fixed-point residual ‖F(S) − S‖/‖S‖ falls below it.
        max_iter: iteration cap (a warning is raised if it is hit).

    Returns:
        `(Σ̄ [d, d], maps [k, d, d])`.

    For k = 2 the closed form (the W₂ geodesic at t = π₂) is used. For k > 2 the fixed point
    of Álvarez-Esteban et al. (2016), `S ← T̄ S T̄` with `T̄ = Σ_c π_c T_{S→c}`, is run with
    Anderson acceleration (safeguarded: a step that is not PD falls back to the plain one).
    Any factor F with FᵀF = S gives the same T, so a Cholesky factor replaces the
    eigendecomposition of S; the k inner square roots are the only eigendecompositions.
    When every class covariance has full rank, the maps come from the last iteration for
    free: `A_c = Fᵀ (F Σ_c Fᵀ)^{-1/2} F`.
    """
    k, d = covs.shape[0], covs.shape[-1]
    w = weights.to(covs.dtype)[:, None, None]
    if k == 2:
        factor, inv_factor = _factor(covs[0])
        lam, vecs, mask = psd_eigh(factor @ covs[1] @ factor.mT)
        transport = inv_factor @ _rebuild(vecs, torch.where(mask, lam.sqrt(), 0)) @ inv_factor.mT
        eye = torch.eye(d, dtype=covs.dtype, device=covs.device)
        first = w[0] * eye + w[1] * transport
        bary = sym(first @ covs[0] @ first)
        if bool(mask.all()):
            inverse = factor.mT @ _rebuild(vecs, torch.where(mask, lam.rsqrt(), 0)) @ factor
            return bary, torch.stack([first, sym(w[1] * eye + w[0] * inverse)])
        return bary, ot_map(covs, bary)

    s = (w * covs).sum(0)
    history_x: list[Tensor] = []
    history_g: list[Tensor] = []
    for iteration in range(max_iter):
        factor, inv_factor = _factor(s)
        lam, vecs, mask = psd_eigh(factor @ covs @ factor.mT)
        mean_root = (w * _rebuild(vecs, torch.where(mask, lam.sqrt(), 0))).sum(0)
        t_bar = inv_factor @ mean_root @ inv_factor.mT
        step = sym(t_bar @ s @ t_bar)
        residual = float((step - s).norm() / s.norm())
        if residual < tol:
            break
        if iteration == max_iter - 1:  # keep s: the decomposition above belongs to it
            warnings.warn(f"Wasserstein barycenter did not converge in {max_iter} iterations "
                          f"(relative residual {residual:.2e})", RuntimeWarning, stacklevel=3)
            break
        s = _anderson(step, step - s, history_x, history_g)
    if bool(mask.all()):
        maps = factor.mT @ _rebuild(vecs, lam.rsqrt()) @ factor
        return s, sym(maps)
    return s, ot_map(covs, s)


def _anderson(step: Tensor, residual: Tensor, xs: list[Tensor], gs: list[Tensor],
              memory: int = 5) -> Tensor:
    """Anderson-accelerated next iterate from the last `memory` steps; plain step if not PD."""
    xs.append(step.flatten())
    gs.append(residual.flatten())
    del xs[:-memory], gs[:-memory]
    if len(gs) < 2:
        return step
    g = torch.stack(gs, 1)
    x = torch.stack(xs, 1)
    gamma = torch.linalg.lstsq(g[:, 1:] - g[:, :-1], g[:, -1:]).solution
    candidate = sym((x[:, -1:] - (x[:, 1:] - x[:, :-1]) @ gamma).view_as(step))
    if int(torch.linalg.cholesky_ex(candidate).info) == 0:
        return candidate
    return step
