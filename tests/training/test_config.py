"""`TrainConfig`: the contract's defaults, and every bad value rejected with a clear message."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from featurebias.errors import ConfigError
from featurebias.training import TrainConfig, checkpoint_steps, learning_rate, log_spaced


def test_defaults_are_the_contract():
    cfg = TrainConfig()
    assert (cfg.steps, cfg.batch_size, cfg.optimizer, cfg.lr) == (1000, 128, "adamw", 1e-3)
    assert (cfg.weight_decay, cfg.momentum, cfg.schedule, cfg.eval_every) == (0, 0, "constant",
                                                                              100)
    assert (cfg.patience, cfg.checkpoints, cfg.heads, cfg.loss_start, cfg.feature_names,
            cfg.seed) == (None, 0, None, None, None, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 5


@pytest.mark.parametrize(("options", "match"), [
    ({"steps": 0}, "steps"),
    ({"steps": -3}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"steps": True}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"eval_every": 0}, "eval_every"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"schedule": "linear"}, "schedule"),
    ({"lr": 0.0}, "lr"),
    ({"lr": math.nan}, "lr"),
    ({"lr": "1e-3"}, "lr"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"momentum": 1.0, "optimizer": "sgd"}, "momentum"),
    ({"momentum": 0.9}, "momentum applies to optimizer='sgd'"),
    ({"patience": 0}, "patience"),
    ({"checkpoints": -1}, "checkpoints"),
    ({"seed": -1}, "seed"),
    ({"heads": (2, 0)}, r"heads\[1\]"),
    ({"heads": ()}, "heads must not be empty"),
    ({"heads": 3}, "heads must be a tuple"),
    ({"loss_start": (0, -5)}, r"loss_start\[1\]"),
    ({"feature_names": "easy"}, "feature_names must be a tuple"),
    ({"feature_names": ("a", "a")}, "distinct"),
    ({"feature_names": ("all", "b")}, "'all'"),
    ({"feature_names": ("a", 3)}, r"feature_names\[1\]"),
])
def test_bad_values_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**options)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    cfg = TrainConfig(steps=np.int64(10), batch_size=np.int32(4), lr=np.float32(0.5),
                      momentum=np.float64(0.5), optimizer="sgd", patience=np.int64(2))
    assert cfg == TrainConfig(steps=10, batch_size=4, lr=0.5, momentum=0.5, optimizer="sgd",
                              patience=2)
    assert type(cfg.steps) is int and type(cfg.lr) is float
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=None)
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=np.float64(10.0))


def test_sequences_become_tuples():
    cfg = TrainConfig(heads=[1, 3], loss_start=[0, 50], feature_names=["a", "b"])
    assert cfg.heads == (1, 3) and cfg.loss_start == (0, 50) and cfg.feature_names == ("a", "b")
    hash(cfg)  # frozen and hashable: usable as a sweep parameter


def test_learning_rate_schedules():
    cosine = TrainConfig(steps=10, lr=0.5, schedule="cosine")
    assert learning_rate(cosine, 0) == 0.5
    assert learning_rate(cosine, 5) == pytest.approx(0.25)
    assert learning_rate(TrainConfig(steps=10, lr=0.5), 9) == 0.5


@pytest.mark.parametrize(("first", "last", "count"), [(1, 1000, 10), (128, 1438, 8), (1, 5, 5),
                                                      (3, 3, 1), (1, 20, 12), (64, 1200, 6)])
def test_log_spaced_grid(first, last, count):
    grid = log_spaced(first, last, count)
    assert len(grid) == count and grid[0] == (first if count > 1 else last) and grid[-1] == last
    assert all(b > a for a, b in zip(grid, grid[1:], strict=False))
    if count > 2 and last / first > 100 * count:  # no collisions: within rounding of geometric
        ratio = (last / first) ** (1 / (count - 1))
        for i, value in enumerate(grid):
            assert abs(value - first * ratio**i) <= 0.5 + 1e-9


def test_log_spaced_rejects_impossible_grids():
    with pytest.raises(ConfigError, match="distinct"):
        log_spaced(10, 12, 4)
    with pytest.raises(ConfigError, match="first <= last"):
        log_spaced(0, 12, 2)


def test_checkpoint_steps():
    assert checkpoint_steps(1000, 0) == []
    assert checkpoint_steps(1000, 1) == [0]
    assert checkpoint_steps(1000, 2) == [0, 1000]
    assert checkpoint_steps(1000, 5) == [0, 1, 10, 100, 1000]
    assert checkpoint_steps(3, 10) == [0, 1, 2, 3]  # more checkpoints than steps: every step
