"""How an activation tensor becomes rows for a fitter, and how an eraser is applied to it.

- `[b, d]`: one row per example.
- `[b, t, d]` (tokens): one row per position, or one per example after a reduction
  (`"mean"` over positions, `"last"`, or an int position); erasers act on the last dim.
- `[b, c, h, w, ...]` (feature maps): flattened to one row of `c·h·w` per example.

Labels `[b]` are repeated over positions when every position is a row; `[b, t]` labels give
one label per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import ConfigError, ShapeError

REDUCTIONS = (None, "mean", "last")


def check_reduce(reduce) -> None:
    if reduce not in REDUCTIONS and not (isinstance(reduce, int) and not isinstance(reduce, bool)):
        raise ConfigError(f"reduce must be None, 'mean', 'last' or an int position, got {reduce!r}")


def reduce_positions(act: Tensor, reduce) -> Tensor:
    """Apply a token reduction to `[b, t, d]` activations; other ranks pass through."""
    if act.ndim != 3 or reduce is None:
        return act
    if reduce == "mean":
        return act.mean(1)
    return act[:, -1 if reduce == "last" else reduce]


def rows(act: Tensor, labels: Tensor | None, reduce=None) -> tuple[Tensor, Tensor | None]:
    """`(x [n, d], z [n] or None)` for fitting, from one batch's activation and labels."""
    act = reduce_positions(act, reduce)
    batch = act.shape[0]
    if labels is not None and labels.shape[0] != batch:
        raise ShapeError(f"labels for this batch have {labels.shape[0]} rows but the "
                         f"activation has batch size {batch}")
    if act.ndim == 3:  # one row per token
        if labels is not None:
            if labels.ndim == 1:
                labels = labels[:, None].expand(batch, act.shape[1])
            labels = labels.reshape(-1, *labels.shape[2:])
        return act.reshape(-1, act.shape[-1]), labels
    if act.ndim > 3:
        act = act.flatten(1)
    if labels is not None and labels.ndim > 1 and not labels.is_floating_point():
        raise ShapeError(f"per-token labels {tuple(labels.shape)} need a [b, t, d] activation, "
                         f"got {tuple(act.shape)}")
    return act, labels


def apply(eraser, act: Tensor, labels: Tensor | None = None, positions=None) -> Tensor:
    """`eraser` applied to an activation, at every position or at the chosen ones."""
    needs_labels = getattr(eraser, "requires_labels", False)

    def call(x, z):
        return eraser(x, z) if needs_labels else eraser(x)

    if act.ndim > 3:
        return call(act.flatten(1), labels).view_as(act)
    if act.ndim == 3 and labels is not None and labels.ndim == 1:
        labels = labels[:, None].expand(act.shape[0], act.shape[1])
    if positions is None or act.ndim != 3:
        return call(act, labels)
    out = act.clone()
    out[:, positions] = call(act[:, positions], None if labels is None else labels[:, positions])
    return out


def to_device(t: Tensor | None, device: torch.device) -> Tensor | None:
    return None if t is None else t.to(device)
