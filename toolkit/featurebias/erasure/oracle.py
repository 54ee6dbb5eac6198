"""Oracle LEACE: least-squares erasure that may look at the labels when applied."""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import Tensor

from .. import _validate as check
from .base import Eraser, LabelMatrixFitter
from .stats import Moments


@dataclasses.dataclass(frozen=True, repr=False)
class OracleEraser(Eraser):
    """`x' = x − Σ_xz Σ_zz⁺ (z − μ_z)`: the smallest edit that decorrelates x from z.

    It needs z at apply time and, being label-dependent, can add non-linearly extractable
    information: a reference point, not an eraser to train on.
    """

    requires_labels = True

    coef: Tensor
    """`[d, m]` Σ_xz Σ_zz⁺."""
    mean_z: Tensor
    """`[m]` label mean."""

    @property
    def dim(self) -> int:
        return self.coef.shape[0]

    def _apply(self, x: Tensor, z) -> Tensor:
        z = check.label_matrix(z, x.shape[0], self.coef.shape[1]).to(x.dtype)
        check.same_device(("x", x), ("z", z))
        return x - (z - self.mean_z.to(x.dtype)) @ self.coef.to(x.dtype).mT


class OracleFitter(LabelMatrixFitter):
    """Streaming statistics for Oracle LEACE.

    Args:
        x_dim, z_dim: widths of x and of the label matrix.
        shrinkage: estimate Σ_zz with optimal linear shrinkage.
        svd_tol: absolute tolerance of the pseudo-inverse of Σ_zz.
        dtype: dtype of the statistics.
    """

    eraser_class = OracleEraser

    def __init__(self, x_dim: int, z_dim: int, *, shrinkage: bool = False,
                 svd_tol: float = 0.01, dtype: torch.dtype = torch.float64, device=None):
        super().__init__(x_dim, z_dim, shrinkage=shrinkage, svd_tol=svd_tol, dtype=dtype)
        self.stats = Moments(x_dim, z_dim, xx=False, zz=True, dtype=dtype, device=device)

    def _compute(self) -> OracleEraser:
        self._require(int(self.stats.n.sum()))
        sigma_zz = self.stats.covariance("zz", shrinkage=self.shrinkage)[0]
        _warn_dropped(torch.linalg.eigvalsh(sigma_zz), self.svd_tol)
        coef = self.stats.covariance("xz")[0] @ torch.linalg.pinv(
            sigma_zz, atol=self.svd_tol, hermitian=True)
        return OracleEraser(coef, self.stats.mean_z[0])


def _warn_dropped(variances: Tensor, svd_tol: float) -> None:
    """Warn when the pseudo-inverse drops label directions that carry variance: SCIENCE §3.2's
    absolute `svd_tol` drops, besides one-hot labels' exactly constant direction, every
    direction of variance ≤ svd_tol (a class of prior ≲ svd_tol), along which cov(x', z) is
    then not zero."""
    top = float(variances.max()) if variances.numel() else 0.0
    dropped = int(((variances > 1e-10 * top) & (variances <= svd_tol)).sum())
    if dropped:
        warnings.warn(f"Oracle LEACE leaves {dropped} label direction(s) unerased: their "
                      f"variance is at most svd_tol={svd_tol} (rare classes, e.g. a prior "
                      f"≲ {svd_tol}); pass a smaller svd_tol to erase them", stacklevel=4)


OracleEraser.fitter = OracleFitter
