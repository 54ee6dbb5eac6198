"""Shared data for the similarity tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def golden_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """SCIENCE.md §8.1's reference data: numpy's legacy RNG, seed 1337, Y = randn + X."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return torch.tensor(x), torch.tensor(y)
