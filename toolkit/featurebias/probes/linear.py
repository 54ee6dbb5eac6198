"""`LinearProbe`: multinomial logistic regression with L2, fitted by L-BFGS in torch."""

from __future__ import annotations

import warnings

import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from . import _data
from ._logistic import fit_logistic, logits_to_log_proba
from .base import Probe, cv_select

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


class LinearProbe(Probe):
    """Multinomial (binary for two classes) logistic regression with an L2 penalty.

    Minimises scikit-learn's objective `0.5‖W‖² + C Σ_i CE_i` (intercept unpenalised) by
    full-batch L-BFGS, so with the same `C` it finds `LogisticRegression`'s solution.

    Args:
        C: inverse regularisation strength, or `"cv"` to pick it from `Cs` by stratified
            `cv`-fold cross-validation on log-loss.
        max_iter: L-BFGS iterations at most.
        tol: stop when no gradient entry of the (mean-scaled) objective exceeds it (sklearn's
            criterion and default; nearly separable data stop early at a loose `tol`).
        standardize: centre and scale every feature on the training data first (constant
            features are only centred).
        class_weight: None, or `"balanced"` to weight class c by `n / (k · n_c)`.
        precondition: run L-BFGS in coordinates whitened by the training features' covariance
            (same objective and minimiser; far fewer passes over correlated activations);
            `"auto"` does so when the whitening costs less than the passes it usually saves
            (not for wide activations with few classes, e.g. d ≥ 1024 and two classes).
        dtype: compute dtype; device: where to fit (None: where `x` is).

    Fitted: `coef_ [k, d]` and `intercept_ [k]` in the input space (`[1, d]`, `[1]` for two
    classes, as in sklearn), `classes_`, `C_`, `mean_`, `scale_`, `n_iter_`, and
    `cv_results_` (a DataFrame) when `C="cv"`.
    """

    def __init__(self, C: float | str = 1.0, *, Cs=DEFAULT_CS, cv: int = 5, max_iter: int = 500,
                 tol: float = 1e-4, standardize: bool = True, class_weight: str | None = None,
                 precondition: bool | str = "auto", dtype: torch.dtype = torch.float32, device=None,
                 seed: int = 0):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.class_weight = class_weight
        self.precondition = precondition
        self.dtype = dtype
        self.device = device
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.C, str) and self.C == "cv":
            _data.grid(self.Cs, "Cs")
            check.positive_int(self.cv, "cv", minimum=2)
        else:
            _data.positive(self.C, "C (or the string 'cv')")
        check.positive_int(self.max_iter, "max_iter")
        _data.positive(self.tol, "tol")
        if self.precondition not in (True, False, "auto"):
            raise ConfigError(f"precondition must be True, False or 'auto', got "
                              f"{self.precondition!r}")

    def _fit(self, x: Tensor, ids: Tensor, k: int) -> dict:
        fitted = {}
        C = self.C
        if isinstance(C, str):  # "cv", checked by _check_params
            C, records = cv_select(self, "C", list(self.Cs), x, ids, self.cv, self.seed)
            fitted["cv_results_"] = pd.DataFrame(records)
        if self.standardize:
            z, mean, scale = _data.standardize(x)
        else:
            z, mean, scale = x, x.new_zeros(x.shape[1]), x.new_ones(x.shape[1])
        weights = _data.class_weights(ids, k, self.class_weight)
        sol = fit_logistic(z, ids, k, float(C), class_weight=weights, max_iter=self.max_iter,
                           tol=self.tol, precondition=self.precondition)
        if not sol.converged and sol.n_iter >= self.max_iter:
            warnings.warn(f"LinearProbe stopped after max_iter={self.max_iter} iterations "
                          f"before reaching tol={self.tol}; raise max_iter", ConvergenceWarning,
                          stacklevel=3)
        coef = sol.weight.double() / scale.double()
        fitted.update(
            C_=float(C), n_iter_=sol.n_iter, mean_=mean, scale_=scale, coef_=coef.to(x.dtype),
            intercept_=(sol.bias.double() - coef @ mean.double()).to(x.dtype),
            # The intercept at x = mean_: logits from centred inputs avoid cancellation.
            centred_intercept_=sol.bias)
        return fitted

    def decision_function(self, x):
        """Logits `[n, k]` (`[n]` for two classes, as in sklearn)."""
        x, like = self._inputs(x)
        with torch.no_grad():
            z = self._logits(x)
        return self._output(z[:, 0] if z.shape[1] == 1 else z, like)

    def _logits(self, x: Tensor) -> Tensor:
        return torch.addmm(self.centred_intercept_, x - self.mean_, self.coef_.T)

    def _log_proba(self, x: Tensor) -> Tensor:
        return logits_to_log_proba(self._logits(x))
