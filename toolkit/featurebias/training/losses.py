"""The loss rule of `train`, read off the shapes of the model output and the targets.

- output `[b, K]`, targets `[b]`: one softmax cross-entropy ("single").
- output `[b, W]`, targets `[b, F]`: the W columns split into F heads (`heads`, default one
  column each); a one-column head is a sigmoid/BCE binary head, a c ≥ 2 column head a
  softmax head ("heads"). The loss is the sum over heads.
- output `[b, T, V]`, targets `[b, T]` with -100 where nothing is predicted: cross-entropy at
  the targeted positions, one feature per column holding any target ("sequence").

Every feature's loss is the mean over its targets in the batch; the total is the sum over
features. Losses are in nats.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, LabelError, ShapeError

IGNORE = -100
KINDS = ("single", "heads", "sequence")


@dataclasses.dataclass(frozen=True, eq=False)
class Targets:
    """How a model's outputs pair with its targets, resolved once per training run."""

    kind: str
    names: tuple[str, ...]
    """One per feature; `("all",)` for a single label."""
    classes: tuple[int, ...]
    """Classes per feature (2 for a binary head)."""
    heads: tuple[int, ...] = ()
    """Output columns per feature ("heads" only)."""
    columns: Tensor | None = None
    """Target columns that are features ("sequence" only), on the model's device."""

    @property
    def num_features(self) -> int:
        return len(self.names)

    @property
    def all_binary(self) -> bool:
        return self.kind == "heads" and all(h == 1 for h in self.heads)

    def to(self, device) -> Targets:
        if self.columns is None:
            return self
        return dataclasses.replace(self, columns=self.columns.to(device))


def target_columns(y: Tensor) -> Tensor:
    """Indices of the columns of sequence targets `[n, T]` that hold any target."""
    return (y != IGNORE).any(0).nonzero().reshape(-1)


def resolve(out: Tensor, y: Tensor, *, heads=None, names=None,
            columns: Tensor | None = None) -> Targets:
    """The loss rule for output `out` and targets `y` (see the module docstring).

    Args:
        columns: for sequence targets, the columns holding any target in the whole training
            set (default: those of `y`).
    """
    if out.ndim == 2 and y.ndim == 1:
        k = out.shape[1]
        if k < 2:
            raise ShapeError(f"the model outputs {k} column for single-label targets [n]; a "
                             "softmax needs >= 2 (for one binary feature pass targets [n, 1])")
        if heads is not None and tuple(heads) != (k,):
            raise ConfigError(f"heads={heads} does not fit single-label targets [n] with a "
                              f"{k}-column output; use heads=None or ({k},)")
        if names is not None and len(names) != 1:
            raise ConfigError(f"feature_names has {len(names)} names; single-label targets "
                              "have one")
        return Targets("single", ("all",), (k,))
    if out.ndim == 2 and y.ndim == 2:
        f = y.shape[1]
        heads = (1,) * f if heads is None else tuple(heads)
        if len(heads) != f:
            raise ConfigError(f"heads has {len(heads)} entries but the targets have {f} "
                              "columns; expected one head per target column")
        if sum(heads) != out.shape[1]:
            raise ShapeError(f"the model outputs {out.shape[1]} columns but heads={heads} need "
                             f"{sum(heads)}")
        names = _names(names, f, [f"feature_{j}" for j in range(f)])
        return Targets("heads", names, tuple(max(h, 2) for h in heads), heads=heads)
    if out.ndim == 3 and y.ndim == 2:
        if out.shape[1] != y.shape[1]:
            raise ShapeError(f"the model outputs {out.shape[1]} positions but the targets have "
                             f"{y.shape[1]}; expected logits [b, T, V] for targets [b, T]")
        if heads is not None:
            raise ConfigError("heads applies to targets [n, F] with outputs [n, W], not to "
                              "sequence outputs [n, T, V]")
        columns = target_columns(y) if columns is None else columns
        if columns.numel() == 0:
            raise LabelError(f"the sequence targets hold no target (every entry is {IGNORE})")
        cols = columns.tolist()
        names = _names(names, len(cols), [f"position_{t}" for t in cols])
        return Targets("sequence", names, (out.shape[2],) * len(cols), columns=columns)
    raise ShapeError(f"cannot pair model output {tuple(out.shape)} with targets "
                     f"{tuple(y.shape)}; expected output [b, K] with targets [b], output "
                     "[b, W] with targets [b, F], or output [b, T, V] with targets [b, T]")


def _names(names, count: int, default: list[str]) -> tuple[str, ...]:
    if names is None:
        return tuple(default)
    if len(names) != count:
        raise ConfigError(f"feature_names has {len(names)} names but the targets have {count} "
                          f"feature column(s)")
    return tuple(names)


def check_labels(t: Targets, y: Tensor, name: str) -> None:
    """Raise `LabelError` unless every target of `y` fits its feature's classes."""
    if y.is_floating_point() or y.is_complex():
        raise LabelError(f"{name} must hold integer class ids, got dtype {y.dtype}")
    if t.kind == "single":
        _range(y, 0, t.classes[0], name)
    elif t.kind == "heads":
        low = y.amin(0) if y.shape[0] else None
        high = y.amax(0) if y.shape[0] else None
        if low is None:
            return
        limit = torch.tensor(t.classes, device=y.device)
        bad = ((low < 0) | (high >= limit)).nonzero().reshape(-1).tolist()
        if bad:
            j = bad[0]
            raise LabelError(f"{name} column {j} ({t.names[j]!r}) holds values in "
                             f"[{int(low[j])}, {int(high[j])}], expected ids in "
                             f"[0, {t.classes[j]}) for its {t.heads[j]}-column head")
    else:
        targets = y[y != IGNORE]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= t.classes[0]):
            raise LabelError(f"{name} holds ids in [{int(targets.min())}, {int(targets.max())}]"
                             f", expected {IGNORE} or ids in [0, {t.classes[0]}) (the vocabulary)")


def _range(y: Tensor, low: int, high: int, name: str) -> None:
    if y.numel() and (int(y.min()) < low or int(y.max()) >= high):
        raise LabelError(f"{name} holds ids in [{int(y.min())}, {int(y.max())}], expected ids "
                         f"in [{low}, {high})")


def elementwise(t: Targets, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per example and feature: loss in nats `[b, F]`, correct `[b, F]` (bool), target mask.

    The mask is None when every example has a target for every feature.
    """
    if t.kind == "single":
        loss = F.cross_entropy(out, y, reduction="none")
        return loss[:, None], (out.argmax(1) == y)[:, None], None
    if t.kind == "sequence":
        v = out.shape[-1]
        y = y.index_select(1, t.columns)
        out = out.index_select(1, t.columns)
        loss = F.cross_entropy(out.reshape(-1, v), y.reshape(-1), ignore_index=IGNORE,
                               reduction="none").reshape(y.shape)
        mask = y != IGNORE
        return loss, (out.argmax(-1) == y) & mask, mask
    if t.all_binary:  # the common case: one vectorised BCE over every column
        loss = F.binary_cross_entropy_with_logits(out, y.to(out.dtype), reduction="none")
        return loss, (out > 0) == (y == 1), None
    losses, correct, start = [], [], 0
    for j, width in enumerate(t.heads):  # a handful of heads: the samples stay vectorised
        logits, target = out[:, start:start + width], y[:, j]
        start += width
        if width == 1:
            losses.append(F.binary_cross_entropy_with_logits(
                logits[:, 0], target.to(out.dtype), reduction="none"))
            correct.append((logits[:, 0] > 0) == (target == 1))
        else:
            losses.append(F.cross_entropy(logits, target, reduction="none"))
            correct.append(logits.argmax(1) == target)
    return torch.stack(losses, 1), torch.stack(correct, 1), None


def batch_stats(t: Targets, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | int]:
    """Per feature: summed loss (nats) `[F]`, number correct `[F]`, number of targets."""
    loss, correct, mask = elementwise(t, out, y)
    count = loss.shape[0] if mask is None else mask.sum(0)
    return loss.sum(0), correct.sum(0), count


def batch_means(t: Targets, out: Tensor, y: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | int]:
    """For a training step: the total loss, per-feature mean losses `[F]`, number correct
    `[F]` and number of targets (both differentiable in `out`; total = means.sum()).

    A single label takes the fused mean cross-entropy, one autograd node: the hot path of
    the common case stays as lean as a hand-written loop.
    """
    if t.kind == "single":
        total = F.cross_entropy(out, y)
        return total, total.reshape(1), (out.argmax(1) == y).sum().reshape(1), y.shape[0]
    sums, correct, count = batch_stats(t, out, y)
    means = sums / (count if isinstance(count, int) else count.clamp_min(1))
    return means.sum(), means, correct, count


def example_nats(t: Targets, out: Tensor, y: Tensor) -> Tensor:
    """Code length `−ln p(y | x)` of each example `[b]`: the sum over its targeted features."""
    return elementwise(t, out, y)[0].sum(1)

