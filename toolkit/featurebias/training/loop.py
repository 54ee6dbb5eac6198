"""`train`: the training loop, with evaluation, early stopping, checkpoints and callbacks."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from .._progress import tqdm
from ..errors import ConfigError, ShapeError
from . import losses
from ._data import Source, source
from ._ddp import Parallel
from ._spacing import checkpoint_steps
from .config import TrainConfig

COLUMNS = ["step", "split", "feature", "loss", "accuracy"]


@dataclasses.dataclass(frozen=True, eq=False)
class TrainState:
    """What a callback sees: after optimiser step `step` (0: before the first step)."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss: float
    """This step's training loss (the curriculum-weighted objective); NaN at step 0."""
    config: TrainConfig


@dataclasses.dataclass(frozen=True, eq=False)
class TrainResult:
    """A finished run: the trained model, its curves and its checkpoints."""

    model: nn.Module
    """The model passed to `train`, trained in place (best parameters when early stopping)."""
    curves: pd.DataFrame
    """One row per evaluation × split × feature: step, split, feature, loss (nats), accuracy."""
    checkpoints: dict[int, dict[str, Tensor]]
    """CPU state dicts at the log-spaced checkpoint steps that were reached."""
    steps: int
    """Optimiser steps run."""
    best_step: int
    """Step of the lowest validation loss (the last step without validation data)."""
    stopped_early: bool

    def model_at(self, step: int) -> nn.Module:
        """A copy of the model with the checkpoint of `step` loaded."""
        if step not in self.checkpoints:
            raise ConfigError(f"no checkpoint at step {step!r}; checkpoints were kept at steps "
                              f"{sorted(self.checkpoints)} (TrainConfig.checkpoints)")
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.checkpoints[step])
        return model


def train(model: nn.Module, data, config: TrainConfig | None = None, val=None, *,
          transform: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
          callbacks: Sequence[Callable[[TrainState], None]] = (),
          progress: bool = True) -> TrainResult:
    """Train `model` in place on `data`; evaluate, stop early and checkpoint as configured.

    The loss follows the shapes of the output and the targets (see `training.losses`). Every
    input is checked before any parameter changes. Deterministic on CPU for a fixed
    `config.seed`, which seeds the batch order and the global RNG inside the run (dropout);
    the caller's RNG is left as it was. Training batches are drawn without replacement,
    epoch after epoch, dropping each epoch's last partial batch. The model's train/eval mode
    is restored at the end.

    Args:
        data, val: a pair `(x, y)` of tensors (moved to the model's device once; floating
            inputs cast to the parameters' dtype) or a torch `Dataset` of `(x, y)` items (read
            through a `DataLoader`, once up front to check the targets).
        transform: `transform(x, y) -> (x, y)` applied to every training batch (augmentation,
            erasure), never to `val`.
        callbacks: each called as `cb(TrainState)` at step 0, then after every optimiser step,
            before that step's evaluation.

    Returns a `TrainResult`. Its curves hold, at step 0, every `eval_every` steps and at the
    last step: for "train", the mean loss (nats) and accuracy over the training batches of the
    steps since the previous evaluation, measured as they were trained on (step 0: the first
    batch at the initial parameters); for "val", a full pass over `val` in eval mode. The
    "all" loss is the sum over features of their mean losses, whatever the curriculum; its
    accuracy is the mean of the features' accuracies.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    floating = [p for p in params if p.is_floating_point()]
    if not floating:
        raise ConfigError("model has no floating-point parameters to train")
    device, dtype = floating[0].device, floating[0].dtype
    if transform is not None and not callable(transform):
        raise ConfigError(f"transform must be callable or None, got {transform!r}")
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise ConfigError(f"every callback must be callable, got {cb!r}")
    if config.patience is not None and val is None:
        raise ConfigError("patience (early stopping) needs validation data: pass val")
    train_src = source(data, "data", device, dtype)
    val_src = None if val is None else source(val, "val", device, dtype)
    targets = _targets(model, train_src, val_src, config)
    starts = _starts(targets, config, train_src)
    optimizer = _optimizer(config, params)
    parallel = Parallel(model, min(config.batch_size, train_src.n))  # torchrun: DDP
    was_training = model.training
    model.train()
    try:
        parallel.wrap()
        with _seeded(config.seed, device):
            return _Run(model, optimizer, config, targets.to(device), starts, train_src,
                        val_src, transform, callbacks, progress and parallel.leader, device,
                        dtype, parallel).run()
    finally:
        parallel.unwrap()
        model.train(was_training)


def _targets(model: nn.Module, train_src: Source, val_src: Source | None,
             config: TrainConfig) -> losses.Targets:
    """Resolve the loss rule from one forward pass and check every label against it."""
    x, y = train_src.first(min(config.batch_size, train_src.n))
    out = probe_output(model, x)
    y_all = train_src.targets()
    columns = losses.target_columns(y_all) if out.ndim == 3 and y_all.ndim == 2 else None
    targets = losses.resolve(out, y, heads=config.heads, names=config.feature_names,
                             columns=columns)
    losses.check_labels(targets, y_all, "data targets")
    if val_src is not None:
        val_x = val_src.first(1)[0]
        if val_x.shape[1:] != x.shape[1:]:
            raise ShapeError(f"val inputs have shape {tuple(val_x.shape[1:])} per example but "
                             f"data inputs {tuple(x.shape[1:])}; expected the same")
        val_y = val_src.targets()
        if val_y.shape[1:] != y_all.shape[1:]:
            raise ShapeError(f"val targets have shape {tuple(val_y.shape)} and data targets "
                             f"{tuple(y_all.shape)}; expected the same shape after the first "
                             "dimension")
        losses.check_labels(targets, val_y, "val targets")
    return targets


def probe_output(model: nn.Module, x: Tensor) -> Tensor:
    """`model(x)` in eval mode without gradients, checked to be a batch of logits."""
    was_training = model.training
    model.eval()  # no batch-norm statistics move, no dropout randomness is drawn
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor):
        raise ShapeError(f"model must return a tensor of logits, got {type(out).__name__}")
    if out.ndim < 2 or out.shape[0] != x.shape[0]:
        raise ShapeError(f"model returned shape {tuple(out.shape)} for a batch of {x.shape[0]};"
                         " expected [b, K], [b, W] or [b, T, V]")
    return out


def _starts(targets: losses.Targets, config: TrainConfig, src: Source) -> tuple[int, ...]:
    """The curriculum's start step per feature (all 0 without `loss_start`)."""
    if config.loss_start is None:
        return (0,) * targets.num_features
    starts = config.loss_start
    if targets.kind == "sequence" and len(starts) == src.targets().shape[1]:
        starts = tuple(starts[t] for t in targets.columns.tolist())  # given per position
    if len(starts) != targets.num_features:
        raise ConfigError(f"loss_start has {len(starts)} entries but the targets have "
                          f"{targets.num_features} feature column(s) {targets.names}")
    return tuple(starts)


def _optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate of the update from `step` to `step + 1` under `config.schedule`."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    return config.lr


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global RNG (CPU and the model's CUDA device) for the body, then restore it."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield


class _Run:
    """One training run; holds the state the loop and its evaluations share."""

    def __init__(self, model, optimizer, config, targets, starts, train_src, val_src,
                 transform, callbacks, progress, device, dtype, parallel):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.parallel = parallel
        self.targets, self.starts, self.device, self.dtype = targets, starts, device, dtype
        self.train_src, self.val_src = train_src, val_src
        self.transform, self.callbacks, self.progress = transform, callbacks, progress
        self.rows: list[dict] = []
        self.checkpoints: dict[int, dict[str, Tensor]] = {}
        self.best_loss, self.best_step, self.best_state, self.waited = math.inf, 0, None, 0

    def run(self) -> TrainResult:
        cfg = self.config
        evals = set(range(0, cfg.steps + 1, cfg.eval_every)) | {cfg.steps}
        keep = set(checkpoint_steps(cfg.steps, cfg.checkpoints))
        generator = torch.Generator().manual_seed(cfg.seed)
        batches = self.train_src.batches(cfg.batch_size, generator)
        change = set(self.starts) - {0}
        weights = self._weights(0)
        acc = _Accumulator(self.parallel.total)
        stopped, step = False, 0
        self._callbacks(0, math.nan)
        self._evaluate_val(0)
        self._checkpoint(0, keep)
        bar = tqdm(total=cfg.steps, desc="train", disable=not self.progress, leave=False)
        try:
            for step in range(1, cfg.steps + 1):
                if step - 1 in change:
                    weights = self._weights(step - 1)
                if cfg.schedule != "constant":
                    for group in self.optimizer.param_groups:
                        group["lr"] = learning_rate(cfg, step - 1)
                x, y = next(batches)
                if self.transform is not None:
                    x, y = self.transform(x, y)
                x, y = self.parallel.shard(x, y)
                total, means, correct, count = losses.batch_means(
                    self.targets, self.parallel.module(x), y)
                total, scaled = self.parallel.global_mean(total, means, count)
                loss = total if weights is None else (scaled * weights).sum()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                acc.add(means.detach() * count, correct, count)
                if step == 1:  # the first batch, measured at the initial parameters
                    self._rows(0, "train", *acc.read(reset=False))
                if self.callbacks:
                    self._callbacks(step, loss.detach().item())
                if step in evals:
                    self._rows(step, "train", *acc.read())
                    stopped = self._evaluate_val(step)
                    self._postfix(bar)
                self._checkpoint(step, keep)
                bar.update()
                if stopped:
                    break
        finally:
            bar.close()
        if cfg.patience is not None and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        best = self.best_step if self.val_src is not None else step
        curves = pd.DataFrame(self.rows, columns=COLUMNS)
        curves = curves.sort_values(["step", "split"], kind="stable", ignore_index=True)
        return TrainResult(self.model, curves, self.checkpoints, step, best, stopped)

    def _weights(self, step: int) -> Tensor | None:
        if all(s <= step for s in self.starts):
            return None
        on = [float(s <= step) for s in self.starts]
        return torch.tensor(on, device=self.device, dtype=self.dtype)

    def _callbacks(self, step: int, loss: float) -> None:
        state = TrainState(step, self.model, self.optimizer, loss, self.config)
        for cb in self.callbacks:
            cb(state)

    def _checkpoint(self, step: int, keep: set[int]) -> None:
        if step in keep:
            self.checkpoints[step] = {k: v.detach().to("cpu", copy=True)
                                      for k, v in self.model.state_dict().items()}

    def _evaluate_val(self, step: int) -> bool:
        """Evaluate on `val` (if any) and update early stopping; whether to stop now."""
        if self.val_src is None:
            return False
        acc = _Accumulator()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for x, y in self.val_src.chunks(self.config.eval_batch_size):
                    sums, correct, count = losses.batch_stats(self.targets, self.model(x), y)
                    acc.add(sums, correct, count)
        finally:
            self.model.train(was_training)
        loss, accuracy = self.parallel.same(acc.read())  # one early-stopping decision
        total = self._rows(step, "val", loss, accuracy)
        if total < self.best_loss:  # NaN never improves
            self.best_loss, self.best_step, self.waited = total, step, 0
            if self.config.patience is not None:
                self.best_state = {k: v.detach().clone()
                                   for k, v in self.model.state_dict().items()}
            return False
        self.waited += 1
        return self.config.patience is not None and self.waited >= self.config.patience

    def _rows(self, step: int, split: str, loss: list[float], accuracy: list[float]) -> float:
        """Append the rows of one evaluation; returns the total loss."""
        total = sum(loss)
        mean_acc = sum(accuracy) / len(accuracy)
        self.rows.append({"step": step, "split": split, "feature": "all", "loss": total,
                          "accuracy": mean_acc})
        if self.targets.kind != "single":
            for name, value, acc in zip(self.targets.names, loss, accuracy, strict=True):
                self.rows.append({"step": step, "split": split, "feature": name,
                                  "loss": value, "accuracy": acc})
        return total

    def _postfix(self, bar: tqdm) -> None:
        if bar.disable:
            return
        split = "val" if self.val_src is not None else "train"
        last = self.rows[-1 - (0 if self.targets.kind == "single" else
                               self.targets.num_features)]
        bar.set_postfix({f"{split}_loss": f"{last['loss']:.4f}",
                         f"{split}_acc": f"{last['accuracy']:.3f}"})


class _Accumulator:
    """Per-feature sums kept on the device, read (one host sync) only at evaluations."""

    def __init__(self, total=lambda *sums: sums):
        self.loss = self.correct = self.count = None
        self.total = total  # sums over the ranks, when distributed

    def add(self, loss: Tensor, correct: Tensor, count: Tensor | int) -> None:
        if self.loss is None:
            self.loss, self.correct, self.count = loss.clone(), correct.clone(), count
        else:
            self.loss += loss
            self.correct += correct
            self.count = self.count + count

    def read(self, *, reset: bool = True) -> tuple[list[float], list[float]]:
        """Per-feature mean loss and accuracy over every target added since the last reset.

        A feature with no target (a sequence column missing from every batch) reads NaN.
        """
        count = torch.as_tensor(self.count, device=self.loss.device).to(self.loss.dtype)
        if count.ndim == 0:
            count = count.expand_as(self.loss)
        sums, correct, count = self.total(self.loss, self.correct.to(count.dtype), count)
        empty = count == 0
        loss = torch.where(empty, math.nan, sums / count)
        accuracy = torch.where(empty, math.nan, correct / count)
        values = torch.stack([loss, accuracy]).double().cpu().tolist()
        if reset:
            self.__init__(self.total)
        return values[0], values[1]
