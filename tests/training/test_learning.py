"""End to end on the default synthetic task (SCIENCE §6.1): both features learned, curriculum."""

from __future__ import annotations

import pytest
import torch

from featurebias.datasets import synthetic_task
from featurebias.models import mlp
from featurebias.training import TrainConfig, train


@pytest.fixture(scope="module")
def task():
    return synthetic_task()  # easy = majority of 3 bits, hard = parity of 4, D = 16


def test_small_mlp_learns_every_feature_above_95_percent(task):
    cfg = TrainConfig(steps=600, lr=3e-3, eval_every=200, feature_names=task.feature_names)
    result = train(mlp(16, (64, 64), 2, seed=0), task.train, cfg, task.test, progress=False)
    final = result.curves.query("split == 'val' and step == 600").set_index("feature")
    assert (final.loc[["easy", "hard"], "accuracy"] > 0.95).all()
    # independently: threshold the logits of the trained model on the test split
    x, y = task.test
    with torch.no_grad():
        predicted = (result.model(x) > 0).long()
    accuracy = (predicted == y).double().mean(0)
    assert accuracy.tolist() == pytest.approx(final.loc[["easy", "hard"], "accuracy"].tolist())
    # the easy feature is learned first
    early = result.curves.query("split == 'val' and step == 200").set_index("feature")
    assert early.loc["easy", "accuracy"] > 0.95 > early.loc["hard", "accuracy"]


def test_curriculum_from_the_task(task):
    late = synthetic_task(curriculum={"easy": 300})
    cfg = TrainConfig(steps=600, lr=3e-3, eval_every=300, feature_names=late.feature_names,
                      loss_start=late.info["loss_start"])
    result = train(mlp(16, (64, 64), 2, seed=0), late.train, cfg, late.test, progress=False)
    val = result.curves.query("split == 'val'").pivot(index="step", columns="feature",
                                                      values="accuracy")
    # the easy head is untrained for 300 steps, then learned quickly
    assert val.loc[300, "easy"] < 0.9 and val.loc[600, "easy"] > 0.95
