"""`Probe`: the scikit-learn face (fit/predict/predict_proba/score) of the torch probes."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold
from torch import Tensor

from ..errors import LabelError, NotFittedError, ShapeError
from . import _data


class Probe(ClassifierMixin, BaseEstimator):
    """Base of the torch probes.

    Subclasses implement `_check_params()`, `_fit(x, ids, k) -> dict` of fitted attributes
    (nothing is set on `self` until it returns, so a failed fit changes nothing) and
    `_log_proba(x) -> [n, k]` on `device_`. Inputs may be tensors (outputs are tensors on the
    input's device) or arrays (outputs are numpy).
    """

    def _check_params(self) -> None:
        _data.check_common(self)

    def fit(self, x, y):
        """Fit on examples `x [n, ...]` and integer labels `y [n]`; returns self."""
        self._check_params()
        x, classes, ids = _data.fit_inputs(x, y)
        device = _data.resolve_device(self.device, x)
        x, ids = x.to(device=device, dtype=self.dtype), ids.to(device)
        return self._install(self._fit(x, ids, len(classes)), classes, x)

    def _install(self, fitted: dict, classes: Tensor, x: Tensor):
        """Set the fitted attributes (and those every probe has) in place of any earlier."""
        fitted.update(classes_=classes.to(x.device), n_features_in_=x.shape[1],
                      device_=x.device)
        for stale in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            del self.__dict__[stale]  # e.g. cv_results_ of an earlier fit with C="cv"
        self.__dict__.update(fitted)
        return self

    # A probe that fits many splits of the same rows together names the one parameter that may
    # differ between them and implements `_fit_many(x, ids, k, trains, values) -> [fitted]`.
    _split_param: str | None = None

    def fit_splits(self, x, y, trains, params=None) -> list:
        """A fitted clone of this probe per training split: for each `j`, what
        `clone(self).set_params(**params[j]).fit(x[trains[j]], y[trains[j]])` returns.

        `trains` holds row indices (or boolean masks); `params` (default none) a dict of
        parameters per split. `LinearProbe` (varying `C`) and `MLPProbe` (varying
        `weight_decay`) fit all the splits at once, several times faster than one after the
        other; other probes or parameters, a value of `"cv"` and splits that lack a class are
        fitted one at a time.
        """
        trains, params = _data.split_rows(trains, params, len(x))
        name = self._split_param
        values = [p.get(name, getattr(self, name)) for p in params] if name else []
        if name is None or any(set(p) - {name} for p in params) or any(
                isinstance(v, str) for v in values):
            if not isinstance(x, Tensor):  # index arrays as arrays
                trains = [t.numpy() for t in trains]
            return [clone(self).set_params(**p).fit(x[t], y[t])
                    for t, p in zip(trains, params, strict=True)]
        probes = [clone(self).set_params(**{name: v}) for v in values]
        for probe in probes:
            probe._check_params()
        x, classes, ids = _data.fit_inputs(x, y)
        device = _data.resolve_device(self.device, x)
        x, ids = x.to(device=device, dtype=self.dtype), ids.to(device)
        trains = [t.to(device) for t in trains]
        complete = [j for j, t in enumerate(trains) if len(torch.unique(ids[t])) == len(classes)]
        fitted = {}
        if complete:
            fits = self._fit_many(x, ids, len(classes), [trains[j] for j in complete],
                                  [values[j] for j in complete])
            fitted = dict(zip(complete, fits, strict=True))
        # A split that lacks a class fits fewer classes: on its own.
        return [probe._install(fitted[j], classes, x) if j in fitted
                else probe.fit(x[trains[j]], classes[ids[trains[j]]])
                for j, probe in enumerate(probes)]

    def _fit_many(self, x: Tensor, ids: Tensor, k: int, trains: list, values: list) -> list[dict]:
        """Fitted attributes for each training split (row indices; None for all rows) with its
        value of `_split_param`, all computed together."""
        raise NotImplementedError

    def _inputs(self, x) -> tuple[Tensor, object]:
        if not hasattr(self, "classes_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        like = x
        x = _data.rows(x)
        if x.shape[1] != self.n_features_in_:
            raise ShapeError(f"x has {x.shape[1]} features but the probe was fitted on "
                             f"{self.n_features_in_}")
        return x.to(device=self.device_, dtype=self.dtype), like

    @staticmethod
    def _output(out: Tensor, like):
        if isinstance(like, Tensor):
            dtype = like.dtype if like.is_floating_point() and out.is_floating_point() else None
            return out.to(device=like.device, dtype=dtype)
        return out.cpu().numpy()

    def predict_log_proba(self, x):
        """Log class probabilities `[n, k]`, columns in the order of `classes_`."""
        x, like = self._inputs(x)
        with torch.no_grad():
            return self._output(self._log_proba(x), like)

    def predict_proba(self, x):
        """Class probabilities `[n, k]` (rows sum to 1), columns in the order of `classes_`."""
        x, like = self._inputs(x)
        with torch.no_grad():
            return self._output(self._log_proba(x).exp(), like)

    def predict(self, x):
        """The most probable class of each row, as a label from `classes_`."""
        x, like = self._inputs(x)
        with torch.no_grad():
            return self._output(self.classes_[self._log_proba(x).argmax(1)], like)

    def score(self, x, y, sample_weight=None) -> float:
        """Accuracy on `(x, y)`."""
        x_, _ = self._inputs(x)
        y = _data.label_values(y, x_.shape[0]).to(self.device_)
        with torch.no_grad():
            hit = (self.classes_[self._log_proba(x_).argmax(1)] == y).double()
        if sample_weight is None:
            return float(hit.mean())
        if not isinstance(sample_weight, Tensor):  # a tensor may live on any device
            sample_weight = np.asarray(sample_weight)
        w = torch.as_tensor(sample_weight, dtype=torch.float64, device=hit.device)
        return float((hit * w).sum() / w.sum())


def cv_select(probe: Probe, name: str, grid, x: Tensor, ids: Tensor, folds: int,
              seed: int) -> tuple[float, list[dict]]:
    """The value of parameter `name` from `grid` with the lowest held-out log-loss.

    Stratified `folds`-fold CV (seeded) on already validated `x` and class ids `ids`; returns
    the best value and one record per value and fold.
    """
    counts = torch.bincount(ids)
    folds = min(folds, int(counts.min()))
    if folds < 2:
        raise LabelError(f"choosing {name} by cross-validation needs at least 2 examples of "
                         f"every class; the rarest class has {int(counts.min())}")
    y = ids.cpu().numpy()
    splits = [tuple(torch.as_tensor(rows, device=x.device) for rows in split)
              for split in StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y)]
    jobs = [(i, fold, train, test) for i in range(len(grid))
            for fold, (train, test) in enumerate(splits)]
    models = probe.fit_splits(x, ids, [job[2] for job in jobs],
                              [{name: grid[job[0]]} for job in jobs])
    classes = torch.arange(len(counts), device=x.device)
    records, losses = [], np.zeros(len(grid))
    for (i, fold, _, test), model in zip(jobs, models, strict=True):
        _, bits = _data.scores(_data.full_log_proba(model, x[test], classes), ids[test])
        records.append({name: grid[i], "fold": fold, "log_loss_bits": bits})
        losses[i] += bits * len(test) / len(y)
    return grid[int(np.argmin(losses))], records
