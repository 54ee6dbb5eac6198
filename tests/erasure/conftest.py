"""Shared data makers for the erasure tests, exposed as session-scoped factory fixtures.

Session scope keeps them usable inside hypothesis tests (no function-scoped fixture reuse).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification


def make_class_data(seed: int, n: int, d: int, k: int, *, rank: int | None = None,
                    imbalance: float = 0.0, signal: float = 3.0,
                    offset: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes: float64 `x [n, d]` and int64 class ids `y [n]`.

    Class sizes follow priors ∝ exp(imbalance · g) with g standard normal, and every class gets
    at least two rows. The class signal (means of scale `signal`, unit noise) lives in a latent
    space of dimension `rank` (d when None) that a random linear map sends to R^d, so with
    `rank < d` the data are rank-deficient. `offset` shifts the global mean away from zero.
    """
    if n < 2 * k:
        raise ValueError("need at least two rows per class")
    rng = np.random.default_rng(seed)
    logits = imbalance * rng.standard_normal(k)
    priors = np.exp(logits - logits.max())
    priors /= priors.sum()
    counts = 2 + rng.multinomial(n - 2 * k, priors)
    y = rng.permutation(np.repeat(np.arange(k), counts))
    r = d if rank is None else rank
    latent = signal * rng.standard_normal((k, r))[y] + rng.standard_normal((n, r))
    x = latent @ rng.standard_normal((r, d)) + offset * rng.standard_normal(d)
    return torch.from_numpy(x), torch.from_numpy(y)


@functools.cache
def _leace_problem(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_classification(n_samples=2048, n_features=128, n_informative=16,
                               n_redundant=0, n_classes=k, random_state=1000 * seed + k)
    return torch.from_numpy(x), torch.from_numpy(y)


def make_leace_problem(k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SCIENCE §3.7 LEACE data: make_classification, n = 2048, d = 128, full rank, float64.

    Cached; clones are returned so callers may modify them.
    """
    x, y = _leace_problem(k, seed)
    return x.clone(), y.clone()


@pytest.fixture(scope="session")
def class_data():
    """Factory: `class_data(seed, n, d, k, rank=None, imbalance=0.0, ...) -> (x, y)`."""
    return make_class_data


@pytest.fixture(scope="session")
def leace_problem():
    """Factory: `leace_problem(k) -> (x, y)`, the §3.7 make_classification data."""
    return make_leace_problem
