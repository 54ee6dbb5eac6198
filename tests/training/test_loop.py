"""`train`: determinism, dtypes, schedules, early stopping, checkpoints, transforms, callbacks."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from featurebias.errors import ConfigError
from featurebias.models import mlp
from featurebias.training import TrainConfig, TrainResult, checkpoint_steps, learning_rate, train

from .helpers import blobs, linear


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder:
    """A callback keeping every state's step, loss, lr and a copy of the parameters."""

    def __init__(self):
        self.steps, self.losses, self.lrs, self.params = [], [], [], []

    def __call__(self, state):
        self.steps.append(state.step)
        self.losses.append(state.loss)
        self.lrs.append(state.optimizer.param_groups[0]["lr"])
        self.params.append(params(state.model))


def dropout_mlp(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def test_same_seed_same_run_and_caller_rng_untouched():
    data, val = blobs(300, seed=0), blobs(100, seed=1)
    cfg = TrainConfig(steps=40, batch_size=32, eval_every=10, seed=3)
    rng = torch.random.get_rng_state()
    runs = [train(dropout_mlp(), data, cfg, val, progress=False) for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), rng)
    pd.testing.assert_frame_equal(runs[0].curves, runs[1].curves)
    assert same(params(runs[0].model), params(runs[1].model))
    other = train(dropout_mlp(), data, TrainConfig(steps=40, batch_size=32, eval_every=10,
                                                   seed=4), val, progress=False)
    assert not same(params(other.model), params(runs[0].model))
    assert not other.curves["loss"].equals(runs[0].curves["loss"])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_float64_matches_a_hand_written_loop(optimizer):
    """The documented batch order (seeded permutation per epoch, last partial batch dropped)
    and loss, replayed by a plain PyTorch loop, give the same parameters."""
    x, y = blobs(70, seed=2)
    cfg = TrainConfig(steps=12, batch_size=16, optimizer=optimizer, lr=0.05, seed=5,
                      momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=0.01)
    ours = train(linear(4, 3, dtype=torch.float64), (x, y), cfg, progress=False).model
    assert ours.weight.dtype == torch.float64

    model = linear(4, 3, dtype=torch.float64)
    opt = (torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
           if optimizer == "sgd" else torch.optim.AdamW(model.parameters(), lr=0.05,
                                                        weight_decay=0.01))
    g = torch.Generator().manual_seed(5)
    batches = []
    while len(batches) < 12:
        order = torch.randperm(70, generator=g)
        batches += [order[i * 16:(i + 1) * 16] for i in range(70 // 16)]
    for index in batches[:12]:
        loss = nn.functional.cross_entropy(model(x[index].double()), y[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(ours.weight, model.weight, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.bias, model.bias, rtol=0, atol=1e-12)


def test_cosine_schedule_and_constant():
    data = blobs(64)
    rec = Recorder()
    train(linear(4, 3), data, TrainConfig(steps=50, lr=0.1, schedule="cosine"),
          callbacks=[rec], progress=False)
    lrs = rec.lrs[1:]  # the lr each update used
    assert lrs[0] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] < 1e-3 * 0.1  # ends near 0
    cfg = TrainConfig(steps=50, lr=0.1, schedule="cosine")
    assert lrs == pytest.approx([learning_rate(cfg, s) for s in range(50)])
    rec = Recorder()
    train(linear(4, 3), data, TrainConfig(steps=10, lr=0.1), callbacks=[rec], progress=False)
    assert set(rec.lrs) == {0.1}


def test_early_stopping_restores_the_best_parameters():
    # Validation labels are the training labels permuted: fitting the training set makes the
    # validation loss rise after a while.
    x, y = blobs(200, seed=3)
    val = (x[:100], (y[:100] + 1) % 3)
    rec = Recorder()
    cfg = TrainConfig(steps=400, batch_size=32, lr=0.05, eval_every=5, patience=3)
    result = train(linear(4, 3), (x, y), cfg, val, callbacks=[rec], progress=False)
    curve = result.curves.query("split == 'val' and feature == 'all'")
    assert result.stopped_early and result.steps < 400
    assert result.best_step == int(curve.loc[curve["loss"].idxmin(), "step"])
    assert result.steps == result.best_step + 3 * 5  # three evaluations without improvement
    assert curve["step"].max() == result.steps
    assert same(params(result.model), rec.params[result.best_step])
    assert not same(params(result.model), rec.params[result.steps])


def test_no_early_stopping_without_patience():
    x, y = blobs(200, seed=3)
    result = train(linear(4, 3), (x, y), TrainConfig(steps=60, eval_every=20),
                   (x[:50], (y[:50] + 1) % 3), progress=False)
    assert result.steps == 60 and not result.stopped_early
    assert set(result.curves["step"]) == {0, 20, 40, 60}


def test_checkpoints_at_log_spaced_steps_and_model_at():
    rec = Recorder()
    result = train(linear(4, 3), blobs(64), TrainConfig(steps=100, lr=0.1, checkpoints=5),
                   callbacks=[rec], progress=False)
    # step 0, then four steps log-spaced in [1, 100]: 100^(i/3) rounded
    assert list(result.checkpoints) == checkpoint_steps(100, 5) == [0, 1, 5, 22, 100]
    for step, state in result.checkpoints.items():
        assert all(v.device.type == "cpu" for v in state.values())
        assert same(state, rec.params[step])
    before = params(result.model)
    early = result.model_at(22)
    assert early is not result.model and same(params(early), rec.params[22])
    assert same(params(result.model), before)
    with torch.no_grad():
        result.model.weight.add_(1.0)  # the checkpoints are copies, not views
    assert same(result.checkpoints[100], rec.params[100])
    with pytest.raises(ConfigError, match=r"no checkpoint at step 50.*\[0, 1, 5, 22, 100\]"):
        result.model_at(50)


def test_transform_is_applied_to_training_batches_only():
    x, y = blobs(96, seed=4)
    x[:, 0] = x[:, 0].abs() + 1  # training rows have a positive first input ...
    vx, vy = blobs(37, seed=5)
    vx[:, 0] = -vx[:, 0].abs() - 1  # ... validation rows a negative one
    seen = []

    def transform(xb, yb):
        seen.append(xb.clone())
        return xb * 0, yb  # the model sees nothing: it cannot learn

    result = train(linear(4, 3), (x, y), TrainConfig(steps=9, batch_size=32, eval_every=3),
                   (vx, vy), transform=transform, progress=False)
    assert len(seen) == 9 and all(b.shape == (32, 4) for b in seen)
    assert all(bool((b[:, 0] > 0).all()) for b in seen)
    # validation sees its own inputs, untransformed
    val0 = result.curves.query("split == 'val' and step == 0")["loss"].item()
    with torch.no_grad():
        direct = nn.functional.cross_entropy(linear(4, 3)(vx), vy).item()
    assert val0 == pytest.approx(direct, rel=1e-5)


def test_callbacks_see_every_step_and_the_training_loss():
    rec = Recorder()
    states = []
    cfg = TrainConfig(steps=15, batch_size=16, eval_every=1)
    model = linear(4, 3)
    result = train(model, blobs(64), cfg, callbacks=[rec, states.append], progress=False)
    assert rec.steps == list(range(16))
    assert math.isnan(rec.losses[0]) and all(math.isfinite(v) for v in rec.losses[1:])
    assert all(s.model is model and s.config is cfg for s in states)
    assert all(isinstance(s.optimizer, torch.optim.AdamW) for s in states)
    # with one batch per evaluation, the train row of step s is the loss of update s, and
    # step 0's row is the first batch at the initial parameters (the loss of update 1)
    train_loss = result.curves.query("split == 'train'").set_index("step")["loss"]
    assert train_loss.loc[1:].to_list() == pytest.approx(rec.losses[1:], rel=1e-6)
    assert train_loss.loc[0] == pytest.approx(rec.losses[1], rel=1e-6)
    assert result.best_step == 15 and result.steps == 15


def test_single_label_curves_match_sklearn_metrics():
    from sklearn.metrics import accuracy_score, log_loss

    data, (vx, vy) = blobs(200, seed=6), blobs(150, seed=7)
    result = train(mlp(4, (16,), 3, seed=1), data, TrainConfig(steps=30, eval_every=10),
                   (vx, vy), progress=False)
    curves = result.curves
    assert list(curves.columns) == ["step", "split", "feature", "loss", "accuracy"]
    assert set(curves["feature"]) == {"all"} and list(curves["step"].unique()) == [0, 10, 20, 30]
    assert list(curves["split"][:2]) == ["train", "val"]
    with torch.no_grad():
        proba = torch.softmax(result.model(vx).double(), 1).numpy()
    last = curves.query("split == 'val' and step == 30").iloc[0]
    assert last["loss"] == pytest.approx(log_loss(vy.numpy(), proba, labels=[0, 1, 2]), rel=1e-5)
    assert last["accuracy"] == pytest.approx(accuracy_score(vy.numpy(), proba.argmax(1)))


@pytest.mark.parametrize("as_dataset", ["data", "val", "both"])
def test_dataset_inputs(as_dataset):
    data, val = blobs(120, seed=8), blobs(50, seed=9)
    cfg = TrainConfig(steps=12, batch_size=16, eval_every=4)
    wrap = {"data": (TensorDataset(*data), val), "val": (data, TensorDataset(*val)),
            "both": (TensorDataset(*data), TensorDataset(*val))}[as_dataset]
    runs = [train(linear(4, 3), wrap[0], cfg, wrap[1], progress=False) for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].curves, runs[1].curves)
    if as_dataset == "val":  # the same training batches: the same curves as tensor pairs
        plain = train(linear(4, 3), data, cfg, val, progress=False)
        pd.testing.assert_frame_equal(plain.curves, runs[0].curves, check_exact=False, rtol=1e-6)
    assert runs[0].curves["loss"].notna().all()


def test_model_mode_restored_and_result_type():
    model = linear(4, 3).eval()
    result = train(model, blobs(32), TrainConfig(steps=2), progress=False)
    assert isinstance(result, TrainResult) and result.model is model and not model.training
