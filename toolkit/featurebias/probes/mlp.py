"""`MLPProbe`: one hidden ReLU layer, AdamW, early stopping on a held-out validation split."""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from . import _data, _mlp_train
from .base import Probe, cv_select

DEFAULT_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class MLPProbe(Probe):
    """A one-hidden-layer ReLU network trained with AdamW on minibatches.

    Args:
        hidden: width of the hidden layer.
        weight_decay: AdamW's decoupled weight decay (weights only, not biases), or `"cv"` to
            pick it from `weight_decays` by stratified `cv`-fold cross-validation on log-loss.
        lr, max_epochs, batch_size: the optimiser's step size and budget.
        validation_fraction: share of the training rows held out for early stopping; training
            stops after `patience` epochs without a lower validation loss and keeps the best
            epoch's weights. 0 (or too few rows to hold any out) trains all `max_epochs`.
        standardize: centre and scale every feature on the training data first.

    Fitted: `params_` (weights and biases), `classes_`, `weight_decay_`, `n_epochs_`,
    `best_epoch_`, `validation_loss_` (nats per epoch), `mean_`, `scale_`.

    `fit_splits` (so the weight-decay search and `probe_sites`' folds) trains its networks
    together, weights stacked, each as its own fit would (see `_mlp_train`).
    """

    _split_param = "weight_decay"

    def __init__(self, hidden: int = 256, *, weight_decay: float | str = 1e-2,
                 weight_decays=DEFAULT_WEIGHT_DECAYS, cv: int = 5, lr: float = 1e-3,
                 max_epochs: int = 200, batch_size: int = 256,
                 validation_fraction: float = 0.1, patience: int = 10,
                 standardize: bool = True, class_weight: str | None = None,
                 dtype: torch.dtype = torch.float32, device=None, seed: int = 0):
        self.hidden = hidden
        self.weight_decay = weight_decay
        self.weight_decays = weight_decays
        self.cv = cv
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.standardize = standardize
        self.class_weight = class_weight
        self.dtype = dtype
        self.device = device
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("hidden", "max_epochs", "batch_size", "patience"):
            check.positive_int(getattr(self, name), name)
        _data.positive(self.lr, "lr")
        if isinstance(self.weight_decay, str) and self.weight_decay == "cv":
            check.positive_int(self.cv, "cv", minimum=2)
            _data.grid(self.weight_decays, "weight_decays", _nonnegative)
        else:
            _nonnegative(self.weight_decay, "weight_decay (or the string 'cv')")
        f = self.validation_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {f!r}")

    def _fit(self, x: Tensor, ids: Tensor, k: int) -> dict:
        fitted = {}
        decay = self.weight_decay
        if isinstance(decay, str):  # "cv", checked by _check_params
            decay, records = cv_select(self, "weight_decay", list(self.weight_decays), x, ids,
                                       self.cv, self.seed)
            fitted["cv_results_"] = pd.DataFrame(records)
        [trained] = self._fit_many(x, ids, k, [None], [decay])
        fitted.update(trained)
        return fitted

    def _fit_many(self, x: Tensor, ids: Tensor, k: int, trains: list, decays: list) -> list[dict]:
        """All the splits' networks trained together, their weights stacked (see `_mlp_train`)."""
        rows = [torch.arange(len(x), device=x.device) if t is None else t for t in trains]
        if self.standardize:
            counts = _data.split_counts(trains, len(x), x.device)
            mean, scale, _ = _data.split_moments(x, counts)
        else:
            mean, scale = x.new_zeros(len(rows), x.shape[1]), x.new_ones(len(rows), x.shape[1])
        weights = None if self.class_weight is None else torch.stack(
            [_data.class_weights(ids[r], k, self.class_weight) for r in rows])
        settings = _mlp_train.Settings(self.hidden, self.lr, self.max_epochs, self.batch_size,
                                       self.validation_fraction, self.patience, self.seed)
        decay = torch.tensor([float(d) for d in decays], dtype=torch.float64, device=x.device)
        models = _mlp_train.train(x, ids, k, rows, mean, scale, weights, decay, settings)
        return [dict(params_=m.params, weight_decay_=float(d), n_epochs_=m.n_epochs,
                     best_epoch_=m.best_epoch, validation_loss_=m.validation_loss,
                     mean_=mean[j].clone(), scale_=scale[j].clone())
                for j, (m, d) in enumerate(zip(models, decays, strict=True))]

    def _log_proba(self, x: Tensor) -> Tensor:
        return torch.log_softmax(_mlp_train.forward(self.params_, (x - self.mean_) / self.scale_),
                                 1)


def _nonnegative(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
