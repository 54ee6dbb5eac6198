"""Synthetic feature tasks: truth tables, independence, balance, prevalence, curriculum."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from sklearn.metrics import mutual_info_score

from featurebias.datasets import (
    FeatureSpec,
    input_bits,
    subcomponents,
    synthetic_task,
    truth_table,
)
from featurebias.errors import ConfigError, FeatureBiasError

SMALL = (2048, 512, 512)


def mi_bits(a, b) -> float:
    """Plug-in mutual information in bits (scikit-learn's estimator, in nats, converted)."""
    return mutual_info_score(np.asarray(a), np.asarray(b)) / math.log(2)


def group_bits(task, name, split="train") -> np.ndarray:
    return input_bits(task, split)[:, list(task.info["features"][name]["group"])].numpy()


def _and(bits):
    return bits[:, 0] & bits[:, 1]


# Reference feature values from the group bits, written independently of the library (numpy).
REFERENCE = {
    "identity": lambda b, spec: b[:, 0],
    "sum_threshold": lambda b, spec: (b.sum(1) >= spec.threshold).astype(np.int64),
    "xor": lambda b, spec: np.logical_xor(b[:, 0], b[:, 1]).astype(np.int64),
    "parity": lambda b, spec: np.logical_xor.reduce(b.astype(bool), axis=1).astype(np.int64),
    "_and": lambda b, spec: np.logical_and(b[:, 0], b[:, 1]).astype(np.int64),
}

SPECS = [
    FeatureSpec("f", "identity"),
    FeatureSpec("f", "sum_threshold", 3),
    FeatureSpec("f", "sum_threshold", 5, threshold=4),
    FeatureSpec("f", "xor"),
    FeatureSpec("f", "parity", 3),
    FeatureSpec("f", "parity", 5),
    FeatureSpec("f", _and, 2),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind_name}{s.group_size}")
def test_every_feature_is_its_truth_table(spec):
    task = synthetic_task([spec], distractors=3, sizes=(1024, 64, 64), seed=1)
    bits = group_bits(task, "f")
    want = REFERENCE[spec.kind_name](bits, spec)
    assert np.array_equal(task.train[1][:, 0].numpy(), want)
    # the enumerated table agrees with the reference on every pattern
    patterns = np.array(list(itertools.product([0, 1], repeat=spec.group_size)))
    assert np.array_equal(truth_table(spec).numpy(), REFERENCE[spec.kind_name](patterns, spec))
    # balanced sampling reaches every pattern of the group
    assert len({tuple(r) for r in bits}) == 2 ** spec.group_size


def test_xor_and_parity_tables_by_hand():
    assert truth_table(FeatureSpec("x", "xor")).tolist() == [0, 1, 1, 0]
    assert truth_table(FeatureSpec("m", "sum_threshold", 3)).tolist() == [0, 0, 0, 1, 0, 1, 1, 1]
    assert truth_table(FeatureSpec("p", "parity", 3)).tolist() == [0, 1, 1, 0, 1, 0, 0, 1]


def test_default_task_is_the_documented_one():
    task = synthetic_task()
    x, y = task.train
    assert x.shape == (8192, 16) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert y.shape == (8192, 2) and y.dtype == torch.int64
    assert [len(task.split(s)[0]) for s in ("train", "val", "test")] == [8192, 2048, 2048]
    assert task.feature_names == ("easy", "hard") and task.num_classes == (2, 2)
    feats = task.info["features"]
    assert feats["easy"]["kind"] == "sum_threshold" and feats["easy"]["group_size"] == 3
    assert feats["hard"]["kind"] == "parity" and feats["hard"]["group_size"] == 4
    assert feats["easy"]["linearly_separable"] and not feats["hard"]["linearly_separable"]
    assert len(task.info["distractors"]) == 9 and task.info["input_dim"] == 16
    groups = [set(feats[n]["group"]) for n in ("easy", "hard")] + [set(task.info["distractors"])]
    assert set().union(*groups) == set(range(16)) and sum(map(len, groups)) == 16


def test_features_and_distractors_are_independent():
    task = synthetic_task()
    bits, y = input_bits(task, "train").numpy(), task.train[1].numpy()
    assert mi_bits(y[:, 0], y[:, 1]) < 0.01
    for j in range(2):  # each target against every distractor bit and pairwise XOR of them
        for i in task.info["distractors"]:
            assert mi_bits(y[:, j], bits[:, i]) < 0.01
        for a, b in itertools.combinations(task.info["distractors"], 2):
            assert mi_bits(y[:, j], bits[:, a] ^ bits[:, b]) < 0.01
    # ... while each target is fully determined by its own group: the estimator can see that
    easy_code = group_bits(task, "easy") @ np.array([4, 2, 1])
    assert mi_bits(y[:, 0], easy_code) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_splits_are_balanced_and_patterns_uniform(split):
    task = synthetic_task()
    y = task.split(split)[1].double()
    sd = math.sqrt(0.25 / len(y))
    assert (y.mean(0) - 0.5).abs().max() < 4 * sd
    for name in ("easy", "hard"):  # majority-3 and parity-4 are balanced: uniform patterns
        g = task.info["features"][name]["group_size"]
        code = group_bits(task, name, split) @ (2 ** np.arange(g))
        assert chisquare(np.bincount(code, minlength=2 ** g)).pvalue > 1e-3


def test_positive_rate_prevalence_skews_training_only():
    easy = FeatureSpec("easy", "sum_threshold", 3, prevalence=0.8)
    task = synthetic_task([easy, FeatureSpec("hard", "parity", 4)], seed=3)
    rate = {s: task.split(s)[1].double().mean(0) for s in ("train", "val", "test")}
    assert abs(rate["train"][0] - 0.8) < 4 * math.sqrt(0.16 / 8192)
    assert abs(rate["train"][1] - 0.5) < 4 * math.sqrt(0.25 / 8192)
    for s in ("val", "test"):
        assert (rate[s] - 0.5).abs().max() < 4 * math.sqrt(0.25 / 2048)
    y = task.train[1].numpy()
    assert mi_bits(y[:, 0], y[:, 1]) < 0.01  # skewing one feature keeps them independent
    positives = group_bits(task, "easy")[y[:, 0] == 1] @ np.array([4, 2, 1])
    assert chisquare(np.bincount(positives)[[3, 5, 6, 7]]).pvalue > 1e-3  # uniform within class


def test_variation_prevalence_holds_the_group_fixed_elsewhere():
    easy = FeatureSpec("easy", "sum_threshold", 3, prevalence=0.25)
    task = synthetic_task([easy, FeatureSpec("hard", "parity", 4)], sizes=(8192, 2048, 2048),
                          prevalence_mode="variation", seed=4)
    fixed = np.array(task.info["features"]["easy"]["fixed_pattern"])
    # a balanced draw hits the fixed pattern with probability ½ / 4 (4 patterns per value)
    moved = {s: (group_bits(task, "easy", s) != fixed).any(1).mean() for s in ("train", "test")}
    assert moved["train"] == pytest.approx(0.25 * (1 - 0.125), abs=0.02)
    assert moved["test"] == pytest.approx(1 - 0.125, abs=0.03)
    hard_moved = (group_bits(task, "hard") != group_bits(task, "hard")[0]).any(1).mean()
    assert hard_moved > 0.9  # the other feature still varies everywhere
    test_rate = task.test[1].double().mean(0)
    assert (test_rate - 0.5).abs().max() < 4 * math.sqrt(0.25 / 2048)


@pytest.mark.parametrize("curriculum, want", [
    (None, (0, 0)),
    (({"easy"}, 500), (0, 500)),
    (("hard", 200), (200, 0)),
    ({"hard": 300}, (0, 300)),
])
def test_curriculum_loss_start(curriculum, want):
    task = synthetic_task(sizes=(8, 8, 8), curriculum=curriculum)
    assert task.info["loss_start"] == want
    assert (task.info["curriculum"] is None) == (curriculum is None)


def test_same_seed_same_data_and_streams_per_split():
    a = synthetic_task(sizes=SMALL, seed=5)
    b = synthetic_task(sizes=SMALL, seed=5)
    c = synthetic_task(sizes=SMALL, seed=6)
    bigger = synthetic_task(sizes=(4096, 512, 512), seed=5)
    state = torch.get_rng_state()
    for s in ("train", "val", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a.split(s), b.split(s), strict=True))
        assert not torch.equal(a.split(s)[0], c.split(s)[0])
    assert torch.equal(a.test[0], bigger.test[0])  # the test set ignores the training size
    assert not torch.equal(a.train[0], a.test[0][: len(a.train[0])])
    synthetic_task(sizes=SMALL, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched


def test_explicit_groups_are_respected():
    specs = [FeatureSpec("a", "xor", group=(5, 1)), FeatureSpec("b", "identity")]
    task = synthetic_task(specs, distractors=3, sizes=(256, 8, 8))  # D = 6
    assert task.info["features"]["a"]["group"] == (5, 1)
    assert task.info["features"]["b"]["group"] == (0,)
    bits = input_bits(task, "train")
    assert torch.equal(task.train[1][:, 0], bits[:, 5] ^ bits[:, 1])
    assert torch.equal(task.train[1][:, 1], bits[:, 0])


def test_subcomponents_are_bits_and_xors_of_the_group():
    task = synthetic_task(sizes=SMALL)
    parts = subcomponents(task, "hard", "test")
    group = task.info["features"]["hard"]["group"]
    assert len(parts) == 4 + 6
    bits = input_bits(task, "test")
    i, j = group[0], group[2]
    assert torch.equal(parts[f"hard.b{i}"], bits[:, i])
    assert torch.equal(parts[f"hard.b{i}^b{j}"], bits[:, i] ^ bits[:, j])
    # the parity itself is the XOR of all four: order = group size reproduces the target
    full = subcomponents(task, "hard", "test", order=4)
    assert torch.equal(full["hard." + "^".join(f"b{k}" for k in group)], task.test[1][:, 1])
    # sub-components of a parity carry no information about it (what makes it hard)
    for values in parts.values():
        assert mi_bits(values, task.test[1][:, 1]) < 0.01


def test_targets_view():
    task = synthetic_task(sizes=SMALL)
    cols = task.targets("val")
    assert list(cols) == ["easy", "hard"]
    assert torch.equal(cols["hard"], task.val[1][:, 1])


def _constant(bits):
    return torch.zeros(bits.shape[0], dtype=torch.long)


def _two(bits):
    return bits[:, 0] * 2


@pytest.mark.parametrize("make, match", [
    (lambda: synthetic_task(sizes=(0, 8, 8)), "sizes"),
    (lambda: synthetic_task(sizes=(8, 8)), "sizes"),
    (lambda: synthetic_task(distractors=-1), "distractors"),
    (lambda: synthetic_task([FeatureSpec("a", "xor", group=(0, 1)),
                             FeatureSpec("b", "xor", group=(1, 2))]), "share input 1"),
    (lambda: synthetic_task([FeatureSpec("a", "xor", group=(0, 40))]), "out of range"),
    (lambda: synthetic_task([FeatureSpec("a"), FeatureSpec("a")]), "unique"),
    (lambda: synthetic_task([]), "non-empty"),
    (lambda: synthetic_task(prevalence_mode="often"), "prevalence_mode"),
    (lambda: synthetic_task(curriculum={"medium": 3}), "unknown feature"),
    (lambda: synthetic_task(curriculum=({"easy"}, -5)), "start step"),
    (lambda: synthetic_task(curriculum=[1, 2, 3]), "curriculum"),
    (lambda: FeatureSpec("a", "majority"), "kind"),
    (lambda: FeatureSpec("a", "identity", 2), "group_size 1"),
    (lambda: FeatureSpec("a", "xor", 3), "group_size 2"),
    (lambda: FeatureSpec("a", "parity", 0), "group_size"),
    (lambda: FeatureSpec("a", "sum_threshold", 3, threshold=4), "threshold"),
    (lambda: FeatureSpec("a", "parity", 3, threshold=1), "threshold"),
    (lambda: FeatureSpec("a", "parity", 3, prevalence=0.0), "prevalence"),
    (lambda: FeatureSpec("a", _and), "group_size"),
    (lambda: FeatureSpec("", "identity"), "name"),
    (lambda: FeatureSpec("a", "xor", group=(1, 1)), "distinct"),
    (lambda: truth_table(FeatureSpec("a", _constant, 2)), "constant"),
    (lambda: truth_table(FeatureSpec("a", _two, 2)), "values in"),
])
def test_bad_options_raise_clear_errors(make, match):
    with pytest.raises(FeatureBiasError, match=match):
        make()


def test_errors_are_config_errors():
    with pytest.raises(ConfigError):
        synthetic_task(sizes=(-1, 1, 1))
