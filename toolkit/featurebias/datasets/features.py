"""Boolean features of disjoint input groups: identity, sum-threshold, XOR, parity, custom."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, ShapeError

KINDS = ("identity", "sum_threshold", "xor", "parity")
DEFAULT_GROUP = {"identity": 1, "sum_threshold": 3, "xor": 2, "parity": 4}
LINEARLY_SEPARABLE = {"identity": True, "sum_threshold": True, "xor": False, "parity": False}
MAX_GROUP = 16  # a group's 2^g patterns are enumerated (truth table, balanced sampling)

BitFunction = Callable[[Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One binary output feature, computed from its own group of input bits `b ∈ {0, 1}^g`.

    Args:
        name: the feature's name (its target column).
        kind: `"identity"` (`f = b₀`), `"sum_threshold"` (`f = 1[Σ b ≥ threshold]`),
            `"xor"` (`b₀ ⊕ b₁`), `"parity"` (`⊕ b`, any g ≥ 2), or a callable mapping bits
            `[n, g]` int64 to values `[n]` in {0, 1} (then `group_size` is required).
        group_size: g (default: 1, 3, 2, 4 for the four kinds).
        threshold: for `"sum_threshold"`; default ⌈g/2⌉ (majority when g is odd).
        prevalence: how the training split skews this feature (see `synthetic_task`):
            P(f = 1) with `prevalence_mode="positive_rate"`, the fraction of examples whose
            group varies with `"variation"`. None leaves it balanced / always varying.
        group: explicit input positions (disjoint from every other feature's); default: the
            lowest free positions, in the order the features are listed.
    """

    name: str
    kind: str | BitFunction = "identity"
    group_size: int | None = None
    threshold: int | None = None
    prevalence: float | None = None
    group: tuple[int, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"feature name must be a non-empty string, got {self.name!r}")
        if not callable(self.kind) and self.kind not in KINDS:
            raise ConfigError(f"feature {self.name!r}: kind must be one of {KINDS} or a "
                              f"callable, got {self.kind!r}")
        if self.group is not None:
            group = tuple(self.group)
            if not group or any(isinstance(i, bool) or not isinstance(i, int) or i < 0
                                for i in group) or len(set(group)) != len(group):
                raise ConfigError(f"feature {self.name!r}: group must be distinct input "
                                  f"positions (ints >= 0), got {self.group!r}")
            if self.group_size is not None and self.group_size != len(group):
                raise ConfigError(f"feature {self.name!r}: group_size={self.group_size} but "
                                  f"group has {len(group)} positions")
            object.__setattr__(self, "group", group)
            object.__setattr__(self, "group_size", len(group))
        if self.group_size is None:
            if callable(self.kind):
                raise ConfigError(f"feature {self.name!r}: a callable kind needs group_size")
            object.__setattr__(self, "group_size", DEFAULT_GROUP[self.kind])
        g = check.positive_int(self.group_size, f"feature {self.name!r}: group_size")
        if g > MAX_GROUP:
            raise ConfigError(f"feature {self.name!r}: group_size must be <= {MAX_GROUP}, got {g}")
        needed = {"identity": (1, 1), "xor": (2, 2), "parity": (2, MAX_GROUP)}.get(self.kind)
        if needed and not needed[0] <= g <= needed[1]:
            span = needed[0] if needed[0] == needed[1] else f">= {needed[0]}"
            raise ConfigError(f"feature {self.name!r}: kind {self.kind!r} needs group_size "
                              f"{span}, got {g}")
        if self.kind == "sum_threshold":
            if self.threshold is None:
                object.__setattr__(self, "threshold", math.ceil(g / 2))
            if not (isinstance(self.threshold, int) and 1 <= self.threshold <= g):
                raise ConfigError(f"feature {self.name!r}: threshold must be an int in [1, {g}] "
                                  f"(else the feature is constant), got {self.threshold!r}")
        elif self.threshold is not None:
            raise ConfigError(f"feature {self.name!r}: threshold applies to kind "
                              f"'sum_threshold' only, got kind {self.kind!r}")
        if self.prevalence is not None and not 0 < self.prevalence <= 1:
            raise ConfigError(f"feature {self.name!r}: prevalence must lie in (0, 1], "
                              f"got {self.prevalence!r}")

    @property
    def kind_name(self) -> str:
        """The kind as a string (a callable's `__name__`)."""
        return self.kind if isinstance(self.kind, str) else getattr(self.kind, "__name__",
                                                                     "custom")

    @property
    def linearly_separable(self) -> bool | None:
        """Whether the feature is a threshold of a linear function of its bits (None: unknown)."""
        return LINEARLY_SEPARABLE.get(self.kind) if isinstance(self.kind, str) else None

    def __call__(self, bits: Tensor) -> Tensor:
        """Feature values `[n]` int64 in {0, 1} of group bits `[n, g]` in {0, 1}."""
        if bits.ndim != 2 or bits.shape[1] != self.group_size:
            raise ShapeError(f"feature {self.name!r} reads bits [n, {self.group_size}], got "
                             f"{tuple(bits.shape)}")
        bits = bits.long()
        if self.kind == "identity":
            return bits[:, 0]
        if self.kind == "sum_threshold":
            return (bits.sum(1) >= self.threshold).long()
        if self.kind in ("xor", "parity"):
            return bits.sum(1) % 2
        values = torch.as_tensor(self.kind(bits))
        if values.shape != (bits.shape[0],):
            raise ShapeError(f"feature {self.name!r}: the function returned shape "
                             f"{tuple(values.shape)}, expected [{bits.shape[0]}]")
        if not bool(((values == 0) | (values == 1)).all()):
            raise ConfigError(f"feature {self.name!r}: the function must return values in "
                              "{0, 1}")
        return values.long()


def all_patterns(g: int) -> Tensor:
    """All `2^g` bit patterns `[2^g, g]` int64; row p holds the binary digits of p (MSB first)."""
    codes = torch.arange(2 ** g)
    return (codes[:, None] >> torch.arange(g - 1, -1, -1)) & 1


def truth_table(spec: FeatureSpec) -> Tensor:
    """The feature's value `[2^g]` on every pattern of `all_patterns(g)`."""
    table = spec(all_patterns(spec.group_size))
    if int(table.min()) == int(table.max()):
        raise ConfigError(f"feature {spec.name!r} is constant ({int(table[0])}) on all "
                          f"{table.numel()} patterns of its group; expected both values")
    return table


def assign_groups(specs: Sequence[FeatureSpec], distractors: int
                  ) -> tuple[list[tuple[int, ...]], tuple[int, ...], int]:
    """Input positions of every feature's group, the distractors' positions, and D.

    Explicit groups keep their positions; the others take the lowest free ones in order;
    distractors fill what is left.
    """
    total = sum(s.group_size for s in specs) + distractors
    taken: dict[int, str] = {}
    for spec in specs:
        for i in spec.group or ():
            if i >= total:
                raise ConfigError(f"feature {spec.name!r}: input position {i} is out of range; "
                                  f"the task has D = {total} inputs (groups + distractors)")
            if i in taken:
                raise ConfigError(f"features {taken[i]!r} and {spec.name!r} share input {i}; "
                                  "groups must be disjoint (so features are independent)")
            taken[i] = spec.name
    free = iter(i for i in range(total) if i not in taken)
    groups = [spec.group or tuple(next(free) for _ in range(spec.group_size)) for spec in specs]
    return groups, tuple(free), total
