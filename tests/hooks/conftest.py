"""Shared helpers for the sites/hooks tests: probes and hook counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def probe_accuracy(x: torch.Tensor, z: torch.Tensor) -> float:
    """In-sample accuracy of an (almost) unregularised logistic regression."""
    with threadpool_limits(1):
        model = LogisticRegression(C=1e4, max_iter=5000)
        xn = x.detach().double().flatten(1).numpy()
        return float(model.fit(xn, z.numpy()).score(xn, z.numpy()))


def prior_accuracy(z: torch.Tensor) -> float:
    return float(np.bincount(z.numpy()).max() / len(z))


def hook_count(model: torch.nn.Module) -> int:
    """Forward hooks and pre-hooks registered anywhere in the model."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture
def blobs():
    """Inputs `[n, 8]` with a linearly decodable binary label."""
    gen = torch.Generator().manual_seed(0)
    z = torch.arange(400) % 2
    x = torch.randn(400, 8, generator=gen) + 1.5 * z[:, None] * torch.linspace(1, -1, 8)
    return x, z


@pytest.fixture
def probe():
    """`probe(x, z) -> accuracy`, `probe.prior(z)`, `probe.hooks(model)` helpers."""
    class Probe:
        __call__ = staticmethod(probe_accuracy)
        prior = staticmethod(prior_accuracy)
        hooks = staticmethod(hook_count)
    return Probe()
