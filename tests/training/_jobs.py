"""Module-level sweep jobs: picklable, so spawned worker processes can import them."""

from __future__ import annotations

import time

import pandas as pd
import torch


def row(arch: str, seed: int) -> dict:
    """One row; the later jobs finish first, so completion order is not grid order."""
    time.sleep(0.05 * (seed == 0))
    g = torch.Generator().manual_seed(seed)
    return {"value": float(torch.randn(1, generator=g)) + len(arch),
            "threads": torch.get_num_threads()}


def rows(arch: str, seed: int) -> pd.DataFrame:
    """Several rows per job."""
    return pd.DataFrame({"step": [0, 10], "loss": [float(seed), len(arch) / 10]})


def fails(arch: str, seed: int) -> dict:
    if arch == "lenet" and seed == 1:
        raise ValueError("diverged")
    return {"value": 1.0}
