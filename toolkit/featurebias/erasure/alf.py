"""ALF-QLEACE: LEACE followed by deleting the directions where class covariances disagree.

Labels are used at fit time only; the eraser is one affine map for every input, so, unlike
QLEACE, it cannot inject label information. It deletes variance to do so: see
`AlfQleaceEraser.trace_*`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from ._alf_greedy import greedy_directions
from .base import Eraser, Fitter
from .leace import LeaceFitter
from .quadratic import QuadraticFitter


@dataclasses.dataclass(frozen=True, repr=False)
class AlfQleaceEraser(Eraser):
    """`x₁ = x − L R (x − μ)` (LEACE), then `x' = μ + (I − VᵀV)(x₁ − μ)`."""

    proj_left: Tensor
    """`[d, m]` LEACE's L."""
    proj_right: Tensor
    """`[m, d]` LEACE's R."""
    mean: Tensor
    """`[d]` the data mean μ (kept by the map)."""
    directions: Tensor
    """`[r, d]` orthonormal rows V, deleted after LEACE."""
    trace_before: float
    """`tr Cov(x)` on the fitting data."""
    trace_leace: float
    """`tr Cov` after the LEACE step."""
    trace_after: float
    """`tr Cov` after the whole map."""

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def rank(self) -> int:
        """Number of directions deleted after LEACE (r_ALF)."""
        return self.directions.shape[0]

    def _apply(self, x: Tensor, z) -> Tensor:
        left, right, v = (t.to(x.dtype) for t in (self.proj_left, self.proj_right,
                                                  self.directions))
        centred = x - self.mean.to(x.dtype)
        centred = centred - (centred @ right.mT) @ left.mT
        centred = centred - (centred @ v.mT) @ v
        return centred + self.mean.to(x.dtype)


class AlfQleaceFitter(Fitter):
    """Streaming statistics for ALF-QLEACE (global LEACE moments plus class covariances).

    Args:
        x_dim: width d.
        num_classes: number of classes k (≥ 2).
        method: LEACE variant for the first step (`"leace"` or `"orth"`).
        svd_tol: LEACE's singular-value tolerance.
        target_erasure: stop once the largest class-covariance disagreement ‖D_c‖_F falls
            below `(1 − target_erasure)` of its post-LEACE value.
        max_rank: most directions to delete (default d).
        prior_weighted: average class covariances with the class priors instead of 1/k.
        shrinkage: optimal linear shrinkage of the covariances.
        dtype: dtype of the statistics.
    """

    eraser_class = AlfQleaceEraser

    def __init__(self, x_dim: int, num_classes: int, *, method: str = "leace",
                 svd_tol: float = 0.01, target_erasure: float = 0.9, max_rank: int | None = None,
                 prior_weighted: bool = False, shrinkage: bool = False,
                 dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        if not 0 <= target_erasure <= 1:
            raise ConfigError(f"target_erasure must lie in [0, 1], got {target_erasure!r}")
        max_rank = x_dim if max_rank is None else check.positive_int(max_rank, "max_rank", 0)
        self.leace = LeaceFitter(x_dim, num_classes, method=method, svd_tol=svd_tol,
                                 shrinkage=shrinkage, dtype=dtype, device=device)
        self.classes = QuadraticFitter(x_dim, num_classes, shrinkage=shrinkage, dtype=dtype,
                                       device=device)
        self.target_erasure, self.max_rank, self.prior_weighted = (
            target_erasure, max_rank, prior_weighted)

    # Same inputs as QLEACE's fitter (class ids, num_classes inferred), so the same one-call fit.
    fit = classmethod(QuadraticFitter.fit.__func__)

    @property
    def stats(self):
        """Class-conditional statistics (the global ones are in `self.leace.stats`)."""
        return self.classes.stats

    def _statistics(self) -> dict:
        return {"leace": self.leace.stats, "classes": self.classes.stats}

    def _set_statistics(self, stats: dict) -> None:
        self.leace.stats, self.classes.stats = stats["leace"], stats["classes"]
        self.leace._eraser = self.classes._eraser = None

    @torch.no_grad()
    def update(self, x, z) -> AlfQleaceFitter:
        """Fold in a batch `x [..., d]` with class ids z; returns self."""
        x = check.features(x, "x", self.classes.x_dim)
        ids = check.class_ids(z, x.shape[0], self.classes.num_classes)
        check.same_device(("x", x), ("z", ids), ("statistics", self.stats.mean_x))
        # Both folds must succeed or neither: both batches first, then commit.
        leace = self.leace.stats.batch(x, torch.nn.functional.one_hot(
            ids, self.classes.num_classes))
        classes = self.classes.stats.batch(x, groups=ids)
        self.leace.stats._absorb(leace)
        self.classes.stats._absorb(classes)
        self.leace._eraser = self.classes._eraser = self._eraser = None
        return self

    def _compute(self) -> AlfQleaceEraser:
        leace = self.leace.eraser
        covs = self.classes.class_covariances()
        p = leace.P
        covs = p @ covs @ p.mT
        weights = (self.classes.priors.to(covs.dtype) if self.prior_weighted
                   else torch.full((covs.shape[0],), 1 / covs.shape[0], dtype=covs.dtype,
                                   device=covs.device))
        directions = greedy_directions(covs, weights, self.target_erasure, self.max_rank)
        sigma = self._total_covariance()
        after_leace = p @ sigma @ p.mT
        q = torch.eye(p.shape[0], dtype=p.dtype, device=p.device) - directions.mT @ directions
        return AlfQleaceEraser(
            leace.proj_left, leace.proj_right, self.leace.stats.mean_x[0], directions,
            float(sigma.trace()), float(after_leace.trace()), float((q @ after_leace @ q).trace()))

    def _total_covariance(self) -> Tensor:
        """Global covariance from the class moments: within- plus between-class scatter."""
        s = self.classes.stats
        n = s.n.to(s.dtype)
        offsets = s.mean_x - (n @ s.mean_x) / n.sum()
        scatter = s.m_xx.sum(0) + (offsets.mT * n) @ offsets
        return scatter / (n.sum() - 1)


AlfQleaceEraser.fitter = AlfQleaceFitter
