"""Representational dissimilarity matrices (§8.2): euclidean, correlation, cosine, crossnobis.

Conventions follow rsatoolbox: squared Euclidean distances divided by the number of units p;
conditions (the RDM's rows) in sorted label order; crossnobis by leave-one-fold-out
cross-validation, `D_ij = mean_f (b̄_i^{¬f} − b̄_j^{¬f})ᵀ Λ (b_i^{f} − b_j^{f}) / p`, where
`b̄^{¬f}` averages every observation outside fold f and Λ is a noise precision.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, LabelError, RangeError, ShapeError
from ._inputs import F64, choice, labels, matrix, self_product

METRICS = ("correlation", "euclidean", "cosine", "crossnobis")
NOISE_METHODS = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


def rdm(x, metric: str = "correlation", *, conditions=None, folds=None, noise=None) -> Tensor:
    """The RDM `[C, C]` of activations `x [n, p]`, in `x`'s dtype (symmetric, zero diagonal).

    Args:
        metric: "correlation" (1 − Pearson across units), "euclidean" (‖bᵢ − bⱼ‖² / p),
            "cosine" (1 − cosine) or "crossnobis" (cross-validated Mahalanobis, unbiased, can be
            negative).
        conditions: one condition label per row; rows of a condition are averaged (required for
            crossnobis). None: every row is its own condition.
        folds: crossnobis only: one run/fold label per row (independent partitions, ≥ 2, each
            holding every condition).
        noise: crossnobis only: None (Λ = I, the cross-validated Euclidean distance), a
            precision matrix `[p, p]`, or a method of `noise_precision` ("shrinkage_diag", ...)
            to estimate Λ from the residuals of each row from its (condition, fold) mean.
    """
    x = matrix(x, "x")
    return rdm64(x, metric, conditions, folds, noise, "x").to(x.dtype)


def rdm64(x: Tensor, metric: str, conditions, folds, noise, name: str) -> Tensor:
    """`rdm` of a validated matrix, in float64."""
    choice(metric, "metric", METRICS)
    if metric == "crossnobis":
        return _crossnobis(x, conditions, folds, noise, name)
    if folds is not None or noise is not None:
        raise ConfigError(f"folds and noise only apply to metric='crossnobis', got "
                          f"metric={metric!r}")
    b = x.to(F64) if conditions is None else _condition_means(x, conditions, name)[0]
    if b.shape[0] < 2:
        raise ShapeError(f"{name} has {b.shape[0]} condition(s); an RDM needs at least 2")
    if metric == "euclidean":
        b = b - b.mean(0)  # distances ignore the mean; removing it keeps the Gram small
        sq = b.square().sum(1)
        # In place: on a VM every fresh C×C buffer costs page faults comparable to the maths.
        d = self_product(b, rows=True).mul_(-2).add_(sq[:, None]).add_(sq[None, :])
        d.clamp_min_(0).div_(b.shape[1])
    else:
        if metric == "correlation":
            b = b - b.mean(1, keepdim=True)
        norm = b.square().sum(1).sqrt()
        if not bool((norm > 0).all()):
            bad = (norm == 0).nonzero()[:, 0].tolist()[:8]
            what = "constant" if metric == "correlation" else "all-zero"
            raise RangeError(f"{name} has {what} condition pattern(s) (rows {bad}); the "
                             f"{metric} distance is undefined there. Expected patterns that "
                             "vary across units (or use metric='euclidean')")
        d = self_product(b / norm[:, None], rows=True).neg_().add_(1)
    return d.fill_diagonal_(0)


def _condition_means(x: Tensor, conditions, name: str) -> tuple[Tensor, Tensor]:
    codes, levels = labels(conditions, x.shape[0], f"conditions of {name}")
    codes = codes.to(x.device)
    sums = x.new_zeros((len(levels), x.shape[1]), dtype=F64).index_add_(0, codes, x.to(F64))
    counts = torch.bincount(codes, minlength=len(levels)).to(F64)
    return sums / counts[:, None], codes


def _crossnobis(x: Tensor, conditions, folds, noise, name: str) -> Tensor:
    if conditions is None or folds is None:
        raise ConfigError("metric='crossnobis' needs conditions (one label per row) and folds "
                          "(one run/fold label per row)")
    n, p = x.shape
    c_codes, c_levels = labels(conditions, n, f"conditions of {name}")
    f_codes, f_levels = labels(folds, n, f"folds of {name}")
    n_cond, n_fold = len(c_levels), len(f_levels)
    if n_fold < 2 or n_cond < 2:
        raise LabelError(f"crossnobis needs at least 2 folds and 2 conditions, got {n_fold} "
                         f"fold(s) and {n_cond} condition(s)")
    cell = (f_codes * n_cond + c_codes).to(x.device)
    x64 = x.to(F64)
    sums = x.new_zeros((n_fold * n_cond, p), dtype=F64).index_add_(0, cell, x64)
    counts = torch.bincount(cell, minlength=n_fold * n_cond).to(F64)
    if not bool((counts > 0).all()):
        missing = (counts == 0).nonzero()[:, 0].tolist()[:5]
        pairs = [(c_levels[i % n_cond].item(), f_levels[i // n_cond].item()) for i in missing]
        raise LabelError(f"crossnobis needs every condition in every fold; (condition, fold) "
                         f"cells {pairs} of {name} are empty")
    precision = _precision(noise, lambda: x64 - (sums / counts[:, None])[cell], p,
                           n - n_fold * n_cond, name, x.device)
    sums, counts = sums.view(n_fold, n_cond, p), counts.view(n_fold, n_cond, 1)
    total_s, total_n = sums.sum(0), counts.sum(0)
    d = x.new_zeros((n_cond, n_cond), dtype=F64)
    for f in range(n_fold):
        test = sums[f] / counts[f]
        train = (total_s - sums[f]) / (total_n - counts[f])
        k = train @ (test if precision is None else test @ precision).T
        kd = k.diagonal()
        d += kd[:, None] + kd[None, :] - k - k.T
    d = d / (n_fold * p)
    return d.fill_diagonal_(0)


def _precision(noise, residuals, p: int, dof: int, name: str, device) -> Tensor | None:
    if noise is None:
        return None
    if isinstance(noise, str):
        choice(noise, "noise", NOISE_METHODS)
        if dof < 1:
            raise ConfigError(f"noise={noise!r} estimates the noise from repeated rows within "
                              f"(condition, fold) cells, but every cell of {name} holds one "
                              "row; pass noise=None (identity) or a precision matrix [p, p] "
                              "(e.g. noise_precision(residuals) from your own residuals)")
        return noise_precision(residuals(), noise, dof=dof, demean=False)
    lam = check.as_tensor(noise, "noise")
    if tuple(lam.shape) != (p, p):
        raise ShapeError(f"noise has shape {tuple(lam.shape)}; expected a precision matrix "
                         f"[{p}, {p}] for {name}, a method name or None")
    lam = lam.to(device=device, dtype=F64)
    check.check_finite(lam, "noise")
    return lam


def noise_precision(residuals, method: str = "shrinkage_diag", *, dof: int | None = None,
                    demean: bool = True) -> Tensor:
    """Noise precision `Σ⁻¹ [p, p]` (float64) from residuals `[n, p]`, as rsatoolbox defines it.

    Args:
        method: "shrinkage_diag" (Schäfer & Strimmer 2005: correlations shrunk towards 0),
            "shrinkage_eye" (Ledoit & Wolf 2004: towards a multiple of I), "diag" or "full".
        dof: degrees of freedom (default n − 1; subtract the number of fitted means).
        demean: remove the column means first.
    """
    choice(method, "method", NOISE_METHODS)
    r = matrix(residuals, "residuals").to(F64)
    if demean:
        r = r - r.mean(0)
    n, p = r.shape
    dof = n - 1 if dof is None else check.positive_int(dof, "dof")
    xtx = r.T @ r
    var = xtx.diagonal() / dof
    if not bool((var > 0).all()):
        raise RangeError(f"{int((var <= 0).sum())} residual column(s) have zero variance; the "
                         "noise precision is undefined there. Expected varying residuals")
    if method == "full":
        cov = xtx / dof
    elif method == "diag":
        cov = torch.diag(var)
    elif method == "shrinkage_eye":
        s = xtx / n
        b2 = float((((r * r).T @ (r * r)) / n - s.square()).sum()) / n
        target = s.diagonal().mean() * torch.eye(p, dtype=F64, device=r.device)
        d2 = float((s - target).square().sum())
        shrink = 0.0 if d2 == 0 else min(b2, d2) / d2
        cov = (shrink * target + (1 - shrink) * s) * (n / dof)
    else:  # shrinkage_diag
        std = var.sqrt()
        corr = xtx / (std[:, None] * std[None, :]) / (n - 1)
        corr2 = ((r * r).T @ (r * r)) / (var[:, None] * var[None, :]) / (n - 1)
        var_hat = n / dof**2 * (corr2 - corr.square())
        off = ~torch.eye(p, dtype=torch.bool, device=r.device)
        denom = float(corr[off].square().sum())
        lam = 0.0 if denom == 0 else min(1.0, max(0.0, float(var_hat[off].sum()) / denom))
        cov = torch.where(off, (1 - lam) * xtx / dof, xtx / dof)
    try:
        prec = torch.linalg.inv(cov)
    except RuntimeError as e:  # torch.linalg.LinAlgError
        raise RangeError(f"the {method!r} noise covariance is singular (n = {n} residuals for "
                         f"p = {p} units); use a shrinkage method") from e
    return (prec + prec.T) / 2
