"""Controls (SCIENCE §3.6): the identity, and a random subspace of matched rank."""

from __future__ import annotations

import pytest
import torch

from featurebias.erasure import IdentityEraser, RandomEraser
from featurebias.errors import ConfigError, ShapeError


def test_identity_returns_input_unchanged():
    x = torch.randn(3, 5, 7)
    assert torch.equal(IdentityEraser()(x), x)
    assert torch.equal(IdentityEraser.fit(x)(x, torch.zeros(3)), x)


@pytest.fixture
def data(class_data):
    return class_data(0, 500, 16, 3)


def test_random_is_a_centred_projection(data):
    x, _ = data
    eraser = RandomEraser.fit(x, rank=5, seed=3)
    out = eraser(x)
    assert torch.allclose(eraser(out), out, atol=1e-10)
    assert torch.linalg.matrix_rank(x - out) <= 5
    assert torch.allclose(out.mean(0), x.mean(0), atol=1e-10)
    q = eraser.basis
    assert torch.allclose(q.T @ q, torch.eye(5, dtype=q.dtype), atol=1e-12)


def test_random_does_not_guard(data):
    x, y = data
    out = RandomEraser.fit(x, rank=2, seed=0)(x)
    onehot = torch.nn.functional.one_hot(y).double()
    cross = (out - out.mean(0)).T @ (onehot - onehot.mean(0)) / len(x)
    assert cross.abs().max() > 0.05


def test_seed_determines_subspace():
    a, b, c = RandomEraser(8, 3, seed=1), RandomEraser(8, 3, seed=1), RandomEraser(8, 3, seed=2)
    assert torch.equal(a.basis, b.basis)
    assert not torch.allclose(a.basis, c.basis)


def test_random_bad_input():
    with pytest.raises(ConfigError, match="rank"):
        RandomEraser(4, 5)
    with pytest.raises(ShapeError, match="last dimension"):
        RandomEraser(4, 2)(torch.randn(3, 5))
