"""LinearisedTrainer: K = 1 is SGD, K = ∞ keeps the kernel, feature-update counts, optimiser
reset, the NTK dynamics of the linearised model, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featurebias import models
from featurebias.errors import ConfigError, ShapeError
from featurebias.training import (
    KernelLogger,
    Linearised,
    LinearisedTrainer,
    TrainConfig,
    empirical_ntk,
    train,
)

F64 = torch.float64


def task(n: int = 48, d: int = 5, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, k, (n,), generator=g)


def net(seed: int = 1) -> nn.Module:
    return models.mlp(5, (8, 8), 3, activation="tanh", seed=seed).double()


def sgd(steps: int, batch_size: int = 48, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, optimizer="sgd", lr=0.2,
                       eval_every=10, **kw)


def max_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).detach().abs().max())
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(("build", "d", "momentum"), [
    (net, 5, 0.0), (net, 5, 0.9),  # flat 1×4×4 images for the CNN:
    (lambda: models.small_cnn(1, 3, width=3, depth=1, image_size=4, seed=1).double(), 16, 0.0),
])
def test_every_step_equals_standard_training(build, d, momentum):
    x, y = task(40, d)
    cfg = sgd(50, batch_size=8, momentum=momentum)
    plain = train(build(), (x, y), cfg, progress=False)
    lin = LinearisedTrainer(1).train(build(), (x, y), cfg, progress=False)
    assert isinstance(lin.model, Linearised)
    assert max_diff(plain.model, lin.model.model) < 1e-6
    assert lin.model.relinearisations == 49  # after steps 1..49, not after the last
    # The curves were measured on f_lin, which equals f at every step's start when K = 1.
    torch.testing.assert_close(torch.tensor(lin.curves["loss"].to_numpy()),
                               torch.tensor(plain.curves["loss"].to_numpy()), atol=1e-6, rtol=0)


def test_every_step_equals_a_hand_written_sgd_loop():
    x, y = task()
    model = net()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), lr=0.2)
    for _ in range(50):  # full batches: the batch order cannot matter
        opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        opt.step()
    result = LinearisedTrainer(1).train(model, (x, y), sgd(50), progress=False)
    assert max_diff(reference, result.model.model) < 1e-6
    # A hand-written linearised loop without `train`, too.
    model = net()
    lin = Linearised(model)
    opt = torch.optim.SGD(lin.parameters(), lr=0.2)
    for step in range(50):
        if step:
            lin.relinearise()
        opt.zero_grad()
        F.cross_entropy(lin(x), y).backward()
        opt.step()
    assert max_diff(reference, model) < 1e-6


@pytest.mark.parametrize(("steps", "every", "expected"), [(20, 5, 3), (22, 5, 4), (20, 1, 19),
                                                          (20, 30, 0), (20, None, 0)])
def test_feature_update_count(steps, every, expected):
    x, y = task()
    seen = {}

    def record(state):
        seen[state.step] = state.model.relinearisations

    result = LinearisedTrainer(every).train(net(), (x, y), sgd(steps), callbacks=[record],
                                            progress=False)
    assert result.model.relinearisations == expected
    assert expected + 1 == (math.ceil(steps / every) if every else 1)  # U = ⌈T/K⌉ updates
    # Updates happen after steps K, 2K, ...: the count seen at step s is ⌊s/K⌋ (< T).
    for step, count in seen.items():
        assert count == (min(step, steps - 1) // every if every else 0)


def test_gap_is_logged_before_each_feature_update():
    x, y = task()
    trainer = LinearisedTrainer(5, gap_probe=x[:10])
    result = trainer.train(net(), (x, y), sgd(20), progress=False)
    gaps = trainer.gaps
    assert gaps["step"].tolist() == [5, 10, 15, 20]
    assert gaps["relinearisations"].tolist() == [0, 1, 2, 3]
    assert (gaps["gap"] > 0).all()
    assert gaps["gap"].iloc[-1] == result.model.gap(x[:10])  # after the last step, as trained
    # Moving further from θ_lin leaves a larger gap: never re-linearising, after 20 steps.
    lazy = LinearisedTrainer(None, gap_probe=x[:10])
    lazy.train(net(), (x, y), sgd(20), progress=False)
    assert lazy.gaps["step"].tolist() == [20]
    assert lazy.gaps["gap"].iloc[0] > 2 * gaps["gap"].max()
    with pytest.raises(ShapeError, match="gap_probe must be a batch"):
        LinearisedTrainer(5, gap_probe=torch.ones(0, 5))


def test_infinite_every_keeps_the_initial_kernel_while_parameters_move():
    x, y = task()
    model = net()
    start = copy.deepcopy(model)
    logger = KernelLogger(x[:12], every=10, mode="jacobian")
    result = LinearisedTrainer(math.inf).train(model, (x, y), sgd(60), callbacks=[logger],
                                               progress=False)
    assert max_diff(start, result.model.model) > 0.05  # θ moved ...
    frame = logger.frame
    assert frame["step"].tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert frame["kernel_distance"].max() < 1e-10  # ... the kernel did not
    assert (frame["relinearisations"] == 0).all()
    # The same run with feature learning changes the kernel.
    moving = KernelLogger(x[:12], every=60, mode="jacobian")
    LinearisedTrainer(1).train(net(), (x, y), sgd(60), callbacks=[moving], progress=False)
    assert moving.frame["kernel_distance"].iloc[-1] > 1e-4


def test_linearised_gradient_descent_follows_the_initial_ntk():
    """K = ∞, full-batch GD on ½‖f − y‖²: `f_{t+1} = f_t − η Θ₀ (f_t − y)` exactly."""
    x, _ = task(10)
    target = torch.randn(10, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    lin = Linearised(net())
    theta0 = empirical_ntk(lin, x, per_logit="full").permute(0, 2, 1, 3).reshape(30, 30)
    opt = torch.optim.SGD(lin.parameters(), lr=0.05)
    f = lin(x).detach().reshape(-1)
    for _ in range(5):
        opt.zero_grad()
        (0.5 * (lin(x) - target).square().sum()).backward()
        opt.step()
        f = f - 0.05 * theta0 @ (f - target.reshape(-1))
        torch.testing.assert_close(lin(x).detach().reshape(-1), f, atol=1e-10, rtol=0)


def test_reset_optimizer_restarts_adam_at_every_feature_update():
    x, y = task()
    cfg = TrainConfig(steps=12, batch_size=48, optimizer="adam", lr=0.01, eval_every=4)
    sizes = {}

    def record(state):
        sizes[state.step] = len(state.optimizer.state)

    fresh = LinearisedTrainer(1, reset_optimizer=True).train(net(), (x, y), cfg,
                                                            callbacks=[record], progress=False)
    assert all(sizes[s] == 0 for s in range(1, 12)) and sizes[12] > 0
    # Every step is then Adam's first step: θ ← θ − lr·g/(|g| + ε) with the full-batch g.
    model = net()
    for _ in range(12):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad / (p.grad.abs() + 1e-8)
    assert max_diff(model, fresh.model.model) < 1e-10
    kept = LinearisedTrainer(1).train(net(), (x, y), cfg, progress=False)
    assert max_diff(kept.model.model, fresh.model.model) > 1e-4  # Adam's moments mattered
    # SGD without momentum keeps no state: resetting changes nothing.
    a = LinearisedTrainer(3, reset_optimizer=True).train(net(), (x, y), sgd(12), progress=False)
    b = LinearisedTrainer(3).train(net(), (x, y), sgd(12), progress=False)
    assert max_diff(a.model, b.model) == 0


def test_checkpoints_restore_the_linearisation_point():
    x, y = task()
    cfg = sgd(16, checkpoints=4)
    result = LinearisedTrainer(4).train(net(), (x, y), cfg, progress=False)
    for step in result.checkpoints:
        past = result.model_at(step)
        assert isinstance(past, Linearised)
        assert past.relinearisations == max(0, min(step, 15) // 4)
    final = result.model_at(16)
    torch.testing.assert_close(final(x), result.model(x), atol=0, rtol=0)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 6, dtype=F64)
        self.norm = nn.BatchNorm1d(6, dtype=F64)
        self.head = nn.Linear(6, 3, dtype=F64)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.fc(x))))


def test_batchnorm_is_refused_before_training_or_frozen_on_request():
    x, y = task()
    model = WithBatchNorm()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match="BatchNorm1d.*train_mode='eval'"):
        LinearisedTrainer(2).train(model, (x, y), sgd(5), progress=False)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    result = LinearisedTrainer(2, train_mode="eval").train(model, (x, y), sgd(5),
                                                           progress=False)
    assert torch.equal(result.model.model.norm.running_var, before["norm.running_var"])
    assert not torch.equal(result.model.model.fc.weight, before["fc.weight"])


@pytest.mark.parametrize("every", [0, -3, 1.5, "4", True, float("nan"), -math.inf])
def test_bad_every(every):
    with pytest.raises(ConfigError, match="every must be an integer >= 1"):
        LinearisedTrainer(every)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"reset_optimizer": 1}, "reset_optimizer must be a bool"),
    ({"train_mode": "frozen"}, "train_mode must be one of"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LinearisedTrainer(2, **kwargs)


def test_non_module_model():
    with pytest.raises(ConfigError, match="torch.nn.Module, got function"):
        LinearisedTrainer(2).train(lambda x: x, task(), sgd(3), progress=False)


def test_every_step_equals_standard_training_on_a_transformer_bridge():
    def build():
        return models.tiny_transformer(d_model=8, n_layers=1, n_heads=2, d_vocab=5, n_ctx=4,
                                       seed=0).double()

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 5, (16, 4), generator=g)
    targets = tokens.roll(-1, 1)  # next token; the last position predicts nothing
    targets[:, -1] = -100
    cfg = sgd(10, batch_size=8)
    plain = train(build(), (tokens, targets), cfg, progress=False)
    model = build()
    lin = LinearisedTrainer(1).train(model, (tokens, targets), cfg, progress=False)
    assert max_diff(plain.model, lin.model.model) < 1e-6
    assert max_diff(build(), model) > 1e-3  # the optimiser moved the model's own parameters
