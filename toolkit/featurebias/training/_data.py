"""Training data as seen by the loop: tensor pairs (on the model's device) or a `Dataset`."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler

from .. import _validate as check
from ..errors import ConfigError, LabelError, ShapeError


def _pair(x, y, name: str, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Checked `(x, y)` on `device`: floating x as `dtype`, y as int64."""
    x, y = check.as_tensor(x, f"{name} x"), check.as_tensor(y, f"{name} y")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"{name} has inputs of shape {tuple(x.shape)} and targets of shape "
                         f"{tuple(y.shape)}; expected the same number of rows in both")
    if y.is_floating_point() or y.is_complex():
        raise LabelError(f"{name} targets must be integer class ids, got dtype {y.dtype}")
    if x.is_floating_point():
        # NaN and Inf propagate through a sum: one reduction in x's own dtype (several times
        # cheaper than the float64 one of check_finite) clears the common case; a non-finite
        # sum, perhaps mere overflow, gets the exact element-wise check.
        if not bool(torch.isfinite(x.sum())):
            check.check_finite(x, f"{name} x")
        x = x.to(device=device, dtype=dtype)
    else:
        x = x.to(device)
    return x, y.to(device=device, dtype=torch.long)


class Source:
    """A training or validation set: `batches()` for training, `chunks()` for evaluation."""

    n: int

    def first(self, size: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def targets(self) -> Tensor:
        raise NotImplementedError

    def batches(self, size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def chunks(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError


class TensorSource(Source):
    """A pair of tensors moved to the model's device once; batches by seeded permutation."""

    def __init__(self, x: Tensor, y: Tensor):
        self.x, self.y, self.n = x, y, x.shape[0]

    def first(self, size: int) -> tuple[Tensor, Tensor]:
        return self.x[:size], self.y[:size]

    def targets(self) -> Tensor:
        return self.y

    def batches(self, size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        size = min(size, self.n)
        per_epoch = self.n // size  # the last partial batch is dropped: equal batch sizes
        while True:
            order = torch.randperm(self.n, generator=generator).to(self.x.device)
            for i in range(per_epoch):
                index = order[i * size:(i + 1) * size]
                yield self.x.index_select(0, index), self.y.index_select(0, index)

    def chunks(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, self.n, size):
            yield self.x[start:start + size], self.y[start:start + size]


class DatasetSource(Source):
    """A torch `Dataset` of `(x, y)` items, read through a `DataLoader` batch by batch."""

    def __init__(self, dataset: Dataset, name: str, device: torch.device, dtype: torch.dtype):
        self.dataset, self.name, self.device, self.dtype = dataset, name, device, dtype
        try:
            self.n = len(dataset)
        except TypeError as e:
            raise ConfigError(f"{name} must be a map-style Dataset with a length") from e
        if self.n == 0:
            raise ShapeError(f"{name} is empty; expected at least one example")
        self._targets: Tensor | None = None

    def _move(self, batch) -> tuple[Tensor, Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ConfigError(f"{self.name} must yield pairs (x, y), got {type(batch).__name__}")
        return _pair(batch[0], batch[1], self.name, self.device, self.dtype)

    def first(self, size: int) -> tuple[Tensor, Tensor]:
        return next(iter(self.chunks(size)))

    def targets(self) -> Tensor:
        # One pass up front, so that every label is checked before a parameter changes.
        if self._targets is None:
            self._targets = torch.cat([y for _, y in self.chunks(1024)])
        return self._targets

    def batches(self, size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        size = min(size, self.n)
        sampler = RandomSampler(self.dataset, generator=generator)
        loader = DataLoader(self.dataset, batch_size=size, sampler=sampler, drop_last=True)
        while True:
            for batch in loader:
                yield self._move(batch)

    def chunks(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for batch in DataLoader(self.dataset, batch_size=size, shuffle=False):
            yield self._move(batch)


def source(data, name: str, device: torch.device, dtype: torch.dtype) -> Source:
    """`data` (a pair `(x, y)` or a `Dataset`) as a checked `Source` on `device`."""
    if isinstance(data, Dataset):
        return DatasetSource(data, name, device, dtype)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = _pair(data[0], data[1], name, device, dtype)
        if x.shape[0] == 0:
            raise ShapeError(f"{name} is empty; expected at least one example")
        return TensorSource(x, y)
    raise ConfigError(f"{name} must be a pair (x, y) of tensors or a torch Dataset, got "
                      f"{type(data).__name__}")
