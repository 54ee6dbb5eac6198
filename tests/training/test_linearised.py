"""Linearised: f_lin and its gradient against explicit Jacobians, first-order accuracy, BatchNorm
and unsupported ops, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from featurebias import models
from featurebias.errors import ConfigError, FeatureBiasError
from featurebias.training import Linearised, empirical_ntk

F64 = torch.float64


def tiny(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A float64 toolkit model and a small input batch for it."""
    g = torch.Generator().manual_seed(0)
    if name == "mlp_tanh":
        return models.mlp(4, (6, 5), 3, activation="tanh", seed=1).double(), \
            torch.randn(5, 4, generator=g, dtype=F64)
    if name == "mlp_relu":
        return models.mlp(4, (6, 5), 3, seed=1).double(), torch.randn(5, 4, generator=g, dtype=F64)
    if name == "resmlp":
        return models.resmlp(4, 6, 1, 3, seed=1).double(), torch.randn(5, 4, generator=g, dtype=F64)
    if name == "small_cnn":
        return models.small_cnn(2, 3, width=3, depth=2, image_size=4, seed=1).double(), \
            torch.rand(4, 2, 4, 4, generator=g, dtype=F64)
    if name == "lenet":
        return models.lenet(1, 3, image_size=4, seed=1).double(), \
            torch.rand(3, 1, 4, 4, generator=g, dtype=F64)
    if name == "small_resnet":
        return models.small_resnet(1, 3, width=4, blocks=1, image_size=4, seed=1).double(), \
            torch.rand(3, 1, 4, 4, generator=g, dtype=F64)
    raise KeyError(name)


def move(model: nn.Module, scale: float, seed: int = 0) -> list[torch.Tensor]:
    """Add `scale`·(a fixed random direction) to every parameter; returns the direction."""
    g = torch.Generator().manual_seed(seed)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in model.parameters()]
    with torch.no_grad():
        for p, d in zip(model.parameters(), direction, strict=True):
            p.add_(scale * d)
    return direction


def flat_jacobian(model: nn.Module, params: dict[str, torch.Tensor], x) -> torch.Tensor:
    """`∂f/∂θ` `[b·o, P]` at `params`, explicitly, with torch.autograd.functional.jacobian."""
    names = list(params)

    def f(*theta):
        return functional_call(model, dict(zip(names, theta, strict=True)), (x,))

    jac = torch.autograd.functional.jacobian(f, tuple(params.values()))
    out = f(*params.values())
    return torch.cat([j.reshape(out.numel(), -1) for j in jac], 1)


MODELS = ["mlp_tanh", "mlp_relu", "resmlp", "small_cnn", "lenet", "small_resnet"]


@pytest.mark.parametrize("name", MODELS)
def test_value_and_gradient_match_explicit_jacobian(name):
    net, x = tiny(name)
    lin = Linearised(net)
    anchor = {k: v.detach().clone() for k, v in net.named_parameters()}
    f0 = net(x).detach()
    move(net, 0.05)
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    delta = theta - torch.cat([v.reshape(-1) for v in anchor.values()])
    jac = flat_jacobian(net, anchor, x)  # at θ_lin, not at θ
    out = lin(x)
    torch.testing.assert_close(out, f0 + (jac @ delta).reshape(f0.shape), atol=1e-10, rtol=0)
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    out.backward(cotangent)
    grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(grad, jac.T @ cotangent.reshape(-1), atol=1e-10, rtol=0)
    assert not torch.allclose(lin(x), net(x))  # θ moved: f_lin is not f


class Tied(nn.Module):
    """Two layers sharing one weight matrix (as tied embeddings do)."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.first = nn.Linear(3, 3, dtype=F64)
            self.second = nn.Linear(3, 3, dtype=F64)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def test_tied_weights_are_one_parameter():
    net, x = Tied(), torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    lin = Linearised(net)
    anchor = {k: v.detach().clone() for k, v in net.named_parameters()}
    assert "second.weight" not in anchor  # deduplicated: one direction of θ
    move(net, 0.1)
    assert torch.equal(net.first.weight, net.second.weight)
    delta = torch.cat([(p - anchor[k]).detach().reshape(-1) for k, p in net.named_parameters()])
    jac = flat_jacobian(net, anchor, x)  # functional_call ties second.weight to first.weight
    f0 = functional_call(net, anchor, (x,)).detach().reshape(-1)
    out = lin(x)
    torch.testing.assert_close(out.detach().reshape(-1), f0 + jac @ delta, atol=1e-12, rtol=0)
    out.sum().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(grad, jac.T @ torch.ones(jac.shape[0], dtype=F64), atol=1e-12,
                               rtol=0)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_linearisation_error_is_second_order(activation):
    net = models.mlp(4, (8, 8), 3, activation=activation, seed=2).double()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    lin = Linearised(net)
    scales = np.logspace(-5, -2.5, 6)  # small enough that no ReLU flips
    errors, previous = [], 0.0
    for s in scales:  # move θ to θ_lin + s·u along one fixed direction u
        move(net, s - previous, seed=5)
        previous = s
        with torch.no_grad():
            errors.append(float((net(x) - lin(x)).norm()))
    slope = np.polyfit(np.log(scales), np.log(errors), 1)[0]
    assert abs(slope - 2) < 0.15, (slope, errors)


def test_f_lin_is_affine_in_theta():
    net, x = tiny("mlp_tanh")
    lin = Linearised(net)
    with torch.no_grad():
        f0 = lin(x)
        move(net, 0.3)
        step = lin(x) - f0
        move(net, 0.3)  # twice as far along the same direction
        torch.testing.assert_close(lin(x) - f0, 2 * step, atol=1e-12, rtol=0)
        assert not torch.allclose(net(x) - f0, 2 * (step), atol=1e-6)  # f itself is not


def test_relinearise_moves_anchor_and_counts():
    net, x = tiny("mlp_tanh")
    lin = Linearised(net)
    assert lin.relinearisations == 0 and lin.gap(x) == 0
    move(net, 0.2)
    assert lin.gap(x) > 1e-4
    assert lin.relinearise() is lin and lin.relinearisations == 1
    assert lin.gap(x) < 1e-12
    torch.testing.assert_close(lin(x), net(x), atol=1e-12, rtol=0)
    for name, value in lin.anchor_params().items():
        torch.testing.assert_close(value, dict(net.named_parameters())[name], atol=0, rtol=0)
    # The anchor and the count are buffers: a state dict restores them with θ.
    state = copy.deepcopy(lin.state_dict())
    move(net, 0.2)
    lin.relinearise()
    lin.load_state_dict(state)
    assert lin.relinearisations == 1 and lin.gap(x) < 1e-12


def test_trainable_parameters_are_the_wrapped_models():
    net, _ = tiny("small_cnn")
    net.head.bias.requires_grad_(False)  # frozen: a constant of f, not linearised
    lin = Linearised(net)
    assert [id(p) for p in lin.parameters()] == [id(p) for p in net.parameters()]
    assert "head.bias" not in lin.anchor_params()
    assert len(lin.anchor_params()) == sum(p.requires_grad for p in net.parameters())


class BatchNormNet(nn.Module):
    def __init__(self, dropout: bool = False):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.fc = nn.Linear(3, 4, dtype=F64)
            self.norm = nn.BatchNorm1d(4, dtype=F64)
            self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
            self.head = nn.Linear(4, 2, dtype=F64)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.norm(self.fc(x)))))


@pytest.mark.parametrize("dropout", [False, True])
def test_train_mode_layers_raise_or_run_in_eval_mode(dropout):
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    net = BatchNormNet(dropout)
    with pytest.raises(ConfigError, match="BatchNorm1d.*training mode.*train_mode='eval'"):
        Linearised(net)(x)
    net.eval()
    expected = Linearised(net)(x)  # eval mode: fine
    net.train()
    stats = net.norm.running_mean.clone()
    lin = Linearised(net, train_mode="eval")
    torch.testing.assert_close(lin(x), expected, atol=0, rtol=0)
    torch.testing.assert_close(net.norm.running_mean, stats, atol=0, rtol=0)  # not updated
    assert net.norm.training and net.training  # modes restored


class OldStyleRelu(torch.autograd.Function):
    """An autograd.Function without setup_context: torch.func cannot transform it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2, dtype=F64)

    def forward(self, x):
        return OldStyleRelu.apply(self.fc(x))


def test_unsupported_op_is_a_config_error():
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ConfigError, match="torch.func cannot.*setup_context"):
        Linearised(Unsupported())(x)
    with pytest.raises(ConfigError, match="torch.func cannot"):
        empirical_ntk(Unsupported(), x)


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2).requires_grad_(False)

    def forward(self, x):
        return self.fc(x)


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x), x


@pytest.mark.parametrize(("build", "match"), [
    (lambda: Linearised("not a model"), "torch.nn.Module, got str"),
    (lambda: Linearised(Frozen()), "no parameter that requires grad"),
    (lambda: Linearised(Linearised(nn.Linear(2, 2))), "already Linearised"),
    (lambda: Linearised(nn.Linear(2, 2), train_mode="train"), "train_mode must be one of"),
    (lambda: Linearised(TupleOut())(torch.zeros(2, 3)), "return one tensor, got tuple"),
])
def test_bad_input(build, match):
    with pytest.raises(FeatureBiasError, match=match):
        build()
