"""Closed-form least squares in float64, shared by the feature-strength metrics."""

from __future__ import annotations

import torch
from torch import Tensor

# Relative eigenvalue floor of the standardised Gram matrix: drops exactly collinear design
# columns (and levels absent from the fit rows) like a minimum-norm least-squares solution.
RTOL = 1e-10


def centre(h: Tensor, rows: Tensor) -> Tensor:
    """`h` minus the mean of `h[rows]`; columns constant on `rows` become exactly 0 there."""
    ref = h[rows]
    # A float mean of equal values can miss them by an ulp; a dead layer must give exactly 0.
    const = ref.amax(0) == ref.amin(0)
    return h - torch.where(const, ref[0], ref.mean(0))


def _standardise(x_fit: Tensor, *others: Tensor) -> list[Tensor]:
    # Centring removes the intercept from the solve, scaling keeps the Gram matrix well
    # conditioned; neither changes the predictions.
    mu, sd = x_fit.mean(0), x_fit.std(0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    return [(t - mu) / sd for t in (x_fit, *others)]


def _solve(a: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """`aᵀy` and the least-squares coefficients `(aᵀa)⁺ aᵀy`."""
    c = a.T @ y
    return c, torch.linalg.pinv(a.T @ a, rtol=RTOL, hermitian=True) @ c


def predict(x_fit: Tensor, y_fit: Tensor, x_test: Tensor) -> Tensor:
    """Least squares with intercept, fitted on `(x_fit, y_fit)`, evaluated at `x_test`."""
    if x_fit.shape[1] == 0:
        return y_fit.mean(0).expand(x_test.shape[0], -1)
    a, b = _standardise(x_fit, x_test)
    y_mean = y_fit.mean(0)
    return b @ _solve(a, y_fit - y_mean)[1] + y_mean


def explained_ss(x: Tensor, y: Tensor) -> Tensor:
    """Per column of `y [n, m]`, the sum of squares an affine fit on `x [n, q]` explains."""
    (a,) = _standardise(x)
    c, coef = _solve(a, y - y.mean(0))
    return (c * coef).sum(0)


def r2_in_sample(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per column of `y`: in-sample R² of an affine fit on `x` (corr² for one column), and the
    column's centred sum of squares. Columns constant on these rows get R² NaN."""
    ss = (y - y.mean(0)).square().sum(0)
    const = y.amax(0) == y.amin(0)
    r2 = explained_ss(x, y) / torch.where(const, torch.ones_like(ss), ss)
    return torch.where(const, torch.full_like(r2, float("nan")), r2), torch.where(
        const, torch.zeros_like(ss), ss)
