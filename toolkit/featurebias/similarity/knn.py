"""Mutual k-nearest-neighbour alignment (Huh et al. 2024; §8.5).

Rows are L2-normalised and each stimulus's k nearest neighbours (by inner product, itself
excluded) are found in both representations; the score is the mean overlap of the two sets
divided by k. No centring is done (as in the paper), so the score is not translation-invariant.
Neighbours are found in row blocks, so memory is O(block · n) rather than O(n²).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, RangeError
from ._inputs import F64, chunk_rows, pair, require_varying


def mutual_knn(x, y, k: int = 10) -> float:
    """Mean fraction of shared k nearest neighbours, in [0, 1]; chance is about k / (n − 1)."""
    k = check.positive_int(k, "k")
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "the k-NN alignment")  # all neighbours would tie
    n = x.shape[0]
    if k > n - 1:
        raise ConfigError(f"k = {k} neighbours need at least k + 1 = {k + 1} stimuli, got n = "
                          f"{n}; expected k <= n − 1")
    xn, yn = _unit_rows(x, "x"), _unit_rows(y, "y")
    block = chunk_rows(n)
    shared = 0
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=x.device)
        nx, ny = _neighbours(xn, rows, k), _neighbours(yn, rows, k)
        shared += int((nx[:, :, None] == ny[:, None, :]).sum())
    return shared / (n * k)


def _unit_rows(x: Tensor, name: str) -> Tensor:
    x = x.to(F64)
    norm = x.norm(dim=1)
    if not bool((norm > 0).all()):
        bad = (norm == 0).nonzero()[:, 0].tolist()[:8]
        raise RangeError(f"{name} has all-zero rows ({bad}); they have no direction, so their "
                         "neighbours are undefined. Expected non-zero rows")
    return x / norm[:, None]


def _neighbours(xn: Tensor, rows: Tensor, k: int) -> Tensor:
    sims = xn[rows] @ xn.T
    sims[torch.arange(len(rows), device=xn.device), rows] = -torch.inf  # not its own neighbour
    return sims.topk(k, dim=1).indices
