"""Timing and environment helpers shared by the benchmark scripts."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def median_times(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall-clock seconds of each `fn()` over `repeats` runs, after one warm-up run.

    The runs alternate between the functions, so slow drifts of the machine hit both alike.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def environment(*packages: str) -> dict:
    """Versions, threads, machine and date, for the JSON results."""
    return {
        "torch": torch.__version__,
        **{name.replace("-", "_"): importlib.metadata.version(name) for name in packages},
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_results(out: Path, result: dict) -> None:
    """Write a benchmark's results as indented JSON (creating the folder) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
