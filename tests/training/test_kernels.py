"""Kernel distance, velocity and target alignment (against scipy and linear CKA), KernelLogger."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine

from featurebias import models
from featurebias.errors import ConfigError, LabelError, RangeError, ShapeError
from featurebias.similarity import cka
from featurebias.training import (
    KernelLogger,
    LinearisedTrainer,
    TrainConfig,
    empirical_ntk,
    kernel_alignment,
    kernel_distance,
    kernel_velocity,
    train,
)

F64 = torch.float64


def psd(n: int, rank: int, seed: int, o: int | None = None) -> torch.Tensor:
    """A random PSD kernel `[n, n]`, or `[n, n, o, o]` (the NO × NO matrix is PSD)."""
    g = torch.Generator().manual_seed(seed)
    if o is None:
        a = torch.randn(n, rank, generator=g, dtype=F64)
        return a @ a.T
    a = torch.randn(n * o, rank, generator=g, dtype=F64)
    return (a @ a.T).reshape(n, o, n, o).permute(0, 2, 1, 3)


@pytest.mark.parametrize("o", [None, 3])
@pytest.mark.parametrize("seed", range(4))
def test_distance_is_scipy_cosine_distance_and_in_unit_interval(seed, o):
    k1, k2 = psd(6, 3, seed, o), psd(6, 2, seed + 10, o)
    d = kernel_distance(k1, k2)
    assert d == pytest.approx(cosine(k1.reshape(-1).numpy(), k2.reshape(-1).numpy()), abs=1e-12)
    assert 0 <= d <= 1
    assert kernel_distance(k2, k1) == pytest.approx(d, abs=1e-15)
    for c in (1.0, 0.01, 250.0):
        assert kernel_distance(k1, c * k1) < 1e-14


def test_distance_extremes():
    a = torch.diag(torch.tensor([1.0, 0.0]))
    b = torch.diag(torch.tensor([0.0, 1.0]))
    assert kernel_distance(a, b) == 1.0  # orthogonal PSD kernels
    assert kernel_distance(a, -a) == 2.0  # not PSD: the range is [0, 2]


@pytest.mark.parametrize(("k1", "k2", "error", "match"), [
    (torch.ones(3, 3), torch.ones(3, 4), ShapeError, "same examples"),
    (torch.ones(3), torch.ones(3), ShapeError, r"\[n1, n2\]"),
    (torch.ones(2, 2, 3, 4), torch.ones(2, 2, 3, 4), ShapeError, "o, o"),
    (torch.zeros(3, 3), torch.ones(3, 3), RangeError, "k1 is zero"),
    (torch.ones(0, 3), torch.ones(0, 3), ShapeError, "empty"),
    (torch.full((2, 2), math.nan), torch.ones(2, 2), Exception, "NaN"),
])
def test_distance_bad_input(k1, k2, error, match):
    with pytest.raises(error, match=match):
        kernel_distance(k1, k2)


def test_velocity_is_distance_over_step_gap():
    kernels = [psd(5, 2, s) for s in range(4)]
    steps = [0, 10, 15, 40]
    v = kernel_velocity(kernels, steps)
    expected = [kernel_distance(kernels[i], kernels[i + 1]) / (steps[i + 1] - steps[i])
                for i in range(3)]
    assert v.dtype == F64 and v.shape == (3,)
    torch.testing.assert_close(v, torch.tensor(expected, dtype=F64), atol=1e-15, rtol=0)
    torch.testing.assert_close(kernel_velocity(torch.stack(kernels), torch.tensor(steps)), v)
    torch.testing.assert_close(kernel_velocity(kernels[:2]),  # default steps 0, 1
                               torch.tensor([expected[0] * 10], dtype=F64), atol=1e-15, rtol=0)


@pytest.mark.parametrize(("kernels", "steps", "error", "match"), [
    ([torch.eye(2)], None, ShapeError, "at least 2"),
    ([torch.eye(2)] * 3, [0, 1], ShapeError, "one step per kernel"),
    ([torch.eye(2)] * 3, [0, 2, 2], RangeError, "strictly increasing"),
    (torch.ones(3, 2), None, ShapeError, "stacked kernels"),
])
def test_velocity_bad_input(kernels, steps, error, match):
    with pytest.raises(error, match=match):
        kernel_velocity(kernels, steps)


def test_alignment_of_the_target_kernel_is_one():
    y = torch.tensor([0, 2, 1, 1, 0, 2, 2, 0])
    onehot = torch.nn.functional.one_hot(y).double()
    target_kernel = onehot @ onehot.T
    assert kernel_alignment(target_kernel, y) == pytest.approx(1, abs=1e-12)
    assert kernel_alignment(target_kernel, onehot) == pytest.approx(1, abs=1e-12)
    # Centring removes constant offsets; the alignment is scale-invariant.
    assert kernel_alignment(3 * target_kernel + 5, y) == pytest.approx(1, abs=1e-12)
    relabelled = torch.tensor([2, 0, 1, 1, 2, 0, 0, 2])  # the same partition
    assert kernel_alignment(target_kernel, relabelled) == pytest.approx(1, abs=1e-12)
    assert kernel_alignment(target_kernel, y.roll(1)) < 0.5  # a different partition


@pytest.mark.parametrize("seed", range(3))
def test_alignment_is_linear_cka_with_the_one_hot_targets(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 4, generator=g, dtype=F64)
    y = torch.arange(12) % 3
    onehot = torch.nn.functional.one_hot(y).double()
    assert kernel_alignment(x @ x.T, y) == pytest.approx(cka(x, onehot), abs=1e-10)
    # Explicit centring matrices, as written in SCIENCE.md §7.4.
    h = torch.eye(12, dtype=F64) - 1 / 12
    kc, yc = h @ x @ x.T @ h, h @ onehot
    t = yc @ yc.T
    expected = float((kc * t).sum() / (kc.norm() * t.norm()))
    assert kernel_alignment(x @ x.T, y) == pytest.approx(expected, abs=1e-12)
    # A full kernel [n, n, o, o] is traced over the outputs.
    full = psd(12, 5, seed, o=2)
    traced = full.diagonal(dim1=2, dim2=3).sum(-1)
    assert kernel_alignment(full, y) == pytest.approx(kernel_alignment(traced, y), abs=1e-14)


@pytest.mark.parametrize(("k", "y", "error", "match"), [
    (torch.eye(4), torch.zeros(4, dtype=torch.long), RangeError, "constant"),
    (torch.eye(4), torch.tensor([0, 1, 0]), ShapeError, "3 labels for the 4 rows of x"),
    (torch.eye(4), torch.ones(3, 2), ShapeError, r"\[4, m\]"),
    (torch.ones(4, 3), torch.tensor([0, 1, 0, 1]), ShapeError, "square"),
    (torch.eye(4), torch.tensor([0, 1, -1, 1]), LabelError, "ids in"),
])
def test_alignment_bad_input(k, y, error, match):
    with pytest.raises(error, match=match):
        kernel_alignment(k, y)


def task():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 5, generator=g, dtype=F64), torch.randint(0, 3, (40,), generator=g)


def net():
    return models.mlp(5, (8,), 3, activation="tanh", seed=2).double()


CONFIG = TrainConfig(steps=30, batch_size=20, optimizer="sgd", lr=0.3, eval_every=10,
                     checkpoints=3)


def test_logger_records_distance_velocity_alignment():
    x, y = task()
    logger = KernelLogger(x[:10], every=10, targets=y[:10], mode="jacobian")
    result = train(net(), (x, y), CONFIG, callbacks=[logger], progress=False)
    frame = logger.frame
    assert list(frame.columns) == ["step", "kernel_distance", "relative_change",
                                   "kernel_velocity", "alignment", "relinearisations"]
    assert frame["step"].tolist() == [0, 10, 20, 30] and sorted(logger.kernels) == [0, 10, 20, 30]
    first = frame.iloc[0]
    assert first["kernel_distance"] < 1e-15 and first["relative_change"] == 0
    assert math.isnan(first["kernel_velocity"])
    assert (frame["relinearisations"] == 0).all()
    kernels = [logger.kernels[s] for s in (0, 10, 20, 30)]
    torch.testing.assert_close(torch.tensor(frame["kernel_velocity"].to_numpy()[1:]),
                               kernel_velocity(kernels, [0, 10, 20, 30]), atol=1e-15, rtol=0)
    for row, k in zip(frame.itertuples(), kernels, strict=True):
        assert row.kernel_distance == pytest.approx(kernel_distance(kernels[0], k), abs=1e-15)
        assert row.alignment == pytest.approx(kernel_alignment(k, y[:10]), abs=1e-14)
        assert row.relative_change == pytest.approx(
            float((k - kernels[0]).norm() / kernels[0].norm()), abs=1e-14)
    assert frame["kernel_distance"].iloc[-1] > 0
    # The kernels are the network's NTK at those steps (checkpoints at 0, 30).
    torch.testing.assert_close(logger.kernels[0], empirical_ntk(result.model_at(0), x[:10]))
    torch.testing.assert_close(logger.kernels[30], empirical_ntk(result.model, x[:10]))


def test_logger_steps_and_relinearisations():
    x, y = task()
    logger = KernelLogger(x[:8], steps=[7, 20, 25], keep_kernels=False)
    LinearisedTrainer(5).train(net(), (x, y), CONFIG, callbacks=[logger], progress=False)
    frame = logger.frame
    assert frame["step"].tolist() == [0, 7, 20, 25] and logger.kernels == {}
    assert frame["relinearisations"].tolist() == [0, 1, 4, 5]
    assert frame["alignment"].isna().all()
    # Between feature updates f_lin's kernel is fixed: after step 20 (update 4) until step 25.
    logger = KernelLogger(x[:8], steps=[21, 24])
    LinearisedTrainer(5).train(net(), (x, y), CONFIG, callbacks=[logger], progress=False)
    assert logger.frame["kernel_velocity"].iloc[-1] < 1e-14


def test_a_logger_passed_to_a_second_run_logs_that_run_afresh():
    x, y = task()
    logger = KernelLogger(x[:8], every=10)
    train(net(), (x, y), CONFIG, callbacks=[logger], progress=False)
    other = models.mlp(5, (8,), 3, activation="tanh", seed=7).double()
    result = train(other, (x, y), CONFIG, callbacks=[logger], progress=False)
    assert logger.frame["step"].tolist() == [0, 10, 20, 30]
    # Distances are measured from the second run's own initial kernel.
    assert logger.frame["kernel_distance"].iloc[0] < 1e-15
    torch.testing.assert_close(logger.kernels[0], empirical_ntk(result.model_at(0), x[:8]))
    # A first run too short to log past step 0 leaves nothing behind either.
    short = KernelLogger(x[:8], every=100)
    train(net(), (x, y), CONFIG, callbacks=[short], progress=False)
    result = train(other, (x, y), CONFIG, callbacks=[short], progress=False)
    assert short.frame["step"].tolist() == [0]
    torch.testing.assert_close(short.kernels[0], empirical_ntk(result.model_at(0), x[:8]))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"probe_x": torch.ones(0, 5)}, ShapeError, "n >= 1"),
    ({"every": 0}, ConfigError, "every must be"),
    ({"steps": [3, -1]}, ConfigError, "steps"),
    ({"mode": "exact"}, ConfigError, "mode must be one of"),
    ({"targets": torch.zeros(3, dtype=torch.long)}, ShapeError, "one row per probe example"),
    ({"chunk_size": 0}, ConfigError, "chunk_size"),
])
def test_logger_bad_input(kwargs, error, match):
    kwargs = {"probe_x": torch.ones(4, 5), **kwargs}
    with pytest.raises(error, match=match):
        KernelLogger(**kwargs)


def test_frame_of_an_unused_logger_is_empty_with_columns():
    frame = KernelLogger(np.ones((3, 5))).frame
    assert frame.empty and "kernel_distance" in frame.columns
