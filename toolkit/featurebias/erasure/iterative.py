"""Gradient-based iterative erasure: optimise each class's images toward the global moments.

A dataset transform from paper 1: no closed form and no exact guarantee, but it changes the
images themselves (pixels stay in [0, 1]) rather than projecting them.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, LabelError, RangeError
from .base import Eraser, Fitter
from .grouping import Groups
from .stats import Moments


@dataclasses.dataclass(frozen=True, repr=False)
class IterativeEraser(Eraser):
    """Moves each class of `x ∈ [0,1]^d` toward the global mean μ and covariance Σ̂.

    For every class c it minimises, over `x = sigmoid(u)`,
    `w_mean ‖mean_c(x) − μ‖ + w_cov ‖Cov_c(x) − Σ̂‖_F + w_mse mean((x − x_orig)²)`
    with L-BFGS (strong-Wolfe line search). The objective is separable over classes, so all
    classes are optimised jointly as one sum: the same minimiser, no loop over classes.
    Defaults are the paper's CIFAR-10/SVHN weights.
    """

    requires_labels = True

    mean: Tensor
    """`[d]` target mean μ."""
    cov: Tensor
    """`[d, d]` target covariance Σ̂."""
    w_mean: float = 0.01
    w_cov: float = 0.01
    w_mse: float = 1.0
    max_iter: int = 100
    eps: float = 1e-4
    """Inputs are clipped to [eps, 1 − eps] before the logit."""

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def __call__(self, x: Tensor, z=None) -> Tensor:
        """Erase images `[n, ...]` (flattened to `[n, d]` and reshaped back) with labels z."""
        x = check.as_tensor(x, "x")
        flat = x.reshape(x.shape[0], -1) if x.ndim > 2 else x
        return super().__call__(flat, z).reshape(x.shape)

    def _objective(self, x: Tensor, x0: Tensor, ids: Tensor, k: int) -> Tensor:
        counts = torch.bincount(ids, minlength=k).to(x.dtype)
        present = counts > 0  # a class id absent from this batch has no moments to move
        means = x.new_zeros(k, x.shape[1]).index_add_(0, ids, x) / counts.clamp_min(1)[:, None]
        layout = Groups(ids, k, width=x.shape[1])
        centred = layout.pad(x - means[ids])
        covs = layout.combine(centred.mT @ centred) / (counts - 1).clamp_min(1)[:, None, None]
        mse = ((x - x0).square().sum(1) / (counts[ids] * x.shape[1])).sum()
        gaps = (self.w_mean * (means - self.mean).norm(dim=1)
                + self.w_cov * (covs - self.cov).flatten(1).norm(dim=1))
        return gaps[present].sum() + self.w_mse * mse

    def _ids(self, x: Tensor, z) -> tuple[Tensor, int]:
        z = check.as_tensor(z, "z")
        if z.is_floating_point():
            raise LabelError(f"z must hold integer class ids, got dtype {z.dtype}")
        k = int(z.max()) + 1 if z.numel() else 1
        ids = check.class_ids(z, x.shape[0], k)
        counts = torch.bincount(ids, minlength=k)
        if bool(((counts > 0) & (counts < 2)).any()):
            raise LabelError(f"every class needs ≥ 2 samples, got counts {counts.tolist()}")
        return ids, k

    def _apply(self, x: Tensor, z) -> Tensor:
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise RangeError("iterative erasure works on pixels in [0, 1], got values in "
                             f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
        ids, k = self._ids(x, z)
        x0 = x.to(self.mean.dtype)
        u = torch.logit(x0.clamp(self.eps, 1 - self.eps)).requires_grad_(True)
        optimiser = torch.optim.LBFGS([u], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = self._objective(torch.sigmoid(u), x0, ids, k)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimiser.step(closure)
        return torch.sigmoid(u.detach())

    @torch.no_grad()
    def moment_gaps(self, x, z) -> dict[str, float]:
        """Largest class-mean gap ‖mean_c − μ‖ and relative covariance gap ‖Cov_c − Σ̂‖/‖Σ̂‖."""
        flat = self._input(check.as_tensor(x, "x")).to(self.mean.dtype)
        ids, k = self._ids(flat, z)
        present = torch.bincount(ids, minlength=k) > 0
        counts = torch.bincount(ids, minlength=k).clamp_min(2).to(flat.dtype)
        means = flat.new_zeros(k, flat.shape[1]).index_add_(0, ids, flat) / counts[:, None]
        layout = Groups(ids, k, width=flat.shape[1])
        centred = layout.pad(flat - means[ids])
        covs = layout.combine(centred.mT @ centred) / (counts - 1)[:, None, None]
        mean_gap = (means - self.mean).norm(dim=1)[present].max()
        cov_gap = (covs - self.cov).flatten(1).norm(dim=1)[present].max() / self.cov.norm()
        return {"mean_gap": float(mean_gap), "cov_gap": float(cov_gap)}


class IterativeFitter(Fitter):
    """Global mean and covariance of the training split: the targets of iterative erasure.

    Args:
        x_dim: width d (flattened image size).
        shrinkage: shrink the target covariance with OLSE (the paper's setting is True).
        w_mean, w_cov, w_mse, max_iter, eps: passed to the eraser.
        dtype: dtype of the statistics and of the optimisation.
    """

    eraser_class = IterativeEraser

    def __init__(self, x_dim: int, *, shrinkage: bool = False, w_mean: float = 0.01,
                 w_cov: float = 0.01, w_mse: float = 1.0, max_iter: int = 100,
                 eps: float = 1e-4, dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        x_dim = check.positive_int(x_dim, "x_dim")
        max_iter = check.positive_int(max_iter, "max_iter")
        check.float_dtype(dtype)
        if min(w_mean, w_cov, w_mse) < 0:
            raise ConfigError(f"weights must be ≥ 0, got w_mean={w_mean}, w_cov={w_cov}, "
                              f"w_mse={w_mse}")
        if not 0 < eps < 0.5:
            raise ConfigError(f"eps must lie in (0, 0.5), got {eps!r}")
        self.x_dim, self.shrinkage = x_dim, shrinkage
        self.options = dict(w_mean=float(w_mean), w_cov=float(w_cov), w_mse=float(w_mse),
                            max_iter=max_iter, eps=float(eps))
        self.stats = Moments(x_dim, dtype=dtype, device=device)

    @classmethod
    def fit(cls, x, z=None, **kwargs) -> IterativeFitter:
        """Fitter updated with one batch of training images (labels are not needed to fit)."""
        x = check.features(x)
        kwargs.setdefault("device", x.device)
        return cls(x.shape[-1], **kwargs).update(x)

    @torch.no_grad()
    def update(self, x, z=None) -> IterativeFitter:
        """Fold in a batch of images `[n, ...]` (flattened to `[n, d]`); z is ignored."""
        x = check.as_tensor(x, "x")
        x = check.features(x.reshape(x.shape[0], -1) if x.ndim > 2 else x, "x", self.x_dim)
        check.same_device(("x", x), ("statistics", self.stats.mean_x))
        self.stats.update(x)
        self._eraser = None
        return self

    def _compute(self) -> IterativeEraser:
        self._require(int(self.stats.n.sum()))
        cov = self.stats.covariance("xx", shrinkage=self.shrinkage)[0]
        return IterativeEraser(self.stats.mean_x[0], cov, **self.options)


IterativeEraser.fitter = IterativeFitter
