"""The synthetic task as a token sequence for transformers, features emitted in a chosen order."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import IGNORE, SPLITS, TaskData
from .synthetic import DEFAULT_FEATURES, Curriculum, FeatureSpec, _plan, sample

SEP = 2  # token ids: 0 and 1 are bits (and feature values), 2 is [SEP]
VOCAB_SIZE = 3


def sequence_task(features: Sequence[FeatureSpec] = DEFAULT_FEATURES, *, distractors: int = 9,
                  sizes: Sequence[int] = (8192, 2048, 2048),
                  prevalence_mode: str = "positive_rate", curriculum: Curriculum = None,
                  order: Sequence[int] | Sequence[str] | None = None,
                  seed: int = 0) -> TaskData:
    """`synthetic_task`'s data as `[bits…, SEP, f_π(1), …, f_π(F)]`, for teacher forcing.

    The full sequence has D bit tokens (0/1), the `[SEP]` token (2), then the F feature values
    (0/1) in the order π. The model reads all but the last token: x is `[n, T]` int64 with
    T = D + F, and y `[n, T]` holds the next token at the F positions that predict a feature
    (the `[SEP]` position predicts the first, ...) and `-100` everywhere else. The same seed
    gives the same bits and features as `synthetic_task`, whatever the order.

    Args:
        order: π, the features (indices into `features`, or names) in output order; default
            the listed order. Rotate it across runs so every feature takes every position.
        features, distractors, sizes, prevalence_mode, curriculum, seed: as in
            `synthetic_task`.

    Returns:
        `TaskData` with `feature_names` in output order, `num_classes` 2 per feature, and
        `info`: `vocab_size` (3), `sep_token`, `sep_position` (D), `output_positions`
        (`D + j` for slot j: where the logits predict feature π(j)), `order` (π as indices
        into `features`), `input_dim`, `loss_start` (in output order, for
        `TrainConfig(loss_start=...)`), `features`, ... as in `synthetic_task`.
    """
    plan = _plan(features, distractors, sizes, prevalence_mode, curriculum, seed)
    specs = plan.specs
    perm = _permutation(order, [s.name for s in specs])
    d, f = plan.input_dim, len(specs)
    splits = {}
    for index, name in enumerate(SPLITS):
        bits, y = sample(plan, index, plan.sizes[index], training=name == "train")
        outputs = y[:, perm]
        sep = torch.full((bits.shape[0], 1), SEP, dtype=torch.long)
        tokens = torch.cat([bits, sep, outputs], 1)
        targets = torch.full((bits.shape[0], d + f), IGNORE, dtype=torch.long)
        targets[:, d:] = outputs
        splits[name] = (tokens[:, :-1], targets)
    info = dict(plan.info)
    info.update(format="sequence", vocab_size=VOCAB_SIZE, sep_token=SEP, sep_position=d,
                output_positions=tuple(range(d, d + f)), order=tuple(perm),
                loss_start=tuple(info["loss_start"][j] for j in perm))
    return TaskData(**splits, num_classes=(2,) * f,
                    feature_names=tuple(specs[j].name for j in perm), info=info)


def _permutation(order, names: list[str]) -> list[int]:
    if order is None:
        return list(range(len(names)))
    order = list(order)
    perm = [names.index(o) if isinstance(o, str) and o in names else o for o in order]
    ints = all(isinstance(p, int) and not isinstance(p, bool) for p in perm)
    if not ints or sorted(perm) != list(range(len(names))):
        raise ConfigError(f"order must be a permutation of the {len(names)} features (indices "
                          f"0..{len(names) - 1} or names {names}), got {tuple(order)}")
    return perm
