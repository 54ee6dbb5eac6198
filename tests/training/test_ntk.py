"""empirical_ntk: both recipes against an explicit J·Jᵀ, symmetry and PSD, chunking, the
Linearised kernel at θ_lin, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from featurebias import models
from featurebias.errors import ConfigError, DeviceError, NonFiniteError, ShapeError
from featurebias.training import Linearised, empirical_ntk, ntk

F64 = torch.float64
MODES = ["jacobian", "ntk_vp"]


def data(shape, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


NETS = {
    "mlp": (lambda: models.mlp(4, (6, 5), 3, activation="tanh", seed=1).double(), (4,)),
    "small_cnn": (lambda: models.small_cnn(2, 3, width=3, depth=2, image_size=4,
                                           seed=1).double(), (2, 4, 4)),
    "lenet": (lambda: models.lenet(1, 2, image_size=4, seed=1).double(), (1, 4, 4)),
}


def explicit_ntk(model: nn.Module, x1, x2) -> torch.Tensor:
    """`[n1, n2, o, o]` from full Jacobians by torch.autograd.functional.jacobian."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    names = list(params)

    def jac(x):
        def f(*theta):  # no tie search: it breaks models with aliased modules (bridges)
            return functional_call(model, dict(zip(names, theta, strict=True)), (x,),
                                   tie_weights=False)

        rows = torch.autograd.functional.jacobian(f, tuple(params.values()))
        o = f(*params.values())[0].numel()
        return torch.cat([j.reshape(x.shape[0], o, -1) for j in rows], 2)

    j1, j2 = jac(x1), jac(x2)  # [n, o, P]
    return torch.einsum("aoP,bpP->abop", j1, j2)


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_matches_explicit_jacobian_products(name, mode, chunk_size):
    build, shape = NETS[name]
    model = build()
    x1, x2 = data(shape, 5), data(shape, 3, seed=1)
    for a, b in ((x1, x2), (x1, None)):
        expected = explicit_ntk(model, a, a if b is None else b)
        full = empirical_ntk(model, a, b, mode=mode, per_logit="full", chunk_size=chunk_size)
        trace = empirical_ntk(model, a, b, mode=mode, chunk_size=chunk_size)
        assert full.shape == expected.shape and full.dtype == F64
        torch.testing.assert_close(full, expected, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(trace, expected.diagonal(dim1=2, dim2=3).sum(-1),
                                   atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_small_memory_budget_chunks_without_changing_the_kernel(mode, monkeypatch):
    build, shape = NETS["small_cnn"]
    model, x1, x2 = build(), data(shape, 7), data(shape, 3, seed=1)
    expected = explicit_ntk(model, x1, x2)
    # A budget of a few examples' Jacobians and activations: blocks of 2-3, vmap chunks of 1.
    monkeypatch.setattr(ntk, "_BUDGET_BYTES", 3 * 8 * 400)
    full = empirical_ntk(model, x1, x2, mode=mode, per_logit="full")
    torch.testing.assert_close(full, expected, atol=1e-8, rtol=1e-8)
    sym = empirical_ntk(model, x1, mode=mode, per_logit="full")
    torch.testing.assert_close(sym, explicit_ntk(model, x1, x1), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_symmetric_and_positive_semidefinite(mode):
    build, shape = NETS["small_cnn"]
    x = data(shape, 7)
    trace = empirical_ntk(build(), x, mode=mode, chunk_size=3)
    full = empirical_ntk(build(), x, mode=mode, per_logit="full", chunk_size=3)
    assert torch.equal(trace, trace.T)
    matrix = full.permute(0, 2, 1, 3).reshape(21, 21)  # the NO × NO kernel
    assert torch.equal(matrix, matrix.T)
    for k in (trace, matrix):
        eig = torch.linalg.eigvalsh(k)
        assert eig.min() > -1e-10 * eig.max()
    # 7 examples: the traced kernel is a sum of 3 Gram matrices of rank ≤ 7, positive diagonal
    assert (trace.diagonal() > 0).all()


def test_modes_agree_in_float32():
    model = models.small_cnn(3, 4, width=4, depth=2, image_size=6, seed=0)
    x = torch.rand(9, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    jac = empirical_ntk(model, x, mode="jacobian")
    vp = empirical_ntk(model, x, mode="ntk_vp")
    assert jac.dtype == vp.dtype == torch.float32
    torch.testing.assert_close(jac, vp, rtol=1e-4, atol=1e-5 * float(jac.abs().max()))


def test_linearised_kernel_is_taken_at_the_linearisation_point():
    build, shape = NETS["mlp"]
    x = data(shape, 6)
    net = build()
    initial = empirical_ntk(net, x)
    lin = Linearised(net)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.3)
    assert not torch.allclose(empirical_ntk(net, x), initial)  # the network's NTK moved
    for mode in MODES:
        torch.testing.assert_close(empirical_ntk(lin, x, mode=mode), initial, atol=1e-12, rtol=0)
    lin.relinearise()
    torch.testing.assert_close(empirical_ntk(lin, x), empirical_ntk(net, x), atol=1e-12, rtol=0)


def test_frozen_parameters_and_multidimensional_outputs():
    class Grid(nn.Module):  # outputs [b, 2, 3], flattened to o = 6
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6, dtype=F64)
            self.out = nn.Linear(6, 6, dtype=F64)

        def forward(self, x):
            return self.out(torch.tanh(self.fc(x))).reshape(-1, 2, 3)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Grid()
    model.fc.requires_grad_(False)  # frozen: not a direction of the kernel
    x = data((4,), 5)
    expected = explicit_ntk(model, x, x)
    for mode in MODES:
        full = empirical_ntk(model, x, mode=mode, per_logit="full")
        assert full.shape == (5, 5, 6, 6)
        torch.testing.assert_close(full, expected, atol=1e-10, rtol=0)
    # Only the last layer trains: Θ(x, x')[o, p] = δ_op (1 + h(x)·h(x')).
    h = torch.tanh(model.fc(x)).detach()
    torch.testing.assert_close(empirical_ntk(model, x), 6 * (1 + h @ h.T), atol=1e-12, rtol=0)


def test_leaves_model_and_inputs_alone():
    build, shape = NETS["small_cnn"]
    model = build().train()
    x = data(shape, 4)
    x_copy, state = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    empirical_ntk(model, x, mode="ntk_vp")
    assert model.training and torch.equal(x, x_copy)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


class Normed(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.fc = nn.Linear(3, 2, dtype=F64)
        self.layer = layer

    def forward(self, x):
        return self.layer(self.fc(x))


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(2, dtype=F64), nn.Dropout(0.3)])
def test_train_mode_batchnorm_and_dropout(layer):
    model = Normed(layer)
    x = data((3,), 4)
    with pytest.raises(ConfigError, match="training mode.*model.eval()"):
        empirical_ntk(model, x)
    model.eval()
    expected = empirical_ntk(model, x)
    model.train()
    # A Linearised wrapper with train_mode="eval" runs them in eval mode.
    torch.testing.assert_close(empirical_ntk(Linearised(model, train_mode="eval"), x), expected)
    assert model.layer.training


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x), x


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda m, x: empirical_ntk("model", x), ConfigError, "torch.nn.Module, got str"),
    (lambda m, x: empirical_ntk(m, x, mode="exact"), ConfigError, "mode must be one of"),
    (lambda m, x: empirical_ntk(m, x, per_logit="mean"), ConfigError, "per_logit must be"),
    (lambda m, x: empirical_ntk(m, x, chunk_size=0), ConfigError, "chunk_size must be"),
    (lambda m, x: empirical_ntk(m, x, x[:, :3]), ShapeError, r"x2 has examples of shape \(3,\)"),
    (lambda m, x: empirical_ntk(m, x[:0]), ShapeError, "n >= 1"),
    (lambda m, x: empirical_ntk(m, x.new_tensor(float("nan")).expand(2, 4)), NonFiniteError,
     "NaN"),
    (lambda m, x: empirical_ntk(m, x.to("meta")), DeviceError, "share one device"),
    (lambda m, x: empirical_ntk(TupleOut(), x[:, :3].float()), ConfigError,
     "one tensor .* got tuple"),
])
def test_bad_input(call, error, match):
    build, shape = NETS["mlp"]
    model = build()
    with pytest.raises(error, match=match):
        call(model, data(shape, 3))


def test_transformer_bridge():
    """Tokens [b, T] in, logits [b, T, V] out (o = T·V); modules reachable by two paths."""
    model = models.tiny_transformer(d_model=8, n_layers=1, n_heads=2, d_vocab=5, n_ctx=3,
                                    seed=0).double()
    tokens = torch.randint(0, 5, (3, 3), generator=torch.Generator().manual_seed(0))
    params = [id(p) for p in model.parameters()]
    expected = explicit_ntk(model, tokens, tokens)
    assert expected.shape == (3, 3, 15, 15)
    lin = Linearised(model)
    for mode in MODES:
        for net in (model, lin):
            torch.testing.assert_close(empirical_ntk(net, tokens, mode=mode, per_logit="full"),
                                       expected, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(lin(tokens), model(tokens), atol=1e-12, rtol=0)
    # The parameters are still the model's own objects (an optimiser holding them still acts).
    assert [id(p) for p in model.parameters()] == params
