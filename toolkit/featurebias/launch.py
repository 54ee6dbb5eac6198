"""`run_jobs`: independent jobs (seeds × erasers × architectures) on a launcher, one table.

Launchers:
- `"local"`: processes on this machine, `workers` at a time ("spawn" start, one torch thread
  each); `workers=1` runs the jobs here, one after another.
- `"slurm"`: one task of a SLURM job array per job, `workers` running at a time, through
  submitit (an optional dependency: `pip install submitit`); `slurm` holds submitit's
  executor parameters (`timeout_min`, `slurm_partition`, `gpus_per_node`, `mem_gb`, ...).
- `"torchrun"`: the whole command runs under `torchrun`; every rank runs every job in turn, so
  a job's own fitting and training use the process group (`fit_erasers(distributed=True)`,
  DDP in `train`). A job that fails on any rank fails on every rank.

A job is `fn(**params)` returning a dict (one row) or a DataFrame; the parameters become its
first columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch

from . import _validate as check
from . import distributed
from ._progress import tqdm
from .errors import ConfigError, FeatureBiasError

LAUNCHERS = ("local", "slurm", "torchrun")


class JobError(FeatureBiasError, RuntimeError):
    """A job failed (with `on_error="raise"`); the message names its parameters."""


class Jobs(NamedTuple):
    """What `run_jobs` returns; unpacks as `frame, failures = run_jobs(...)`."""

    frame: pd.DataFrame
    """The finished jobs' rows, in job order, parameters first."""
    failures: pd.DataFrame
    """One row per failed job: its parameters, `error` ("Type: message") and `traceback`."""


class _Failure(NamedTuple):
    error: str
    traceback: str


def run_jobs(fn: Callable[..., Mapping | pd.DataFrame], jobs: Sequence[Mapping], *,
             launcher: str = "local", workers: int = 2, on_error: str = "keep",
             folder=None, slurm: Mapping | None = None, progress: bool = True) -> Jobs:
    """Run `fn(**params)` for every `params` in `jobs` and gather one tidy frame.

    Args:
        fn: returns a dict or a DataFrame. Outside this process ("local" with `workers > 1`,
            "slurm") it must be picklable: a function defined at module level.
        jobs: one mapping of keyword arguments per job (names are strings).
        launcher: "local", "slurm" or "torchrun" (see the module docstring).
        workers: jobs running at a time (local processes, or SLURM array tasks).
        on_error: "keep" reports failing jobs in `failures` and keeps the others' results;
            "raise" raises `JobError` (caused by the job's error) at the first failure and
            cancels the jobs not started yet.
        folder: where submitit keeps its scripts, logs and results (slurm; default
            `runs/submitit`); it must be on a file system the compute nodes see.
        slurm: submitit executor parameters, e.g. `{"timeout_min": 60, "gpus_per_node": 1}`.
    """
    if not callable(fn):
        raise ConfigError(f"fn must be callable, got {fn!r}")
    check.choice(launcher, "launcher", LAUNCHERS)
    check.choice(on_error, "on_error", ("keep", "raise"))
    workers = check.positive_int(workers, "workers")
    if slurm is not None and not isinstance(slurm, Mapping):
        raise ConfigError(f"slurm must be a mapping of submitit parameters, got {slurm!r}")
    jobs = _checked(jobs)
    show = progress and distributed.rank() == 0
    bar = tqdm(total=len(jobs), desc=f"jobs ({launcher})", disable=not show)
    try:
        if launcher == "slurm":
            outcomes = _slurm(fn, jobs, workers, on_error, folder, dict(slurm or {}), bar)
        elif launcher == "torchrun":
            outcomes = _torchrun(fn, jobs, on_error, bar)
        elif workers == 1 or len(jobs) <= 1:
            outcomes = _inline(fn, jobs, on_error, bar)
        else:
            outcomes = _pool(fn, jobs, workers, on_error, bar)
    finally:
        bar.close()
    return _gather(jobs, outcomes, on_error)


def analysis_overrides(config_cls: type, launcher: str | None,
                       overrides: Sequence[str] = ()) -> list[str]:
    """Config overrides for `featurebias run ANALYSIS --launcher NAME`.

    An analysis whose `Config` has a `launcher` field gets it (its sweeps then run there).
    `"torchrun"` also joins the process group that torchrun set up, so the analysis' fitting
    and training use it; `"slurm"` needs an analysis with a `launcher` field (run anything
    else as one SLURM job).
    """
    overrides = list(overrides)
    if launcher is None:
        return overrides
    check.choice(launcher, "launcher", LAUNCHERS)
    if launcher == "torchrun" and not (distributed.is_distributed()
                                       or distributed.init_from_env()):
        raise ConfigError("--launcher torchrun: start the command with torchrun, e.g. "
                          "torchrun --nproc-per-node 4 --no-python featurebias run NAME "
                          "--launcher torchrun")
    if "launcher" in {f.name for f in dataclasses.fields(config_cls)}:
        overrides.append(f"launcher={launcher}")
    elif launcher == "slurm":
        raise ConfigError(f"{config_cls.__module__} has no sweep to spread over SLURM jobs (its "
                          "Config has no launcher field); submit the whole command as one SLURM "
                          "job instead (sbatch, srun)")
    return overrides


def _checked(jobs) -> list[dict]:
    if isinstance(jobs, (str, bytes, Mapping)) or not isinstance(jobs, Sequence):
        raise ConfigError(f"jobs must be a sequence of mappings {{name: value}}, got {jobs!r}")
    out = []
    for i, params in enumerate(jobs):
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise ConfigError(f"jobs[{i}] is {params!r}; expected a mapping with string keys")
        out.append(dict(params))
    return out


def _job_error(params: dict, error: BaseException) -> JobError:
    return JobError(f"job {params} failed: {type(error).__name__}: {error}")


def _failure(error: BaseException, text: str | None = None) -> _Failure:
    if text is None:
        text = "".join(traceback.format_exception(error))
    return _Failure(f"{type(error).__name__}: {error}", text)


def _inline(fn, jobs: list[dict], on_error: str, bar, guard=None) -> list:
    """Run the jobs here, one after the other; `guard(what)` wraps each (a context manager)."""
    outcomes = []
    for params in jobs:
        try:
            with guard(f"job {params}") if guard else contextlib.nullcontext():
                result = fn(**params)
            # Appended only after the guard: it may raise for another rank's failure after
            # this rank's job succeeded, and the job must then count once, as failed.
            outcomes.append(result)
        except Exception as e:
            if on_error == "raise":
                raise _job_error(params, e) from e
            outcomes.append(_failure(e))
        bar.update()
    return outcomes


def _pool(fn, jobs: list[dict], workers: int, on_error: str, bar) -> list:
    try:
        pickle.dumps(fn)
    except Exception as e:  # lambdas, closures, functions defined in a notebook's __main__
        raise ConfigError(f"jobs run in other processes, so fn must be picklable (a "
                          f"module-level function), got {fn!r}: {e}") from e
    import multiprocessing  # looked up here, so tests may swap the start method

    outcomes: list = [None] * len(jobs)
    # The workers get `fn` itself and torch's own `set_num_threads` (one thread each, so
    # jobs side by side do not fight over cores): nothing of this package is imported there
    # unless `fn` needs it, which keeps each worker's start-up short.
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                             mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {pool.submit(fn, **params): i for i, params in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    outcomes[i] = future.result()
                except Exception as e:
                    if on_error == "raise":
                        raise _job_error(jobs[i], e) from e
                    # The worker's traceback comes back as the cause's text.
                    outcomes[i] = _failure(e, getattr(e.__cause__, "tb", None))
                bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return outcomes


def _slurm(fn, jobs: list[dict], workers: int, on_error: str, folder, options: dict,
           bar) -> list:
    try:
        import submitit
    except ImportError as e:
        raise ConfigError("launcher='slurm' needs submitit, an optional dependency: "
                          "pip install submitit (or use launcher='local')") from e
    folder = Path("runs") / "submitit" if folder is None else Path(folder)
    executor = submitit.AutoExecutor(folder=str(folder))
    try:
        executor.update_parameters(slurm_array_parallelism=workers, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"submitit rejected the slurm parameters {options}: {e}") from e
    with executor.batch():  # one job array: one scheduler call, `workers` tasks at a time
        handles = [executor.submit(fn, **params) for params in jobs]
    outcomes = []
    for params, handle in zip(jobs, handles, strict=True):
        try:
            outcomes.append(handle.result())
        except Exception as e:  # submitit's error text holds the remote traceback
            if on_error == "raise":
                for other in handles:
                    other.cancel(check=False)
                raise _job_error(params, e) from e
            outcomes.append(_failure(e, str(e)))
        bar.update()
    return outcomes


def _torchrun(fn, jobs: list[dict], on_error: str, bar) -> list:
    if not distributed.is_distributed():
        raise ConfigError("launcher='torchrun' runs inside a torch.distributed process group; "
                          "start the command with torchrun (featurebias run joins its group)")
    # Every rank runs every job; a job fails on every rank, or on none.
    return _inline(fn, jobs, on_error, bar, guard=distributed.together)


def _gather(jobs: list[dict], outcomes: list, on_error: str) -> Jobs:
    frames, failed = [], []
    names = list(dict.fromkeys(k for params in jobs for k in params))
    for params, outcome in zip(jobs, outcomes, strict=True):
        if not isinstance(outcome, _Failure):
            try:
                frames.append(_frame(outcome, params))
                continue
            except ConfigError as e:
                if on_error == "raise":
                    raise
                outcome = _failure(e)
        failed.append({**params, "error": outcome.error, "traceback": outcome.traceback})
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)
    failures = pd.DataFrame(failed, columns=[*names, "error", "traceback"])
    return Jobs(frame, failures)


def _frame(result, params: dict) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        frame = result.reset_index(drop=True)
    elif isinstance(result, Mapping):
        frame = pd.DataFrame([dict(result)])
    else:
        raise ConfigError(f"job {params} returned {type(result).__name__}; expected a dict or "
                          "a DataFrame")
    clash = [name for name in params if name in frame.columns]
    if clash:
        raise ConfigError(f"job {params} returned column(s) {clash} that are also grid names "
                          "(job parameters); rename them")
    for position, (name, value) in enumerate(params.items()):
        frame.insert(position, name, [value] * len(frame))
    return frame
