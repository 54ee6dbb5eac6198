"""`sweep`: run a function over the cartesian product of a grid, in parallel processes."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import _validate as check
from ..errors import ConfigError, FeatureBiasError


class JobError(FeatureBiasError, RuntimeError):
    """A job of a sweep raised; the message names its parameters, the cause is the error."""


def sweep(fn: Callable[..., Mapping | pd.DataFrame], grid: Mapping[str, Sequence], *,
          workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """`fn(**params)` for every combination of the grid, as one tidy frame in grid order.

    Args:
        fn: returns a dict (one row) or a DataFrame (its rows); the job's parameters are
            added as the first columns. With `workers > 1` it must be picklable (a function
            defined at module level), since it runs in fresh "spawn" processes.
        grid: `{name: values}`; the last name varies fastest, as in `itertools.product`.
        workers: processes to run jobs in, each with one torch thread; 1 runs them here.

    Raises `JobError` (from the job's own error) when a job fails; the remaining jobs are
    cancelled.
    """
    if not callable(fn):
        raise ConfigError(f"fn must be callable, got {fn!r}")
    workers = check.positive_int(workers, "workers")
    jobs = _jobs(grid)
    bar = tqdm(total=len(jobs), desc="sweep", disable=not progress)
    try:
        if workers == 1:
            results = []
            for params in jobs:
                results.append(_call(fn, params))
                bar.update()
        else:
            results = _parallel(fn, jobs, workers, bar)
    finally:
        bar.close()
    frames = [_frame(result, params) for result, params in zip(results, jobs, strict=True)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(grid))


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


def _call(fn: Callable, params: dict):
    try:
        return fn(**params)
    except Exception as e:
        raise _job_error(params, e) from e


def _job_error(params: dict, error: Exception) -> JobError:
    return JobError(f"sweep job {params} failed: {type(error).__name__}: {error}")


def _parallel(fn: Callable, jobs: list[dict], workers: int, bar: tqdm) -> list:
    try:
        pickle.dumps(fn)
    except Exception as e:  # lambdas, closures, functions defined in __main__ of a notebook
        raise ConfigError(f"with workers > 1, fn must be picklable (a module-level function), "
                          f"got {fn!r}: {e}") from e
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    results: list = [None] * len(jobs)
    # The workers get `fn` itself and torch's own `set_num_threads` (one thread each, so jobs
    # side by side do not fight over cores): nothing of this package has to be imported
    # there unless `fn` needs it, which keeps the start-up of each worker short.
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {pool.submit(fn, **params): i for i, params in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as e:
                    raise _job_error(jobs[i], e) from e
                bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def _frame(result, params: dict) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        frame = result.reset_index(drop=True)
    elif isinstance(result, Mapping):
        frame = pd.DataFrame([dict(result)])
    else:
        raise ConfigError(f"sweep job {params} returned {type(result).__name__}; expected a "
                          "dict or a DataFrame")
    clash = [name for name in params if name in frame.columns]
    if clash:
        raise ConfigError(f"sweep job {params} returned column(s) {clash} that are also grid "
                          "names; rename them")
    for position, (name, value) in enumerate(params.items()):
        frame.insert(position, name, [value] * len(frame))
    return frame
