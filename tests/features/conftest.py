"""Data makers for the feature-strength tests, exposed as factory fixtures."""

from __future__ import annotations

import pytest
import torch


def balanced_pm1(n: int, gen: torch.Generator) -> torch.Tensor:
    """A balanced ±1 feature `[n]` (int64, exactly n/2 of each) in random order."""
    return torch.where(torch.randperm(n, generator=gen) < n // 2, 1, -1)


def planted(n: int = 4000, p: int = 20, a: float = 3.0, b: float = 1.0, sigma: float = 0.5,
            seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`h = a·e₁·easy + b·e₂·hard + σ·noise` with balanced, independent ±1 features.

    Per dimension the variance is a² + σ², b² + σ² and σ² elsewhere, so the easy feature
    explains a² / (a² + b² + σ²p) of the total and the hard one b² / (a² + b² + σ²p).
    """
    gen = torch.Generator().manual_seed(seed)
    easy, hard = balanced_pm1(n, gen), balanced_pm1(n, gen)
    h = sigma * torch.randn(n, p, generator=gen, dtype=torch.float64)
    h[:, 0] += a * easy
    h[:, 1] += b * hard
    return h, {"easy": easy, "hard": hard}


def mixed(n: int = 600, p: int = 7, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Representation driven by a 3-level categorical, a continuous and a boolean feature."""
    gen = torch.Generator().manual_seed(seed)
    cat = torch.randint(0, 3, (n,), generator=gen)
    cont = torch.randn(n, generator=gen, dtype=torch.float64)
    flag = torch.rand(n, generator=gen) < 0.3
    h = (torch.randn(3, p, generator=gen, dtype=torch.float64)[cat]
         + cont[:, None] * torch.randn(p, generator=gen, dtype=torch.float64)
         + 0.5 * flag[:, None] * torch.randn(p, generator=gen, dtype=torch.float64)
         + torch.randn(n, p, generator=gen, dtype=torch.float64) + 2.0)
    return h, {"cat": cat, "cont": cont, "flag": flag}


@pytest.fixture(scope="session")
def make_planted():
    return planted


@pytest.fixture(scope="session")
def make_mixed():
    return mixed
