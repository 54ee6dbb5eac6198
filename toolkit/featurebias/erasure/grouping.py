"""Vectorised per-class work: lay rows out as a padded `[s, L, d]` batch of slabs.

This turns "for each class do a matmul" into one batched matmul, with no Python loop over
classes. Padding rows are zero, so they add nothing to sums of products. Each class gets one
slab, except that a class with more than `max(2n/k, width)` rows is cut into several: padding
every class to the largest would cost `k ×` the largest class in time and memory (10x the data
when one class holds nearly all rows), while each extra slab costs a `width`-sized block of
its own (its product, or its copy of the class's map), which only many rows repay. `owner`
names each slab's class, and `combine` adds per-slab results up per class.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Groups:
    """Where each row of a batch goes in the padded `[s, L, ·]` slab layout of its group."""

    def __init__(self, groups: Tensor, num_groups: int, width: int):
        n = groups.numel()
        self.num_groups = num_groups
        self.counts = torch.bincount(groups, minlength=num_groups)
        cap = max(1, -(-2 * n // num_groups), width)
        self.length = min(int(self.counts.max()), cap) if n else 0
        length = max(self.length, 1)
        slabs = (-(-self.counts // length)).clamp_min(1)  # per group; an empty one gets one
        first = torch.cumsum(slabs, 0) - slabs
        self.owner = torch.repeat_interleave(torch.arange(num_groups, device=groups.device),
                                             slabs)
        self.split = len(self.owner) != num_groups
        order = torch.argsort(groups, stable=True)
        sorted_groups = groups[order]
        rank = torch.arange(n, device=groups.device) - (
            torch.cumsum(self.counts, 0) - self.counts)[sorted_groups]
        self.slots = torch.empty_like(groups)
        self.slots[order] = (first[sorted_groups] + rank // length) * length + rank % length
        self.shape = (len(self.owner), self.length)

    def pad(self, x: Tensor) -> Tensor:
        """Rows of `x [n, d]` as a zero-padded `[s, L, d]` batch (one scatter)."""
        padded = x.new_zeros(self.shape[0] * self.shape[1], x.shape[1])
        return padded.index_copy_(0, self.slots, x).view(*self.shape, x.shape[1])

    def unpad(self, padded: Tensor) -> Tensor:
        """Inverse of `pad`: back to `[n, ·]` in the original row order."""
        return padded.flatten(0, 1)[self.slots]

    def mask(self, dtype: torch.dtype) -> Tensor:
        """`[s, L, 1]`: 1 on real rows, 0 on padding."""
        rows = torch.bincount(self.slots // max(self.length, 1), minlength=self.shape[0])
        length = torch.arange(self.length, device=self.slots.device)
        return (length < rows[:, None]).to(dtype)[..., None]

    def per_slab(self, per_group: Tensor) -> Tensor:
        """`[k, ...]` values of the groups as `[s, ...]` values of their slabs."""
        return per_group[self.owner] if self.split else per_group

    def combine(self, per_slab: Tensor) -> Tensor:
        """`[s, ...]` sums over each slab's rows as `[k, ...]` sums over each group's."""
        if not self.split:
            return per_slab
        total = per_slab.new_zeros(self.num_groups, *per_slab.shape[1:])
        return total.index_add_(0, self.owner, per_slab)


def grouped_affine(x: Tensor, groups: Tensor, mats: Tensor, bias: Tensor | None = None) -> Tensor:
    """Row `i` of the result is `x[i] @ mats[g] + bias[g]` with `g = groups[i]`.

    `mats` is `[k, d, e]`, `bias` `[k, e]`; the bias is fused into the batched matmul.
    """
    layout = Groups(groups, mats.shape[0], width=mats.shape[1])
    padded = layout.pad(x)
    mats = layout.per_slab(mats)
    if bias is None:
        return layout.unpad(torch.bmm(padded, mats))
    shifts = layout.per_slab(bias)[:, None, :].expand(-1, padded.shape[1], -1)
    return layout.unpad(torch.baddbmm(shifts, padded, mats))
