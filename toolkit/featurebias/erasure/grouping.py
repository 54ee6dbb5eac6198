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
        self.shape = (num_groups, self.length)

    def pad(self, x: Tensor) -> Tensor:
        """Rows of `x [n, d]` as a zero-padded `[k, L, d]` batch (one scatter)."""
        padded = x.new_zeros(self.shape[0] * self.shape[1], x.shape[1])
        return padded.index_copy_(0, self.slots, x).view(*self.shape, x.shape[1])

    def unpad(self, padded: Tensor) -> Tensor:
        """Inverse of `pad`: back to `[n, ·]` in the original row order."""
        return padded.flatten(0, 1)[self.slots]

    def mask(self, dtype: torch.dtype) -> Tensor:
        """`[k, L, 1]`: 1 on real rows, 0 on padding."""
        length = torch.arange(self.length, device=self.counts.device)
        return (length < self.counts[:, None]).to(dtype)[..., None]


def grouped_affine(x: Tensor, groups: Tensor, mats: Tensor, bias: Tensor | None = None) -> Tensor:
    """Row `i` of the result is `x[i] @ mats[g] + bias[g]` with `g = groups[i]`.

    `mats` is `[k, d, e]`, `bias` `[k, e]`; the bias is fused into the batched matmul.
    """
    layout = Groups(groups, mats.shape[0])
    padded = layout.pad(x)
    if bias is None:
        return layout.unpad(torch.bmm(padded, mats))
    shifts = bias[:, None, :].expand(-1, padded.shape[1], -1)
    return layout.unpad(torch.baddbmm(shifts, padded, mats))
