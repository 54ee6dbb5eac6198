"""What every dataset shares: the `TaskData` container, seeded generators and splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, ShapeError

SPLITS = ("train", "val", "test")
IGNORE = -100  # target of a sequence position that predicts no feature (as in cross_entropy)


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Train/val/test pairs `(x, y)` of one task, with what the targets mean.

    `y` is `[n]` int64 class ids (single label), `[n, F]` int64 (one column per feature), or,
    for sequence tasks, `[n, T]` int64 with `-100` at positions that predict no feature.
    """

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: tuple[int, ...]
    """Classes per target column; `(k,)` for a single label."""
    feature_names: tuple[str, ...]
    """Names of the target columns, in the order they appear in y."""
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Task-specific facts: feature groups, complexity, curriculum, positions, ..."""

    def __post_init__(self):
        for name in SPLITS:
            pair = getattr(self, name)
            if not (isinstance(pair, tuple) and len(pair) == 2
                    and all(isinstance(t, Tensor) for t in pair)):
                raise ShapeError(f"TaskData.{name} must be a pair (x, y) of tensors")
            if pair[0].shape[0] != pair[1].shape[0]:
                raise ShapeError(f"TaskData.{name} has {pair[0].shape[0]} inputs but "
                                 f"{pair[1].shape[0]} targets; expected one target row each")
        if len(self.num_classes) != len(self.feature_names):
            raise ShapeError(f"num_classes has {len(self.num_classes)} entries but "
                             f"feature_names {len(self.feature_names)}; expected one per column")

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """The pair `(x, y)` of split `"train"`, `"val"` or `"test"`."""
        return getattr(self, check.choice(name, "split", SPLITS))

    @property
    def sequence(self) -> bool:
        """Whether y holds per-position targets (a token-sequence task)."""
        return "output_positions" in self.info

    def targets(self, split: str = "test") -> dict[str, Tensor]:
        """`{feature name: values [n]}` of one split: the target columns, for analyses."""
        y = self.split(split)[1]
        if self.sequence:
            columns = [y[:, p] for p in self.info["output_positions"]]
        elif y.ndim == 1:
            columns = [y]
        else:
            columns = list(y.unbind(1))
        return dict(zip(self.feature_names, columns, strict=True))


def generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator for one named random stream of a seeded dataset.

    Each split (and each purpose) draws from its own stream, so e.g. the test set does not
    change when the training set grows. The streams are mixed by numpy's SeedSequence.
    """
    seed = check.positive_int(seed, "seed", minimum=0)
    state = np.random.SeedSequence([seed, *stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def split_sizes(n: int, val_fraction: float, test_fraction: float,
                min_train: int = 1) -> tuple[int, int, int]:
    """`(n_train, n_val, n_test)` from fractions of n (rounded; the rest is training data)."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {value!r}")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < min_train:
        raise ConfigError(f"val_fraction={val_fraction} and test_fraction={test_fraction} "
                          f"leave {n - n_val - n_test} of {n} rows for training; expected at "
                          f"least {min_train}")
    return n - n_val - n_test, n_val, n_test


def split_indices(n: int, sizes: Sequence[int], *, seed: int = 0,
                  stratify: Tensor | None = None) -> tuple[Tensor, ...]:
    """Disjoint random index sets of the given sizes out of `range(n)`, seeded.

    Args:
        sizes: rows per part; they may sum to less than n (the rest is left out).
        stratify: class ids `[n]`; each part then holds every class in proportion, up to
            rounding (systematic sampling: each class's rows, in random order, are spread
            evenly over the parts).

    Returns one sorted int64 index tensor per part.
    """
    n = check.positive_int(n, "n", minimum=0)
    sizes = [check.positive_int(s, "sizes", minimum=0) for s in sizes]
    if sum(sizes) > n:
        raise ConfigError(f"sizes {tuple(sizes)} sum to {sum(sizes)}, more than the {n} rows")
    gen = generator(seed, 0x5B1)
    order = torch.randperm(n, generator=gen)
    if stratify is not None:
        ids = check.as_tensor(stratify, "stratify").reshape(-1).long().cpu()
        if ids.shape[0] != n:
            raise ShapeError(f"stratify has {ids.shape[0]} labels, expected n = {n}")
        # Rank of each row among its class (in random order), as a fraction of the class
        # size: sorting by it interleaves the classes evenly, so every prefix is stratified.
        classes, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
        shuffled = inverse[order]
        by_class = torch.sort(shuffled, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty(n, dtype=torch.long)
        rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
        quantile = (rank.double() + torch.rand(n, generator=gen, dtype=torch.float64)) / (
            counts[shuffled].double())
        order = order[torch.sort(quantile, stable=True).indices]
    bounds = np.cumsum([0, *sizes])
    return tuple(order[a:b].sort().values for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def take(pair: tuple[Tensor, Tensor], index: Tensor) -> tuple[Tensor, Tensor]:
    """Rows `index` of both tensors of a pair."""
    return pair[0][index], pair[1][index]
