"""AULC, steps to threshold and difference-in-differences (SCIENCE §4.2–4.4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from featurebias.errors import ConfigError, LabelError, NonFiniteError, RangeError, ShapeError
from featurebias.training import area_under_curve, difference_in_differences, steps_to_threshold


def test_aulc_by_hand():
    # trapezoids: 10·(3+1)/2 + 20·(1+2)/2 = 50 over a range of 30
    assert area_under_curve([0, 10, 30], [3.0, 1.0, 2.0]) == pytest.approx(50 / 30)
    # in log2 steps: 1 → 0, 4 → 2, 16 → 4: (2·(3+1)/2 + 2·(1+2)/2) / 4
    assert area_under_curve([1, 4, 16], [3.0, 1.0, 2.0], log_x=True) == pytest.approx(7 / 4)


@pytest.mark.parametrize("log_x", [False, True])
def test_aulc_matches_numpy_trapezoid(log_x):
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(1, 50, size=30))
    values = rng.random(30)
    x = np.log2(steps) if log_x else steps
    expected = np.trapezoid(values, x) / (x[-1] - x[0])
    got = area_under_curve(torch.as_tensor(steps), pd.Series(values), log_x=log_x)
    assert got == pytest.approx(expected, rel=1e-12)


def test_aulc_of_a_constant_is_the_constant():
    assert area_under_curve([0, 3, 100, 1000], [0.7] * 4) == pytest.approx(0.7)


@pytest.mark.parametrize(("steps", "values", "kwargs", "error", "match"), [
    ([0, 10], [1.0, 2.0], {"log_x": True}, RangeError, "drop the step-0"),
    ([0, 10, 10], [1.0, 2.0, 3.0], {}, ConfigError, "increase strictly"),
    ([0, 10, 5], [1.0, 2.0, 3.0], {}, ConfigError, "increase strictly"),
    ([0, 10], [1.0], {}, ShapeError, "one value per step"),
    ([0], [1.0], {}, ShapeError, "at least 2"),
    ([0, 10], [1.0, math.nan], {}, NonFiniteError, "finite"),
    ([[0, 10]], [[1.0, 2.0]], {}, ShapeError, "1-D"),
])
def test_aulc_bad_curves(steps, values, kwargs, error, match):
    with pytest.raises(error, match=match):
        area_under_curve(steps, values, **kwargs)


STEPS = [0, 10, 20, 30]
LOSS = [1.0, 0.8, 0.5, 0.3]


def test_steps_to_threshold_grid_and_interpolated():
    first = steps_to_threshold(STEPS, LOSS, 0.6)
    assert first.step == 20 and not first.censored and float(first) == 20
    # crossing between (10, 0.8) and (20, 0.5): 10 + 10·(0.6 − 0.8)/(0.5 − 0.8)
    assert steps_to_threshold(STEPS, LOSS, 0.6, interpolate=True).step == pytest.approx(
        10 + 20 / 3)
    assert steps_to_threshold(STEPS, LOSS, 0.5).step == 20  # reaching it exactly counts
    assert steps_to_threshold(STEPS, LOSS, 2.0, interpolate=True).step == 0  # at the start


def test_steps_to_threshold_censored():
    result = steps_to_threshold(STEPS, LOSS, 0.1)
    assert result.censored and math.isnan(result.step)


def test_steps_to_threshold_accuracy_mode():
    acc = [0.25, 0.7, 0.95, 0.99]
    assert steps_to_threshold(STEPS, acc, 0.95, mode="accuracy").step == 20
    assert steps_to_threshold(STEPS, acc, 0.8, mode="accuracy", interpolate=True).step == (
        pytest.approx(10 + 10 * 0.1 / 0.25))
    assert steps_to_threshold(STEPS, acc, 0.999, mode="accuracy").censored
    # in loss mode the same numbers reach 0.95 at once
    assert steps_to_threshold(STEPS, acc, 0.95).step == 0


def test_steps_to_threshold_ema_matches_pandas():
    rng = np.random.default_rng(1)
    steps = np.arange(0, 500, 10)
    loss = np.exp(-steps / 150) + 0.1 * rng.random(steps.size)
    smooth = pd.Series(loss).ewm(alpha=1 - 0.8, adjust=False).mean().to_numpy()
    expected = steps[np.argmax(smooth <= 0.3)]
    assert steps_to_threshold(steps, loss, 0.3, ema=0.8).step == expected
    # smoothing delays the crossing of a noisy decreasing curve
    assert expected >= steps_to_threshold(steps, loss, 0.3).step
    # by hand with α = 0.5: 1, 0.9, 0.7, 0.5
    assert steps_to_threshold(STEPS, LOSS, 0.6, ema=0.5).step == 30


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"mode": "error"}, "mode"), ({"ema": 1.0}, "ema"), ({"ema": -0.1}, "ema"),
])
def test_steps_to_threshold_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        steps_to_threshold(STEPS, LOSS, 0.5, **kwargs)
    with pytest.raises(ConfigError, match="threshold"):
        steps_to_threshold(STEPS, LOSS, math.nan)


CELLS = {("mlp", "leace"): [3.0, 3.4, 2.9], ("mlp", "control"): [2.0, 2.2, 2.1, 1.9],
         ("lenet", "leace"): [2.5, 2.4, 2.8, 2.6, 2.7], ("lenet", "control"): [1.8, 2.0]}


def did_frame(cells=CELLS) -> pd.DataFrame:
    rows = [{"arch": a, "eraser": e, "mdl": v, "seed": i}
            for (a, e), values in cells.items() for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_did_value_and_se_use_the_seeds_of_each_cell():
    result = difference_in_differences(did_frame(), value="mdl", groups=("mlp", "lenet"),
                                       conditions=("leace", "control"))
    m = {k: np.mean(v) for k, v in CELLS.items()}
    expected = (m["mlp", "leace"] - m["lenet", "leace"]) - (m["mlp", "control"]
                                                             - m["lenet", "control"])
    assert result.value == pytest.approx(expected)
    se = math.sqrt(sum(np.var(v, ddof=1) / len(v) for v in CELLS.values()))
    assert result.se == pytest.approx(se)
    # the reference's hard-coded n = 10 would give a different (too small) SE
    assert result.se > math.sqrt(sum(np.var(v, ddof=1) / 10 for v in CELLS.values()))
    assert result.counts == {k: len(v) for k, v in CELLS.items()}
    assert result.means == pytest.approx(m)
    assert not result.paired


def test_did_paired_by_seed_matches_scipy_sem():
    rng = np.random.default_rng(2)
    cells = {k: list(rng.normal(np.mean(v), 0.2, 6)) for k, v in CELLS.items()}
    frame = did_frame(cells)
    frame = frame[~((frame["arch"] == "lenet") & (frame["eraser"] == "control")
                    & (frame["seed"] == 5))]  # seed 5 misses a cell: dropped from the pairs
    result = difference_in_differences(frame, value="mdl", groups=("mlp", "lenet"),
                                       conditions=("leace", "control"), pair_by="seed")
    per_seed = np.array([(cells["mlp", "leace"][s] - cells["lenet", "leace"][s])
                         - (cells["mlp", "control"][s] - cells["lenet", "control"][s])
                         for s in range(5)])
    assert result.paired and set(result.counts.values()) == {5}
    assert result.value == pytest.approx(per_seed.mean())
    assert result.se == pytest.approx(stats.sem(per_seed))


def test_did_single_seed_has_no_se():
    cells = {k: v[:1] for k, v in CELLS.items()}
    result = difference_in_differences(did_frame(cells), value="mdl", groups=("mlp", "lenet"),
                                       conditions=("leace", "control"))
    assert math.isnan(result.se) and result.value == pytest.approx(
        (3.0 - 2.5) - (2.0 - 1.8))


@pytest.mark.parametrize(("frame", "kwargs", "error", "match"), [
    (did_frame()[lambda f: f["arch"] != "lenet"], {}, LabelError, "arch='lenet'"),
    (did_frame(), {"value": "bits"}, ConfigError, "no column"),
    (did_frame(), {"groups": ("mlp", "mlp")}, ConfigError, "groups"),
    (did_frame().assign(seed=0), {"pair_by": "seed"}, LabelError, "several rows"),
    (did_frame().assign(mdl=np.nan), {}, NonFiniteError, "mdl"),
    ("not a frame", {}, ConfigError, "DataFrame"),
])
def test_did_bad_input(frame, kwargs, error, match):
    options = {"value": "mdl", "groups": ("mlp", "lenet"), "conditions": ("leace", "control"),
               **kwargs}
    with pytest.raises(error, match=match):
        difference_in_differences(frame, **options)


@pytest.mark.parametrize("threshold", [0.6, np.float32(0.6), torch.tensor(0.6)])
def test_threshold_may_be_a_numpy_or_torch_number(threshold):
    got = steps_to_threshold([0, 10, 20, 30], np.array([2.0, 1.0, 0.5, 0.2]), threshold,
                             ema=np.float64(0.0))
    assert got.step == 20 and not got.censored
    with pytest.raises(ConfigError, match="threshold"):
        steps_to_threshold([0, 10], [1.0, 0.5], torch.tensor([0.6, 0.7]))
