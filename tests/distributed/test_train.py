"""`train` under two gloo ranks (DDP) follows the one-process run with the same global batch."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from featurebias.training import TrainConfig, train

from . import _data, _workers


@pytest.fixture(scope="module")
def single():
    x, y = _data.classification()
    mlp = _data.tiny_mlp()
    config = TrainConfig(steps=_workers.TRAIN_STEPS, batch_size=32, lr=0.05, eval_every=4,
                         seed=3)
    mlp_curves = train(mlp, (x[:64], y[:64]), config, val=(x[64:], y[64:]),
                       progress=False).curves
    seq = _data.TokenModel()
    config = TrainConfig(steps=8, batch_size=16, optimizer="sgd", lr=0.5, eval_every=4)
    seq_curves = train(seq, _data.sequences(), config, progress=False).curves
    return {"mlp": (mlp.state_dict(), mlp_curves), "sequence": (seq.state_dict(), seq_curves)}


@pytest.mark.parametrize("model", ["mlp", "sequence"])
def test_two_rank_training_ends_at_the_one_process_parameters(ranks, single, model):
    state, _ = single[model]
    trained = [r["train"][model]["state"] for r in ranks[:2]]
    for name, value in state.items():
        for got in trained:
            assert torch.allclose(got[name], value, rtol=0, atol=1e-6), name
        assert torch.equal(trained[0][name], trained[1][name])  # DDP keeps ranks in step
    # The run moved the parameters: the comparison is not between two initial states.
    initial = (_data.tiny_mlp() if model == "mlp" else _data.TokenModel()).state_dict()
    assert max(float((state[k] - initial[k]).abs().max()) for k in state) > 1e-2


@pytest.mark.parametrize("model", ["mlp", "sequence"])
def test_two_rank_curves_equal_one_process_and_each_other(ranks, single, model):
    _, curves = single[model]
    for r in ranks[:2]:
        got = r["train"][model]["curves"]
        pd.testing.assert_frame_equal(got, curves, rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(ranks[0]["train"][model]["curves"],
                                  ranks[1]["train"][model]["curves"], check_exact=True)
    assert set(curves["split"]) == ({"train", "val"} if model == "mlp" else {"train"})


def test_the_model_comes_back_unwrapped_and_uneven_batches_are_refused(ranks):
    for r in ranks[:2]:
        assert r["train"]["mlp"]["wrapped"] == "Sequential"
        assert "does not split evenly over 2 ranks" in r["train"]["odd_batch"]
        assert r["train"]["odd_batch"].startswith("ConfigError")
    assert "train" not in ranks[2]  # left before training: a 2-process run
