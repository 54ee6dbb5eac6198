"""Control erasers: do nothing, or delete a random subspace of matched rank."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from .base import Eraser, Fitter
from .stats import Moments


@dataclasses.dataclass(frozen=True, repr=False)
class IdentityEraser(Eraser):
    """`x' = x`: the control condition. Accepts (and ignores) labels."""

    def _apply(self, x: Tensor, z) -> Tensor:
        return x

    @classmethod
    def fit(cls, x=None, z=None, **kwargs) -> IdentityEraser:
        return cls()


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class RandomEraser(Eraser):
    """`x' = μ + (I − QQᵀ)(x − μ)` for a random orthonormal `Q [d, r]`: a rank-matched control.

    It removes as many dimensions as the eraser it controls for, but not the concept's.
    Q comes from the QR decomposition of a Gaussian matrix drawn on the CPU from `seed`, so
    the same seed gives the same subspace on every device.
    """

    basis: Tensor
    """`[d, r]` orthonormal columns Q."""
    mean: Tensor
    """`[d]` centre μ (zero unless fitted on data)."""

    def __init__(self, x_dim: int, rank: int, seed: int = 0, *, mean: Tensor | None = None,
                 device=None):
        x_dim = check.positive_int(x_dim, "x_dim")
        rank = check.positive_int(rank, "rank", minimum=0)
        if rank > x_dim:
            raise ConfigError(f"rank must be ≤ x_dim = {x_dim}, got {rank}")
        gen = torch.Generator().manual_seed(seed)
        gauss = torch.randn(x_dim, rank, generator=gen, dtype=torch.float64)
        basis = torch.linalg.qr(gauss).Q
        mean = torch.zeros(x_dim, dtype=torch.float64) if mean is None else mean
        object.__setattr__(self, "basis", basis.to(device))
        object.__setattr__(self, "mean", mean.to(device=device, dtype=torch.float64))
        self.__post_init__()

    @property
    def dim(self) -> int:
        return self.basis.shape[0]

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def _apply(self, x: Tensor, z) -> Tensor:
        q = self.basis.to(x.dtype)
        centred = x - self.mean.to(x.dtype)
        return x - (centred @ q) @ q.mT


class RandomFitter(Fitter):
    """Fits a `RandomEraser`'s centre μ on data (streaming); labels and `shrinkage` are
    accepted for a uniform interface and ignored."""

    eraser_class = RandomEraser

    def __init__(self, x_dim: int, rank: int, seed: int = 0, *, shrinkage: bool = False,
                 dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        x_dim = check.positive_int(x_dim, "x_dim")
        check.float_dtype(dtype)
        self.x_dim, self.rank, self.seed = x_dim, rank, seed
        self.stats = Moments(x_dim, xx=False, dtype=dtype, device=device)

    @classmethod
    def fit(cls, x, z=None, **kwargs) -> RandomFitter:
        x = check.features(x)
        kwargs.setdefault("device", x.device)
        return cls(x.shape[-1], **kwargs).update(x)

    @torch.no_grad()
    def update(self, x, z=None) -> RandomFitter:
        x = check.features(x, "x", self.x_dim)
        check.same_device(("x", x), ("statistics", self.stats.mean_x))
        self.stats.update(x)
        self._eraser = None
        return self

    def _compute(self) -> RandomEraser:
        self._require(int(self.stats.n.sum()), minimum=1)
        return RandomEraser(self.x_dim, self.rank, self.seed, mean=self.stats.mean_x[0],
                            device=self.stats.device)


RandomEraser.fitter = RandomFitter
