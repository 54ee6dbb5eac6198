"""`run_jobs`: the local launcher, failures kept with their error, and the optional launchers."""

from __future__ import annotations

import multiprocessing
import sys

import pytest

from featurebias import distributed
from featurebias.errors import ConfigError
from featurebias.launch import JobError, run_jobs

from . import _jobs

JOBS = [{"seed": 0, "method": "leace"}, {"seed": 1, "method": "broken"},
        {"seed": 2, "method": "qleace"}, {"seed": 3, "method": "alf"}]


def test_local_launcher_runs_four_jobs_on_two_workers_and_keeps_the_others_results():
    frame, failures = run_jobs(_jobs.square, JOBS, workers=2, progress=False)
    assert list(frame.columns) == ["seed", "method", "value", "length"]
    assert frame[["seed", "method"]].to_dict("records") == [JOBS[i] for i in (0, 2, 3)]
    assert list(frame["value"]) == [0.0, 4.0, 9.0]  # job order, whatever finished first
    assert list(failures.columns) == ["seed", "method", "error", "traceback"]
    assert failures[["seed", "method"]].to_dict("records") == [JOBS[1]]
    assert failures["error"][0] == "ValueError: seed 1 diverged"
    # The worker's own traceback, down to the line that raised.
    assert "in square" in failures["traceback"][0] and "diverged" in failures["traceback"][0]


@pytest.mark.parametrize("workers", [1, 2])
def test_on_error_raise_names_the_failing_job(workers, monkeypatch):
    # "fork" skips a spawned worker's seconds of start-up; the spawn path is tested above.
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: fork)
    with pytest.raises(JobError, match=r"\{'seed': 1, 'method': 'broken'\}.*ValueError"):
        run_jobs(_jobs.square, JOBS, workers=workers, on_error="raise", progress=False)


def test_inline_jobs_keep_dataframe_rows_and_failures():
    jobs = [{"seed": 0}, {"seed": 5}]
    frame, failures = run_jobs(_jobs.curve, jobs, workers=1, progress=False)
    assert frame.to_dict("list") == {"seed": [0, 0, 5, 5], "step": [0, 1, 0, 1],
                                     "loss": [1.0, 0.5, 6.0, 5.5]}
    assert failures.empty and list(failures.columns) == ["seed", "error", "traceback"]
    frame, failures = run_jobs(lambda seed: [seed], jobs, workers=1, progress=False)
    assert frame.empty and list(failures["seed"]) == [0, 5]
    assert failures["error"].str.contains("expected a dict or a DataFrame").all()


def test_slurm_without_submitit_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import fails, installed or not
    with pytest.raises(ConfigError, match="needs submitit.*pip install submitit"):
        run_jobs(_jobs.square, JOBS, launcher="slurm", progress=False)


def test_torchrun_launcher_needs_a_process_group():
    assert not distributed.is_distributed()
    with pytest.raises(ConfigError, match="start the command with torchrun"):
        run_jobs(_jobs.square, JOBS, launcher="torchrun", progress=False)


@pytest.mark.parametrize(("jobs", "kwargs", "match"), [
    (JOBS, {"launcher": "mpi"}, "launcher must be one of"),
    (JOBS, {"on_error": "ignore"}, "on_error must be one of"),
    (JOBS, {"workers": 0}, "workers"),
    (JOBS, {"slurm": ["timeout_min=5"]}, "slurm must be a mapping"),
    ({"seed": 0}, {}, "jobs must be a sequence of mappings"),
    ([{"seed": 0}, {1: 2}], {}, r"jobs\[1\]"),
    (JOBS, {"fn": lambda seed, method: {}}, "picklable"),
])
def test_bad_calls_are_config_errors(jobs, kwargs, match):
    fn = kwargs.pop("fn", _jobs.square)
    with pytest.raises(ConfigError, match=match):
        run_jobs(fn, jobs, progress=False, **kwargs)


def test_torchrun_launcher_runs_every_job_on_every_rank_and_fails_a_job_everywhere(ranks):
    for r in ranks:
        assert r["jobs"]["values"] == [0, 4]
        assert r["jobs"]["failed"] == [1]
    assert ranks[1]["jobs"]["errors"] == ["ValueError: job 1 broke on rank 1"]
    assert all("failed on rank 1" in r["jobs"]["errors"][0] for r in (ranks[0], ranks[2]))
