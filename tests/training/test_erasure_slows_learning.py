"""Paper 1's central effect on digits: after LEACE a linear model learns nothing beyond the
prior, and an MLP learns more slowly (a longer prequential code) than on the original data."""

from __future__ import annotations

import pytest
import torch

from featurebias.datasets import digits, erase_dataset
from featurebias.models import mlp
from featurebias.training import TrainConfig, prequential_mdl, train


@pytest.fixture(scope="module")
def data():
    task = digits(flat=True, seed=0)
    return task, erase_dataset(task, "leace"), erase_dataset(task, "control")


def _test_accuracy(model, pair) -> float:
    with torch.no_grad():
        return float((model(pair[0]).argmax(1) == pair[1]).double().mean())


def test_a_linear_model_on_leace_erased_digits_is_no_better_than_the_prior(data):
    task, leace, control = data
    config = TrainConfig(steps=600, batch_size=64, lr=1e-2, eval_every=600, seed=0)
    prior = float(torch.bincount(task.train[1]).max()) / len(task.train[1])
    accuracy = {}
    for name, erased in (("leace", leace), ("control", control)):
        model = torch.nn.Linear(64, 10, dtype=torch.float32)
        train(model, erased.train, config, progress=False)
        accuracy[name] = _test_accuracy(model, erased.test)
    assert accuracy["control"] > 0.9
    assert accuracy["leace"] < prior + 0.05


def test_leace_lengthens_an_mlps_prequential_code(data):
    _, leace, control = data
    config = TrainConfig(steps=300, batch_size=64, lr=3e-3, eval_every=100, seed=0)
    bits = {}
    for name, erased in (("leace", leace), ("control", control)):
        x, y = erased.train
        bits[name] = prequential_mdl(lambda: mlp(64, (64,), 10, seed=0), x, y, num_chunks=5,
                                     config=config, seed=0, progress=False).bits_per_sample
    assert bits["leace"] > bits["control"] + 0.3
