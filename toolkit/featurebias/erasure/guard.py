"""Post-erasure check: can a linear or quadratic probe still beat the prior?"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from .. import _validate as check
from ..errors import LabelError, RangeError


@dataclasses.dataclass(frozen=True)
class GuardReport:
    """Cross-validated probe scores next to the prior predictor's (log-losses in bits)."""

    prior_accuracy: float
    prior_log_loss: float
    linear_accuracy: float
    linear_log_loss: float
    quadratic_accuracy: float | None = None
    quadratic_log_loss: float | None = None

    def guarded(self, tol_bits: float = 0.01) -> bool:
        """True when no probe's log-loss beats the prior by more than `tol_bits`."""
        losses = [self.linear_log_loss, self.quadratic_log_loss]
        return all(loss >= self.prior_log_loss - tol_bits for loss in losses if loss is not None)

    def to_frame(self) -> pd.DataFrame:
        """One row per predictor: `probe`, `accuracy`, `log_loss_bits`."""
        rows = [("prior", self.prior_accuracy, self.prior_log_loss),
                ("linear", self.linear_accuracy, self.linear_log_loss)]
        if self.quadratic_accuracy is not None:
            rows.append(("quadratic", self.quadratic_accuracy, self.quadratic_log_loss))
        return pd.DataFrame(rows, columns=["probe", "accuracy", "log_loss_bits"])


def _scores(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1)
    return float((proba.argmax(1) == y).mean()), float(-np.log(p).mean() / math.log(2))


def check_guardedness(x, z, *, quadratic: bool = True, cv: int = 5, C: float = 1.0,
                      reg_param: float = 1e-3, seed: int = 0) -> GuardReport:
    """Fit a multinomial logistic probe (and QDA) on `x` by `cv`-fold cross-validation.

    Args:
        x: `[n, d]` (erased) representations.
        z: `[n]` integer class labels.
        quadratic: also fit Gaussian QDA (a quadratic probe).
        C: inverse L2 strength of the logistic probe.
        reg_param: QDA covariance regularisation (keeps singular classes usable).
    """
    flat = check.features(x).detach().to(torch.float64).cpu().numpy()
    ids = check.class_ids(z, flat.shape[0], int(check.as_tensor(z, "z").max()) + 1)
    y = ids.cpu().numpy()
    counts = np.bincount(y)
    if (counts > 0).sum() < 2:
        raise LabelError("z holds only one class; expected at least two")
    if counts[counts > 0].min() < cv:
        raise LabelError(f"every class needs at least cv={cv} samples, got counts "
                         f"{counts.tolist()}")
    fold_rows = int(counts[counts > 0].min() * (cv - 1) // cv)
    if quadratic and fold_rows <= flat.shape[1]:
        raise RangeError(f"the quadratic probe (QDA) needs more training rows per class than "
                         f"dimensions, got {fold_rows} rows in the smallest class's folds and "
                         f"{flat.shape[1]} dimensions; reduce the dimension (e.g. PCA), use "
                         f"more data or fewer folds, or pass quadratic=False")
    prior = counts / counts.sum()
    prior_acc, prior_loss = _scores(np.tile(prior, (len(y), 1)), y)
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    # No standardisation: it would blow up the near-constant directions erasure leaves
    # behind and let the probe fit their rounding noise.
    linear = LogisticRegression(C=C, max_iter=2000)
    lin = _scores(_full_proba(linear, flat, y, folds, len(prior)), y)
    quad = (None, None)
    if quadratic:
        qda = QuadraticDiscriminantAnalysis(reg_param=reg_param)
        try:
            quad = _scores(_full_proba(qda, flat, y, folds, len(prior)), y)
        except np.linalg.LinAlgError as e:  # a class covariance is singular in some fold
            raise RangeError(f"the quadratic probe (QDA) cannot invert a class covariance "
                             f"(a class lies in a subspace); pass a larger reg_param (now "
                             f"{reg_param}) or quadratic=False") from e
    return GuardReport(prior_acc, prior_loss, *lin, *quad)


def _full_proba(model, x, y, folds, k) -> np.ndarray:
    """Held-out class probabilities `[n, k]` (columns for every class id, absent ones 0)."""
    # One BLAS thread: these problems are small, and busy-waiting BLAS threads that compete
    # with torch's own pool can slow them down a hundredfold.
    with threadpool_limits(1):
        proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
    present = np.unique(y)
    full = np.zeros((len(y), k))
    full[:, present] = proba
    return full
