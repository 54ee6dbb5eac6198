"""`sweep`: grid order, parameter columns, parallel workers, and failing jobs."""

from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest

from featurebias.errors import ConfigError
from featurebias.training import JobError, sweep

from . import _jobs

GRID = {"arch": ["mlp", "lenet"], "seed": [0, 1, 2]}


def test_serial_sweep_in_grid_order_with_parameter_columns():
    frame = sweep(_jobs.row, GRID, progress=False)
    assert list(frame.columns) == ["arch", "seed", "value", "threads"]
    assert list(zip(frame["arch"], frame["seed"], strict=True)) == [
        (a, s) for a in GRID["arch"] for s in GRID["seed"]]
    for r in frame.itertuples():
        assert r.value == _jobs.row(r.arch, r.seed)["value"]


def test_dataframe_jobs_keep_all_their_rows():
    frame = sweep(_jobs.rows, GRID, progress=False)
    assert len(frame) == 12 and list(frame.columns) == ["arch", "seed", "step", "loss"]
    assert list(frame.index) == list(range(12))
    lenet2 = frame[(frame["arch"] == "lenet") & (frame["seed"] == 2)]
    assert list(lenet2["step"]) == [0, 10] and list(lenet2["loss"]) == [2.0, 0.5]


def test_two_workers_give_the_same_frame_with_one_thread_each():
    serial = sweep(_jobs.row, GRID, progress=False)
    parallel = sweep(_jobs.row, GRID, workers=2, progress=False)
    assert set(parallel["threads"]) == {1}
    pd.testing.assert_frame_equal(serial.drop(columns="threads"),
                                  parallel.drop(columns="threads"))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_names_its_parameters(workers, monkeypatch):
    # The error path does not depend on how workers start; "fork" skips the seconds a
    # spawned worker needs to import torch (the spawn path is the test above).
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: fork)
    with pytest.raises(JobError, match=r"\{'arch': 'lenet', 'seed': 1\}.*ValueError: diverged"):
        sweep(_jobs.fails, GRID, workers=workers, progress=False)


@pytest.mark.parametrize(("fn", "grid", "kwargs", "match"), [
    (_jobs.row, {"arch": "mlp", "seed": [0]}, {}, r"grid\['arch'\]"),
    (_jobs.row, [("arch", ["mlp"])], {}, "mapping"),
    (_jobs.row, GRID, {"workers": 0}, "workers"),
    (lambda arch, seed: {"x": 1}, GRID, {"workers": 2}, "picklable"),
    (lambda arch, seed: [1], GRID, {}, "expected a dict or a DataFrame"),
    (lambda arch, seed: {"seed": 1}, GRID, {}, "also grid names"),
    ("fn", GRID, {}, "callable"),
])
def test_bad_sweeps(fn, grid, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sweep(fn, grid, progress=False, **kwargs)


def test_empty_grid_runs_one_job():
    frame = sweep(lambda: {"value": 3}, {}, progress=False)
    assert frame.to_dict("records") == [{"value": 3}]
