"""QLEACE: quadratic concept erasure by Gaussian optimal transport to the W₂ barycenter."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import LabelError
from .base import Eraser, Fitter, check_two_classes
from .grouping import grouped_affine
from .linalg import barycenter_maps, ot_map
from .stats import Moments


@dataclasses.dataclass(frozen=True, repr=False)
class QuadraticEraser(Eraser):
    """`x' = μ̄ + A_z (x − μ_z)`: every class gets the same mean and covariance.

    Afterwards no linear classifier and no Gaussian QDA beats the prior. The map depends on
    the label, so it needs z at apply time (for evaluation data too) and can inject
    higher-order label information.
    """

    requires_labels = True

    class_means: Tensor
    """`[k, d]` class means μ_c."""
    target_mean: Tensor
    """`[d]` common mean μ̄ after erasure."""
    ot_maps: Tensor
    """`[k, d, d]` symmetric OT maps A_c onto the barycenter covariance."""

    @property
    def dim(self) -> int:
        return self.class_means.shape[1]

    def _apply(self, x: Tensor, z) -> Tensor:
        k = self.class_means.shape[0]
        ids = check.class_ids(z, x.shape[0], k).to(x.device)
        return grouped_affine(x, ids, *self._affine(x.dtype))

    def __getstate__(self) -> dict:  # the per-dtype cache is rebuilt, never saved or shared
        return {k: v for k, v in self.__dict__.items() if k != "_affine_cache"}

    def _affine(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The maps and row shifts in `dtype`, computed once per dtype: casting k·d² entries
        on every batch cost ~7x the erasure itself (d = 1024, 10 classes, 32 rows)."""
        cache = self.__dict__.setdefault("_affine_cache", {})
        if dtype not in cache:
            # A_c is symmetric, so the row form of μ̄ + A_c(x − μ_c) is x A_c + (μ̄ − μ_c A_c).
            shifts = self.target_mean - (self.class_means[:, None, :] @ self.ot_maps)[:, 0]
            cache[dtype] = self.ot_maps.to(dtype), shifts.to(dtype)
        return cache[dtype]


@dataclasses.dataclass(frozen=True, repr=False)
class QuadraticEditor(Eraser):
    """`editor(x, s, t) = μ_t + A_{s→t}(x − μ_s)`: class-s inputs get class t's two moments.

    Pairwise maps are built on demand for the (source, target) pairs in each call, so memory
    stays at k·d² however many classes there are.
    """

    class_means: Tensor
    """`[k, d]`."""
    class_covs: Tensor
    """`[k, d, d]`."""

    requires_labels = True

    @property
    def dim(self) -> int:
        return self.class_means.shape[1]

    def __call__(self, x: Tensor, source_z, target_z) -> Tensor:
        k, d = self.class_means.shape
        x = check.as_tensor(x, "x")
        work = self._input(x)
        n = work.shape[0]
        source = check.class_ids(source_z, n, k, "source_z")
        target = check.as_tensor(target_z, "target_z")
        target = check.class_ids(target.expand(n) if target.ndim == 0 else target, n, k,
                                 "target_z")
        pairs, pair_ids = torch.unique(source * k + target, return_inverse=True)
        s, t = pairs // k, pairs % k
        maps = ot_map(self.class_covs[s], self.class_covs[t])
        maps = torch.where((s == t)[:, None, None], torch.eye(d, dtype=maps.dtype,
                                                                device=maps.device), maps)
        means = self.class_means
        shifts = means[t] - (means[s][:, None, :] @ maps)[:, 0]
        out = grouped_affine(work, pair_ids, maps.to(work.dtype), shifts.to(work.dtype))
        return self._output(out, x)


class QuadraticFitter(Fitter):
    """Per-class streaming statistics for QLEACE.

    Args:
        x_dim: width d.
        num_classes: number of classes k (≥ 2).
        shrinkage: optimal linear shrinkage of each class covariance (use it when they are
            singular, e.g. on images; it breaks exact covariance equality).
        target_mean: `"prior"` (class-prior-weighted, = the global mean) or `"uniform"`
            (plain average of class means, as the reference implementation does).
        tol, max_iter: convergence of the barycenter fixed point (k > 2).
        dtype: dtype of the statistics.
    """

    eraser_class = QuadraticEraser

    def __init__(self, x_dim: int, num_classes: int, *, shrinkage: bool = False,
                 target_mean: str = "prior", tol: float = 1e-12, max_iter: int = 100,
                 dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        x_dim = check.positive_int(x_dim, "x_dim")
        num_classes = check.positive_int(num_classes, "num_classes", minimum=2)
        check.choice(target_mean, "target_mean", ("prior", "uniform"))
        max_iter = check.positive_int(max_iter, "max_iter")
        check.float_dtype(dtype)
        self.x_dim, self.num_classes = x_dim, num_classes
        self.shrinkage, self.target_mean, self.tol, self.max_iter = (
            shrinkage, target_mean, tol, max_iter)
        self.stats = Moments(x_dim, groups=num_classes, dtype=dtype, device=device)

    @classmethod
    def fit(cls, x, z, **kwargs) -> QuadraticFitter:
        """Fitter updated with one batch; `num_classes` is inferred from z when not given."""
        x = check.features(x)
        z = check.as_tensor(z, "z")
        if "num_classes" not in kwargs:
            floating = z.is_floating_point() and z.ndim >= 2
            kwargs["num_classes"] = z.shape[-1] if floating else int(z.max()) + 1
        check_two_classes(check.class_ids(z, x.shape[0], kwargs["num_classes"]),
                          kwargs["num_classes"])
        kwargs.setdefault("device", x.device)
        return cls(x.shape[-1], **kwargs).update(x, z)

    @torch.no_grad()
    def update(self, x, z) -> QuadraticFitter:
        """Fold in a batch `x [..., d]` with class ids z; returns self."""
        x = check.features(x, "x", self.x_dim)
        ids = check.class_ids(z, x.shape[0], self.num_classes)
        check.same_device(("x", x), ("z", ids), ("statistics", self.stats.mean_x))
        self.stats.update(x, groups=ids)
        self._eraser = None
        return self

    def class_covariances(self) -> Tensor:
        """`[k, d, d]` class covariances (n_c − 1 normaliser, or OLSE with shrinkage)."""
        counts = self.stats.n
        small = (counts < 2).nonzero().flatten().tolist()
        if small:
            raise LabelError(f"class(es) {small} have fewer than 2 samples "
                             f"(counts {counts.tolist()}); QLEACE needs ≥ 2 per class")
        return self.stats.covariance("xx", shrinkage=self.shrinkage)

    @property
    def priors(self) -> Tensor:
        """`[k]` class frequencies, in the statistics' dtype (int / int would be float32)."""
        n = self.stats.n.to(self.stats.dtype)
        return n / n.sum()

    def _compute(self) -> QuadraticEraser:
        covs = self.class_covariances()
        priors = self.priors.to(covs.dtype)
        _, maps = barycenter_maps(covs, priors, tol=self.tol, max_iter=self.max_iter)
        means = self.stats.mean_x
        uniform = torch.full_like(priors, 1 / len(priors))
        weights = priors if self.target_mean == "prior" else uniform
        return QuadraticEraser(means, weights @ means, maps)

    def barycenter(self) -> Tensor:
        """`[d, d]` the W₂ barycenter Σ̄ of the class covariances."""
        covs = self.class_covariances()
        return barycenter_maps(covs, self.priors.to(covs.dtype), tol=self.tol,
                               max_iter=self.max_iter)[0]

    def editor(self) -> QuadraticEditor:
        """Pairwise editor: moves class-s inputs onto class t's mean and covariance."""
        return QuadraticEditor(self.stats.mean_x, self.class_covariances())


QuadraticEraser.fitter = QuadraticFitter
