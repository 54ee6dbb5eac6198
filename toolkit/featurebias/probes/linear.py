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
            (not for activations wide relative to their rows, e.g. 8k rows of d = 1024 and
            two classes).
        dtype: compute dtype; device: where to fit (None: where `x` is).

    Fitted: `coef_ [k, d]` and `intercept_ [k]` in the input space (`[1, d]`, `[1]` for two
    classes, as in sklearn), `classes_`, `C_`, `mean_`, `scale_`, `n_iter_`, and
    `cv_results_` (a DataFrame) when `C="cv"`.
    """

    _split_param = "C"

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
        if self.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64 (L-BFGS's linear "
                              f"algebra has no {self.dtype} kernels), got {self.dtype}")
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
        [solved] = self._fit_many(x, ids, k, [None], [C])
        fitted.update(solved)
        return fitted

    def _fit_many(self, x: Tensor, ids: Tensor, k: int, trains: list, Cs: list) -> list[dict]:
        """One batched L-BFGS solve for all the splits: their logits come from one product per
        pass over `x`. Each split is standardised on its own rows, as its own fit would be:
        expressed against the standardisation of all rows (`shift`, `ratio`)."""
        Cs = [float(C) for C in Cs]
        n, d = x.shape
        counts = _data.split_counts(trains, n, x.device)
        # Rows used by the same splits stored together: each split's products skip the rest.
        order = _data.by_splits(counts)
        if order is not None:
            x, ids, counts = x[order], ids[order], counts[:, order]
        shift = ratio = constant = None
        if not self.standardize:
            z, means, scales = x, x.new_zeros(len(trains), d), x.new_ones(len(trains), d)
        else:
            mean, scale = _data.moments(x)
            means, scales = mean.expand(len(trains), d), scale.expand(len(trains), d)
            if any(t is not None for t in trains):
                means, scales, constant = _data.split_moments(x, counts)
                # A column constant on a split is no feature of its fit (sklearn's scaler
                # makes it 0): ratio 0 takes it out of the logits, and its weight is 0 below.
                shift = (means - mean) / scale
                ratio = torch.where(constant, 0.0, scale / scales)
            # x is a copy of the caller's when reordered: standardised in place.
            z = (x - mean if order is None else x.sub_(mean)).div_(scale)
        row_weight = counts
        if self.class_weight is not None:
            row_weight = counts * torch.stack(
                [_data.class_weights(ids, k, self.class_weight, c) for c in counts])[:, ids]
        sol = fit_logistic(z, ids, k, torch.tensor(Cs, dtype=torch.float64), row_weight.to(x),
                           max_iter=self.max_iter, tol=self.tol, precondition=self.precondition,
                           shift=shift, ratio=ratio)
        self._warn_unconverged(sol.converged, sol.n_iter)
        coef = sol.weight.double() / scales.double()[:, None]
        if constant is not None:
            coef = coef.masked_fill(constant[:, None], 0.0)
        intercept = sol.bias.double() - (coef * means.double()[:, None]).sum(2)
        # Each probe gets tensors of its own (clones), not views that would carry (and
        # pickle) every split's values.
        coef, intercept = coef.to(x.dtype), intercept.to(x.dtype)
        return [dict(C_=Cs[j], n_iter_=int(sol.n_iter[j]), mean_=means[j].clone(),
                     scale_=scales[j].clone(), coef_=coef[j].clone(),
                     intercept_=intercept[j].clone(),
                     # The intercept at x = mean_: logits from centred inputs avoid cancellation.
                     centred_intercept_=sol.bias[j].clone()) for j in range(len(trains))]

    def _warn_unconverged(self, converged: Tensor, n_iter: Tensor) -> None:
        """A ConvergenceWarning naming how many fits hit max_iter and how many stalled."""
        short = int((~converged).sum())
        if not short:
            return
        capped = int(((~converged) & (n_iter >= self.max_iter)).sum())
        why = [f"{capped} reached max_iter={self.max_iter} (raise it)"] if capped else []
        if short > capped:
            remedy = "a looser tol" if self.dtype == torch.float64 else \
                "dtype=torch.float64 or a looser tol"
            why.append(f"{short - capped} stalled in the line search, the objective's rounding "
                       f"hiding further progress (try {remedy})")
        warnings.warn(f"LinearProbe stopped before reaching tol={self.tol} in {short} of "
                      f"{len(converged)} fits: {'; '.join(why)}", ConvergenceWarning,
                      stacklevel=5)  # the caller of fit

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
