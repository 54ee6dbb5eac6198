"""`sweep`: run a function over the cartesian product of a grid, as local processes or jobs.

The jobs run through `featurebias.launch.run_jobs` (local processes, SLURM via submitit, or
every rank under torchrun); `sweep` adds the grid and raises at the first failing job (use
`run_jobs(..., on_error="keep")` to keep the other jobs' results).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from ..errors import ConfigError
from ..launch import JobError, run_jobs

__all__ = ["JobError", "sweep"]


def sweep(fn: Callable[..., Mapping | pd.DataFrame], grid: Mapping[str, Sequence], *,
          workers: int = 1, launcher: str = "local", slurm: Mapping | None = None,
          folder=None, progress: bool = True) -> pd.DataFrame:
    """`fn(**params)` for every combination of the grid, as one tidy frame in grid order.

    Args:
        fn: returns a dict (one row) or a DataFrame (its rows); the job's parameters are
            added as the first columns. With `workers > 1` or on SLURM it must be picklable
            (a function defined at module level), since it runs in other processes.
        grid: `{name: values}`; the last name varies fastest, as in `itertools.product`.
        workers: jobs at a time, each local process with one torch thread; 1 runs them here.
        launcher, slurm, folder: where the jobs run (`featurebias.launch.run_jobs`).

    Raises `JobError` (from the job's own error) when a job fails; the remaining jobs are
    cancelled.
    """
    jobs = _jobs(grid)
    frame, _ = run_jobs(fn, jobs, launcher=launcher, workers=workers, on_error="raise",
                        folder=folder, slurm=slurm, progress=progress)
    return frame if len(frame.columns) else pd.DataFrame(columns=list(grid))


def _jobs(grid: Mapping[str, Sequence]) -> list[dict]:
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid must be a mapping {{name: values}}, got {type(grid).__name__}")
    for name, values in grid.items():
        if not isinstance(name, str):
            raise ConfigError(f"grid names must be strings, got {name!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ConfigError(f"grid[{name!r}] must be a sequence of values (a list), got "
                              f"{values!r}")
    names = list(grid)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(grid[n] for n in names))]
