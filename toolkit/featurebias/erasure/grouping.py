"""Vectorised per-class work: lay rows out as a padded `[k, L, d]` batch, one slab per class.

This turns "for each class do a matmul" into one batched matmul, with no Python loop over
classes. Padding rows are zero, so they add nothing to sums of products.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_slots(groups: Tensor, num_groups: int) -> tuple[Tensor, int]:
    """Flat slot `g * L + rank-within-group` of every row, and the slab length `L`."""
    counts = torch.bincount(groups, minlength=num_groups)
    length = int(counts.max()) if groups.numel() else 0
    order = torch.argsort(groups, stable=True)
    sorted_groups = groups[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(groups.numel(), device=groups.device) - starts[sorted_groups]
    slots = torch.empty_like(groups)
    slots[order] = sorted_groups * length + rank
    return slots, length


def pad_by_group(x: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Rows of `x [n, d]` as a zero-padded `[num_groups, L, d]` batch, and each row's slot."""
    slots, length = group_slots(groups, num_groups)
    padded = x.new_zeros(num_groups * length, x.shape[-1])
    padded[slots] = x
    return padded.view(num_groups, length, x.shape[-1]), slots


def grouped_matmul(x: Tensor, groups: Tensor, mats: Tensor) -> Tensor:
    """Row `i` of the result is `x[i] @ mats[groups[i]]`; `mats` is `[k, d, e]`."""
    padded, slots = pad_by_group(x, groups, mats.shape[0])
    return torch.bmm(padded, mats).flatten(0, 1)[slots]
