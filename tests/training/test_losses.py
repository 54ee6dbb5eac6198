"""The loss rule: binary and softmax heads, sequence targets with -100, the curriculum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss
from torch import nn

from featurebias.training import TrainConfig, train
from featurebias.training import losses as L

from .helpers import TokenModel, linear, sequence_task


def mixed_task(n: int, seed: int = 0):
    """y[:, 0] binary, y[:, 1] in {0, 1, 2}, y[:, 2] binary; linear in x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    middle = torch.bucketize(x[:, 1].contiguous(), torch.tensor([-0.4, 0.4]))
    y = torch.stack([(x[:, 0] > 0).long(), middle, (x[:, 2] + x[:, 3] > 0).long()], 1)
    return x, y


def test_heads_match_sklearn_per_feature():
    data, (vx, vy) = mixed_task(300), mixed_task(200, seed=1)
    cfg = TrainConfig(steps=40, lr=0.05, eval_every=20, heads=(1, 3, 1),
                      feature_names=("a", "b", "c"))
    result = train(linear(5, 5), data, cfg, (vx, vy), progress=False)
    final = result.curves.query("split == 'val' and step == 40").set_index("feature")
    assert list(final.index) == ["all", "a", "b", "c"]
    with torch.no_grad():
        out = result.model(vx).double()
    heads = {"a": torch.sigmoid(out[:, 0]), "b": torch.softmax(out[:, 1:4], 1),
             "c": torch.sigmoid(out[:, 4])}
    for j, (name, p) in enumerate(heads.items()):
        p = p.numpy()
        proba = np.stack([1 - p, p], 1) if p.ndim == 1 else p
        truth = vy[:, j].numpy()
        assert final.loc[name, "loss"] == pytest.approx(
            log_loss(truth, proba, labels=range(proba.shape[1])), rel=1e-5)
        assert final.loc[name, "accuracy"] == pytest.approx(
            accuracy_score(truth, proba.argmax(1)))
    assert final.loc["all", "loss"] == pytest.approx(final.loc[["a", "b", "c"], "loss"].sum())
    assert final.loc["all", "accuracy"] == pytest.approx(final.loc[["a", "b", "c"],
                                                                   "accuracy"].mean())


def test_all_binary_path_equals_the_per_head_path():
    out = torch.randn(50, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (50, 3))
    fast = L.resolve(out, y)
    assert fast.all_binary
    # the same three binary heads plus a softmax head force the generic loop over heads
    wide = torch.cat([out, torch.randn(50, 2, dtype=out.dtype)], 1)
    y_wide = torch.cat([y, torch.randint(0, 2, (50, 1))], 1)
    slow = L.resolve(wide, y_wide, heads=(1, 1, 1, 2))
    assert not slow.all_binary
    loss_fast, correct_fast, _ = L.elementwise(fast, out, y)
    loss_slow, correct_slow, _ = L.elementwise(slow, wide, y_wide)
    torch.testing.assert_close(loss_fast, loss_slow[:, :3], rtol=0, atol=1e-12)
    assert torch.equal(correct_fast, correct_slow[:, :3])


def test_sequence_targets_ignore_minus_100():
    x, y = sequence_task(400)
    vx, vy = sequence_task(200, seed=1)
    result = train(TokenModel(3, 6), (x, y), TrainConfig(steps=40, lr=0.01, eval_every=20),
                   (vx, vy), progress=False)
    curves = result.curves
    assert set(curves["feature"]) == {"all", "position_3", "position_4"}
    final = curves.query("split == 'val' and step == 40").set_index("feature")
    with torch.no_grad():
        logp = torch.log_softmax(result.model(vx).double(), -1)
    for t in (3, 4):  # independent: plain log-softmax at the targeted positions
        nll = -logp[:, t].gather(1, vy[:, t, None]).mean().item()
        acc = (logp[:, t].argmax(1) == vy[:, t]).double().mean().item()
        assert final.loc[f"position_{t}", "loss"] == pytest.approx(nll, rel=1e-4, abs=1e-6)
        assert final.loc[f"position_{t}", "accuracy"] == pytest.approx(acc)
    assert (final.loc[["position_3", "position_4"], "accuracy"] > 0.95).all()
    # only the targeted positions matter: changing what the model predicts elsewhere does not
    # change the loss
    out = result.model(vx).detach()
    t = L.resolve(out, vy)
    noisy = out.clone()
    noisy[:, [0, 1, 2, 5]] = torch.randn_like(noisy[:, [0, 1, 2, 5]])
    torch.testing.assert_close(L.batch_stats(t, out, vy)[0], L.batch_stats(t, noisy, vy)[0])


def test_sequence_feature_names_and_loss_start_per_position():
    x, y = sequence_task(200)
    base = dict(steps=20, eval_every=10)
    by_feature = train(TokenModel(3, 6), (x, y), TrainConfig(
        **base, loss_start=(0, 10), feature_names=("first", "xor")), progress=False)
    by_position = train(TokenModel(3, 6), (x, y), TrainConfig(
        **base, loss_start=(5, 5, 5, 0, 10, 5), feature_names=("first", "xor")), progress=False)
    pd.testing.assert_frame_equal(by_feature.curves, by_position.curves)
    assert set(by_feature.curves["feature"]) == {"all", "first", "xor"}


def test_curriculum_freezes_a_head_until_its_start():
    x = torch.randn(128, 4)
    y = torch.stack([(x[:, 0] > 0).long(), (x[:, 1] > 0).long()], 1)
    states = []
    cfg = TrainConfig(steps=30, batch_size=32, lr=0.05, loss_start=(0, 12))
    train(linear(4, 2), (x, y), cfg,
          callbacks=[lambda s: states.append({k: v.clone() for k, v in
                                              s.model.state_dict().items()})], progress=False)
    w = torch.stack([s["weight"] for s in states])  # [steps + 1, 2, 4]
    b = torch.stack([s["bias"] for s in states])
    # head 1 (row 1) holds still through step 12 and moves from the update 12 → 13 on
    assert torch.equal(w[:13, 1], w[0, 1].expand(13, 4)) and torch.equal(b[:13, 1],
                                                                          b[0, 1].expand(13))
    assert not torch.equal(w[13, 1], w[12, 1])
    # head 0 trains from the first step
    assert not torch.equal(w[1, 0], w[0, 0])


def test_curriculum_reports_the_full_loss_and_weights_the_objective():
    x = torch.randn(64, 4)
    y = torch.stack([(x[:, 0] > 0).long(), (x[:, 1] > 0).long()], 1)
    losses = []
    result = train(linear(4, 2), (x, y), TrainConfig(steps=4, batch_size=64, eval_every=1,
                                                     loss_start=(0, 2)),
                   callbacks=[lambda s: losses.append(s.loss)], progress=False)
    rows = result.curves.query("split == 'train'").pivot(index="step", columns="feature",
                                                         values="loss")
    # before step 2 the objective is feature_0's loss only; the "all" row still sums both
    assert losses[1] == pytest.approx(rows.loc[1, "feature_0"], rel=1e-6)
    assert losses[2] == pytest.approx(rows.loc[2, "feature_0"], rel=1e-6)
    assert losses[3] == pytest.approx(rows.loc[3, "all"], rel=1e-6)
    assert rows.loc[1, "all"] == pytest.approx(rows.loc[1, ["feature_0", "feature_1"]].sum())


class Constant(nn.Module):
    """Fixed logits, so the loss can be checked by hand."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float64))

    def forward(self, x):
        return self.logits.expand(x.shape[0], *self.logits.shape)


def test_example_nats_by_hand():
    t = L.resolve(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long), heads=(1, 2))
    out = torch.tensor([[0.0, 0.0, 0.0], [2.0, 1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([[1, 0], [0, 1]])
    # row 0: BCE(0 logit) = ln 2, softmax of (0, 0) = ln 2; row 1: softplus(2) + (ln(e+e^-1)+1)
    expected = torch.tensor([2 * np.log(2), np.log1p(np.exp(2)) + np.log(np.e + np.exp(-1))
                             + 1], dtype=torch.float64)
    torch.testing.assert_close(L.example_nats(t, out, y), expected)


def test_uniform_logits_cost_log_k():
    model = Constant([0.0, 0.0, 0.0, 0.0])
    result = train(model, (torch.zeros(16, 2), torch.arange(16) % 4),
                   TrainConfig(steps=1, lr=1e-9), progress=False)
    assert result.curves.loc[0, "loss"] == pytest.approx(np.log(4), rel=1e-9)
