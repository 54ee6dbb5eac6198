"""Module-level jobs for `run_jobs` (picklable, so spawned workers can import them)."""

from __future__ import annotations

import pandas as pd


def square(seed: int, method: str) -> dict:
    if method == "broken":
        raise ValueError(f"seed {seed} diverged")
    return {"value": float(seed ** 2), "length": len(method)}


def curve(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"step": [0, 1], "loss": [1.0 + seed, 0.5 + seed]})
