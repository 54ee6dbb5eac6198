"""`MLPProbe`: one hidden ReLU layer, AdamW, early stopping on a held-out validation split."""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from . import _data
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
    """

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
        if self.standardize:
            z, mean, scale = _data.standardize(x)
        else:
            z, mean, scale = x, x.new_zeros(x.shape[1]), x.new_ones(x.shape[1])
        gen = torch.Generator().manual_seed(int(self.seed))
        params = _init(x.shape[1], self.hidden, k, gen, x.dtype, x.device)
        order = torch.randperm(len(z), generator=gen).to(x.device)
        n_val = math.floor(self.validation_fraction * len(z))
        stopping = n_val >= 1 and len(z) - n_val >= 1
        train, val = (order[n_val:], order[:n_val]) if stopping else (order, order[:0])
        weights = _data.class_weights(ids, k, self.class_weight)
        weights = None if weights is None else weights.to(x.dtype)
        opt = torch.optim.AdamW([{"params": [params["w1"], params["w2"]]},
                                 {"params": [params["b1"], params["b2"]], "weight_decay": 0.0}],
                                lr=self.lr, weight_decay=float(decay))
        best, best_epoch, best_loss, curve = None, 0, math.inf, []
        epoch = 0
        for epoch in range(1, self.max_epochs + 1):
            perm = train[torch.randperm(len(train), generator=gen).to(x.device)]
            for start in range(0, len(perm), self.batch_size):
                batch = perm[start:start + self.batch_size]
                loss = F.cross_entropy(_forward(params, z[batch]), ids[batch], weight=weights)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if not stopping:
                continue
            with torch.no_grad():
                val_loss = float(F.cross_entropy(_forward(params, z[val]), ids[val],
                                                 weight=weights))
            curve.append(val_loss)
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best = {name: p.detach().clone() for name, p in params.items()}
            elif epoch - best_epoch >= self.patience:
                break
        final = best if best is not None else {n: p.detach() for n, p in params.items()}
        fitted.update(params_=final, weight_decay_=float(decay), n_epochs_=epoch,
                      best_epoch_=best_epoch if stopping else epoch, validation_loss_=curve,
                      mean_=mean, scale_=scale)
        return fitted

    def _log_proba(self, x: Tensor) -> Tensor:
        return torch.log_softmax(_forward(self.params_, (x - self.mean_) / self.scale_), 1)


def _nonnegative(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _init(d: int, hidden: int, k: int, gen: torch.Generator, dtype, device) -> dict[str, Tensor]:
    """torch.nn.Linear's default initialisation, drawn on the CPU from `gen` (same on GPU)."""
    def uniform(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        t = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        return t.to(dtype=dtype, device=device).requires_grad_(True)

    return {"w1": uniform((hidden, d), d), "b1": uniform((hidden,), d),
            "w2": uniform((k, hidden), hidden), "b2": uniform((k,), hidden)}


def _forward(params: dict[str, Tensor], x: Tensor) -> Tensor:
    h = torch.relu(torch.addmm(params["b1"], x, params["w1"].T))
    return torch.addmm(params["b2"], h, params["w2"].T)
