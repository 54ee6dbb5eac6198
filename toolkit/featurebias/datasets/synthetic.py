"""Synthetic feature tasks: ±1 input bits, binary features of disjoint groups (SCIENCE §6.1)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from .base import SPLITS, TaskData, generator
from .features import FeatureSpec, assign_groups, truth_table

PREVALENCE_MODES = ("positive_rate", "variation")
DEFAULT_FEATURES = (FeatureSpec("easy", "sum_threshold", 3), FeatureSpec("hard", "parity", 4))

Curriculum = Mapping[str, int] | tuple[Collection[str], int] | None


def synthetic_task(features: Sequence[FeatureSpec] = DEFAULT_FEATURES, *, distractors: int = 9,
                   sizes: Sequence[int] = (8192, 2048, 2048),
                   prevalence_mode: str = "positive_rate", curriculum: Curriculum = None,
                   seed: int = 0) -> TaskData:
    """Bits `b ~ Bernoulli(½)^D` fed as `x = 2b − 1` (float32 `[n, D]`); y `[n, F]` int64 0/1.

    Feature j reads only its own disjoint input group, and the groups are drawn independently,
    so the features are statistically independent of each other and of the distractor bits.
    The default is SCIENCE §6.1's: easy = majority of 3 bits, hard = parity of 4, 9
    distractors (D = 16), 8192/2048/2048 rows.

    Args:
        features: the features, in target-column order (names unique).
        distractors: extra input bits that no feature reads.
        sizes: rows of the train, val and test splits (each drawn i.i.d.).
        prevalence_mode: how a feature's `prevalence` p skews the *training* split (val and test
            stay balanced): `"positive_rate"` draws f ~ Bernoulli(p), then a uniform group
            pattern with that value; `"variation"` redraws the group (balanced) in a fraction p
            of the examples and holds it at one fixed, seeded pattern otherwise.
        curriculum: when each feature's loss is switched on: `{name: start step}` (unlisted
            features start at 0), or `(first, steps)`: the features in `first` from step 0,
            the others from `steps`. `info["loss_start"]` is then the tuple for
            `TrainConfig(loss_start=...)`.
        seed: same seed, same data; each split and feature draws from its own stream, so the
            test set does not change with the training size.

    Returns:
        `TaskData` whose `info` holds `features` (per name: `group`, `kind`, `group_size`,
        `threshold`, `prevalence`, `linearly_separable`, and `fixed_pattern` under
        `"variation"`), `distractors` (positions), `input_dim`, `prevalence_mode`,
        `curriculum`, `loss_start`, `seed`. `subcomponents` gives analysis-only features.
    """
    plan = _plan(features, distractors, sizes, prevalence_mode, curriculum, seed)
    splits = {}
    for index, name in enumerate(SPLITS):
        bits, y = sample(plan, index, plan.sizes[index], training=name == "train")
        splits[name] = (2 * bits.float() - 1, y)
    return TaskData(**splits, num_classes=(2,) * len(plan.specs),
                    feature_names=tuple(s.name for s in plan.specs), info=plan.info)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated synthetic task: everything except the random draws of its splits."""

    specs: tuple[FeatureSpec, ...]
    groups: list[tuple[int, ...]]
    tables: list[Tensor]
    fixed: list[int | None]
    """Per feature, the code of its fixed pattern under `"variation"` (else None)."""
    input_dim: int
    sizes: tuple[int, ...]
    mode: str
    seed: int
    info: dict


def _plan(features, distractors, sizes, prevalence_mode, curriculum, seed) -> Plan:
    """Validate the options; fix groups, truth tables and fixed patterns (no data drawn yet)."""
    specs = tuple(features)
    if not specs or not all(isinstance(s, FeatureSpec) for s in specs):
        raise ConfigError(f"features must be a non-empty sequence of FeatureSpec, got "
                          f"{features!r}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"feature names must be unique, got {names}")
    distractors = check.positive_int(distractors, "distractors", minimum=0)
    sizes = tuple(sizes)
    if len(sizes) != 3:
        raise ConfigError(f"sizes must be (train, val, test), got {sizes!r}")
    sizes = tuple(check.positive_int(s, f"sizes[{i}] ({SPLITS[i]})")
                  for i, s in enumerate(sizes))
    check.choice(prevalence_mode, "prevalence_mode", PREVALENCE_MODES)
    seed = check.positive_int(seed, "seed", minimum=0)
    groups, free, total = assign_groups(specs, distractors)
    tables = [truth_table(s) for s in specs]
    fixed = [None] * len(specs)
    if prevalence_mode == "variation":
        fixed = [int(torch.randint(0, 2 ** s.group_size, (), generator=generator(seed, 9, j)))
                 for j, s in enumerate(specs)]
    starts = _loss_start(curriculum, names)
    info = {
        "format": "bits",
        "input_dim": total,
        "features": {s.name: {
            "kind": s.kind_name, "group": g, "group_size": s.group_size,
            "threshold": s.threshold, "prevalence": s.prevalence,
            "linearly_separable": s.linearly_separable,
            **({} if code is None else {"fixed_pattern": _digits(code, s.group_size)}),
        } for s, g, code in zip(specs, groups, fixed, strict=True)},
        "distractors": free,
        "prevalence_mode": prevalence_mode,
        "curriculum": dict(zip(names, starts, strict=True)) if curriculum is not None else None,
        "loss_start": starts,
        "seed": seed,
    }
    return Plan(specs, groups, tables, fixed, total, sizes, prevalence_mode, seed, info)


def _loss_start(curriculum: Curriculum, names: list[str]) -> tuple[int, ...]:
    if curriculum is None:
        return (0,) * len(names)
    if isinstance(curriculum, Mapping):
        starts = dict(curriculum)
    elif isinstance(curriculum, tuple) and len(curriculum) == 2:
        first, steps = curriculum
        first = {first} if isinstance(first, str) else set(first)
        unknown = first - set(names)
        if unknown:
            raise ConfigError(f"curriculum names unknown feature(s) {sorted(unknown)}; "
                              f"features are {names}")
        starts = {n: 0 if n in first else steps for n in names}
    else:
        raise ConfigError("curriculum must be {name: start step} or (first features, steps), "
                          f"got {curriculum!r}")
    unknown = set(starts) - set(names)
    if unknown:
        raise ConfigError(f"curriculum names unknown feature(s) {sorted(unknown)}; features "
                          f"are {names}")
    for name, step in starts.items():
        check.positive_int(step, f"curriculum start step of {name!r}", minimum=0)
    return tuple(starts.get(n, 0) for n in names)


def _digits(code: int, g: int) -> tuple[int, ...]:
    return tuple((code >> (g - 1 - i)) & 1 for i in range(g))


def _draw_codes(table: Tensor, n: int, p: float, gen: torch.Generator) -> Tensor:
    """Pattern codes `[n]`: f ~ Bernoulli(p), then a uniform pattern with that value."""
    positive, negative = table.nonzero()[:, 0], (table == 0).nonzero()[:, 0]
    value = torch.rand(n, generator=gen) < p
    pick1 = positive[torch.randint(0, positive.numel(), (n,), generator=gen)]
    pick0 = negative[torch.randint(0, negative.numel(), (n,), generator=gen)]
    return torch.where(value, pick1, pick0)


def sample(plan: Plan, split: int, n: int, *, training: bool) -> tuple[Tensor, Tensor]:
    """Bits `[n, D]` int64 and targets `[n, F]` int64 of one split (`split` names its streams)."""
    seed, mode = plan.seed, plan.mode
    bits = torch.randint(0, 2, (n, plan.input_dim), generator=generator(seed, split, 1))
    y = torch.empty(n, len(plan.specs), dtype=torch.long)
    for j, (spec, group, table) in enumerate(zip(plan.specs, plan.groups, plan.tables,
                                                 strict=True)):
        gen = generator(seed, split, 0, j)
        skew = spec.prevalence if training else None
        if mode == "positive_rate":
            codes = _draw_codes(table, n, 0.5 if skew is None else skew, gen)
        else:
            codes = _draw_codes(table, n, 0.5, gen)
            if skew is not None:
                vary = torch.rand(n, generator=gen) < skew
                codes = torch.where(vary, codes, plan.fixed[j])
        shifts = torch.arange(spec.group_size - 1, -1, -1)
        bits[:, list(group)] = (codes[:, None] >> shifts) & 1
        y[:, j] = table[codes]
    return bits, y


def input_bits(task: TaskData, split: str = "test") -> Tensor:
    """The input bits `[n, D]` int64 in {0, 1} of a synthetic (or sequence) task's split."""
    x = task.split(split)[0]
    if task.info.get("format") == "sequence":
        return x[:, :task.info["input_dim"]].long()
    if task.info.get("format") != "bits":
        raise ConfigError("input_bits needs a task from synthetic_task or sequence_task")
    return (x > 0).long()


def subcomponents(task: TaskData, feature: str, split: str = "test", *,
                  order: int = 2) -> dict[str, Tensor]:
    """Analysis-only features of one feature's group: its single bits and XORs of bit tuples.

    Args:
        order: largest tuple size (1: the bits, 2: also every pairwise XOR, ...); capped at
            the group size.

    Returns:
        `{name: values [n] int64}`, e.g. `"hard.b12"` (input bit 12) and `"hard.b12^b13"`,
        ready for `featurebias.features.variance_explained`.
    """
    groups = task.info.get("features", {})
    if feature not in groups:
        raise ConfigError(f"unknown feature {feature!r}; the task has {sorted(groups)}")
    check.positive_int(order, "order")
    bits = input_bits(task, split)
    group = groups[feature]["group"]
    out = {}
    for size in range(1, min(order, len(group)) + 1):
        for combo in itertools.combinations(group, size):
            out[f"{feature}." + "^".join(f"b{i}" for i in combo)] = bits[:, list(combo)].sum(1) % 2
    return out
