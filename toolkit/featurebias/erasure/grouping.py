"""Vectorised per-class work: lay rows out as a padded `[k, L, d]` batch, one slab per class.

This turns "for each class do a matmul" into one batched matmul, with no Python loop over
classes. Padding rows are zero, so they add nothing to sums of products.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Groups:
    """Where each row of a batch goes in the padded `[k, L, ·]` layout of its group."""

    def __init__(self, groups: Tensor, num_groups: int):
        n = groups.numel()
        self.counts = torch.bincount(groups, minlength=num_groups)
        self.length = int(self.counts.max()) if n else 0
        order = torch.argsort(groups, stable=True)
        sorted_groups = groups[order]
        rank = torch.arange(n, device=groups.device) - (
            torch.cumsum(self.counts, 0) - self.counts)[sorted_groups]
        self.slots = torch.empty_like(groups)
        self.slots[order] = sorted_groups * self.length + rank
        # Row index of every padded position; padding points at an extra all-zero row n.
        self.index = torch.full((num_groups * self.length,), n, device=groups.device)
        self.index[self.slots] = torch.arange(n, device=groups.device)
        self.shape = (num_groups, self.length)

    def pad(self, x: Tensor) -> Tensor:
        """Rows of `x [n, d]` as a zero-padded `[k, L, d]` batch (one gather)."""
        padded = torch.cat([x, x.new_zeros(1, x.shape[1])])[self.index]
        return padded.view(*self.shape, x.shape[1])

    def unpad(self, padded: Tensor) -> Tensor:
        """Inverse of `pad`: back to `[n, ·]` in the original row order."""
        return padded.flatten(0, 1)[self.slots]

    def mask(self, dtype: torch.dtype) -> Tensor:
        """`[k, L, 1]`: 1 on real rows, 0 on padding."""
        length = torch.arange(self.length, device=self.counts.device)
        return (length < self.counts[:, None]).to(dtype)[..., None]


def grouped_matmul(x: Tensor, groups: Tensor, mats: Tensor) -> Tensor:
    """Row `i` of the result is `x[i] @ mats[groups[i]]`; `mats` is `[k, d, e]`."""
    layout = Groups(groups, mats.shape[0])
    return layout.unpad(torch.bmm(layout.pad(x), mats))
