"""`QuadraticProbe`: logistic regression on `[z, z_i z_j (i ≤ j)]`, z the top principal axes."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _validate as check
from . import _data
from .base import Probe
from .linear import DEFAULT_CS, LinearProbe


class QuadraticProbe(Probe):
    """A linear probe on the degree-2 monomials of `x`'s top `max_dim` principal components.

    SCIENCE §9.1(b): `x` is centred and (if `standardize`) scaled, projected on its
    `m = min(max_dim, d)` leading principal axes (fitted on the training data; without
    centring the first would point at the mean), and a `LinearProbe` is fitted
    on `[z, z_i z_j for i ≤ j]` (m + m(m+1)/2 features, standardised). For wide `x` this is
    the low-rank quadratic form `zᵀ A z + bᵀ z + c` restricted to the top-m subspace.

    Args are those of `LinearProbe` (they configure the inner probe) plus `max_dim`.
    Fitted: `mean_`, `scale_`, `components_ [m, d]`, `linear_` (the inner `LinearProbe`),
    `classes_`, `C_`.
    """

    def __init__(self, C: float | str = 1.0, *, max_dim: int = 32, Cs=DEFAULT_CS, cv: int = 5,
                 max_iter: int = 500, tol: float = 1e-4, standardize: bool = True,
                 class_weight: str | None = None, dtype: torch.dtype = torch.float32,
                 device=None, seed: int = 0):
        self.C = C
        self.max_dim = max_dim
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.class_weight = class_weight
        self.dtype = dtype
        self.device = device
        self.seed = seed

    def _inner(self) -> LinearProbe:
        return LinearProbe(self.C, Cs=self.Cs, cv=self.cv, max_iter=self.max_iter, tol=self.tol,
                           class_weight=self.class_weight, dtype=self.dtype, device=self.device,
                           seed=self.seed)

    def _check_params(self) -> None:
        super()._check_params()
        check.positive_int(self.max_dim, "max_dim")
        self._inner()._check_params()

    def _fit(self, x: Tensor, ids: Tensor, k: int) -> dict:
        mean, scale = _data.moments(x)
        if not self.standardize:
            scale = torch.ones_like(scale)
        z = (x - mean) / scale
        components = _principal_axes(z, min(self.max_dim, x.shape[1]))
        fitted = {"mean_": mean, "scale_": scale, "components_": components}
        linear = self._inner().fit(_expand(x, fitted), ids)
        fitted.update(linear_=linear, C_=linear.C_)
        return fitted

    def _log_proba(self, x: Tensor) -> Tensor:
        return self.linear_._log_proba(_expand(x, self.__dict__))

    def transform(self, x):
        """The quadratic features `[n, m + m(m+1)/2]` the inner probe sees."""
        x, like = self._inputs(x)
        return self._output(_expand(x, self.__dict__), like)


def _principal_axes(x: Tensor, m: int) -> Tensor:
    """The top-m eigenvectors `[m, d]` of `xᵀx / n` (x centred), signs fixed for determinism."""
    second = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], 8192):  # float64 without a float64 copy of x
        chunk = x[start:start + 8192].double()
        second += chunk.T @ chunk
    _, vec = torch.linalg.eigh(second / x.shape[0])
    axes = vec[:, -m:].flip(1).T
    sign = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return (axes * sign).to(x.dtype)


def _expand(x: Tensor, fitted: dict) -> Tensor:
    z = ((x - fitted["mean_"]) / fitted["scale_"]) @ fitted["components_"].T
    i, j = torch.triu_indices(z.shape[1], z.shape[1], device=z.device)
    return torch.cat([z, z[:, i] * z[:, j]], 1)
