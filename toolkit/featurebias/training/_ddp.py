"""Data-parallel `train` under torch.distributed (e.g. `torchrun`): DDP and batch slicing.

When a process group is initialised, every rank draws the same global batch of
`config.batch_size` examples (same seeded order, same data on every rank), applies `transform`
to the whole of it (so random augmentation draws as on one process), and trains on its own
equal slice. DistributedDataParallel averages the gradients over the ranks, which equals the
gradient of the global batch's mean loss: per-rank means of equal slices average to the global
mean, and where the number of targets varies (token masks) each rank divides by the global
count over the world size instead. So W processes follow one process's trajectory up to
rounding. Curves are the same on every rank: training sums are all-reduced at evaluations, and
rank 0's validation numbers are used everywhere (early stopping decides alike). Limits: the
RNG inside the model (dropout) is seeded alike on every rank, and batch norm uses per-rank
statistics (convert to `SyncBatchNorm` first for global ones).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..errors import ConfigError


class Parallel:
    """How one `train` run is shared by the ranks (everything passes through on one process)."""

    def __init__(self, model: nn.Module, batch_size: int):
        self.world, self.rank = distributed.world_size(), distributed.rank()
        self.active = self.world > 1
        self.module: nn.Module = model
        if self.active and batch_size % self.world:
            raise ConfigError(f"the global batch of {batch_size} examples does not split evenly "
                              f"over {self.world} ranks; expected batch_size (or the training "
                              "set, when smaller) to be a multiple of the world size")

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def wrap(self) -> None:
        """Wrap the model in DDP (it copies rank 0's parameters and buffers to every rank)."""
        if not self.active:
            return
        device = next(self.module.parameters()).device
        ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
        self.module = DistributedDataParallel(self.module, device_ids=ids)

    def unwrap(self) -> None:
        """Drop the DDP wrapper (and with it its gradient hooks on the parameters)."""
        if isinstance(self.module, DistributedDataParallel):
            self.module = self.module.module

    def shard(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's equal slice of a global batch."""
        if not self.active:
            return x, y
        n = x.shape[0]
        if n % self.world:
            raise ConfigError(f"a training batch has {n} rows after transform, which do not "
                              f"split evenly over {self.world} ranks")
        size = n // self.world
        rows = slice(self.rank * size, (self.rank + 1) * size)
        return x[rows], y[rows]

    def global_mean(self, total: Tensor, means: Tensor, count: Tensor | int
                    ) -> tuple[Tensor, Tensor]:
        """`(total, means)` rescaled so that DDP's gradient average is the global batch's.

        With a fixed number of targets per row (`count` an int) the slices are equal and the
        per-rank means average to the global mean as they are. Per-feature target counts
        (token masks) differ between slices: each mean is rescaled to `sums / (N_global / W)`.
        """
        if not self.active or isinstance(count, int):
            return total, means
        world = distributed.all_reduce(count).clamp_min(1).to(means.dtype)
        scaled = means * (count.to(means.dtype) * self.world / world)
        return scaled.sum(), scaled

    def total(self, *sums: Tensor) -> tuple[Tensor, ...]:
        """Sums over every rank (the curves' training statistics)."""
        if not self.active:
            return sums
        return tuple(distributed.all_reduce(s) for s in sums)

    def same(self, value):
        """Rank 0's `value` on every rank (picklable)."""
        return distributed.broadcast_object(value) if self.active else value
