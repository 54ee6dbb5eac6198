"""`TrainConfig`: every option of `train`, checked when it is built."""

from __future__ import annotations

import dataclasses

from .. import _validate as check
from ..errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of `train`; a bad value raises `ConfigError` when the config is built.

    Args:
        steps: optimiser steps to run (fewer when early stopping triggers).
        batch_size: training examples per step (all of them when the set is smaller).
        optimizer: "adamw", "adam" or "sgd" (default betas/eps of torch.optim).
        lr: peak learning rate; `schedule="cosine"` anneals it to 0 at `steps`.
        weight_decay: decoupled for AdamW, L2 for Adam and SGD. It also shrinks the
            parameters of heads whose loss is not switched on yet (`loss_start`).
        momentum: SGD momentum (must stay 0 for the Adam family).
        eval_every: steps between evaluations; step 0 and the last step are always evaluated.
        eval_batch_size: examples per forward pass when evaluating the validation set.
        patience: stop after this many evaluations without a new lowest validation loss and
            restore the best parameters (needs `val`); None trains all `steps`.
        checkpoints: how many log-spaced steps to keep a CPU copy of the parameters at
            (step 0 and the last step included when > 1).
        heads: output columns per target column for `[n, F]` targets (default one each):
            a one-column head is a sigmoid/BCE binary head, a c ≥ 2 column head a softmax head.
        loss_start: per target column, the step from which its loss is trained (curriculum);
            step `s → s+1` uses the losses of the columns with `loss_start ≤ s`.
        feature_names: names of the target columns, for the per-feature curve rows.
        seed: seeds the batch order and any randomness inside the model (e.g. dropout).
    """

    steps: int = 1000
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    eval_every: int = 100
    eval_batch_size: int = 1024
    patience: int | None = None
    checkpoints: int = 0
    heads: tuple[int, ...] | None = None
    loss_start: tuple[int, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self):
        # Numbers are stored as Python ints and floats (numpy ones, from a grid, included).
        minimum = {"checkpoints": 0, "seed": 0, "patience": 1}
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size", *minimum):
            if name != "patience" or self.patience is not None:
                object.__setattr__(self, name, check.positive_int(
                    getattr(self, name), name, minimum=minimum.get(name, 1)))
        check.choice(self.optimizer, "optimizer", OPTIMIZERS)
        check.choice(self.schedule, "schedule", SCHEDULES)
        for name, low, strict in (("lr", 0.0, True), ("weight_decay", 0.0, False),
                                  ("momentum", 0.0, False)):
            object.__setattr__(self, name, _number(getattr(self, name), name, low=low,
                                                   strict=strict))
        if self.momentum >= 1:
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError(f"momentum applies to optimizer='sgd' only, got momentum="
                              f"{self.momentum!r} with optimizer={self.optimizer!r}")
        self._tuple("heads", lambda v, name: check.positive_int(v, name))
        self._tuple("loss_start", lambda v, name: check.positive_int(v, name, minimum=0))
        self._tuple("feature_names", _name)
        names = self.feature_names
        if names is not None and len(set(names)) != len(names):
            raise ConfigError(f"feature_names must be distinct, got {names}")
        if names is not None and "all" in names:
            raise ConfigError("feature_names may not contain 'all': the curves use it for the "
                              "total")

    def _tuple(self, field: str, check_item) -> None:
        value = getattr(self, field)
        if value is None:
            return
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{field} must be a tuple or None, got {value!r}")
        value = tuple(value)
        if not value:
            raise ConfigError(f"{field} must not be empty (use None for the default)")
        for i, item in enumerate(value):
            check_item(item, f"{field}[{i}]")
        object.__setattr__(self, field, value)  # lists become tuples: hashable, immutable


def _number(value, name: str, *, low: float, strict: bool = False) -> float:
    number = check.real(value, name)
    if not (number > low if strict else number >= low):
        sign = ">" if strict else ">="
        raise ConfigError(f"{name} must be a finite number {sign} {low}, got {value!r}")
    return number


def _name(value, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
