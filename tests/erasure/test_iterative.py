"""Gradient-based iterative erasure (SCIENCE §3.5): no guarantee, but measurable progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from featurebias.erasure import IterativeEraser, IterativeFitter
from featurebias.errors import LabelError, RangeError


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = torch.tensor(data.data[:300] / 16.0)
    y = torch.tensor(data.target[:300])
    return x, y


@pytest.fixture(scope="module")
def erased(digits):
    x, y = digits
    eraser = IterativeEraser.fit(x, shrinkage=True, w_mean=1.0, w_cov=1.0, max_iter=30)
    return eraser, eraser(x, y)


def test_objective_decreases(digits, erased):
    x, y = digits
    eraser, out = erased
    ids = y.long()
    before = eraser._objective(x.clamp(eraser.eps, 1 - eraser.eps), x, ids, 10)
    after = eraser._objective(out, x, ids, 10)
    assert after < before


def test_pixels_stay_in_unit_interval(erased):
    _, out = erased
    assert out.min() >= 0 and out.max() <= 1


def test_moment_gaps_shrink(digits, erased):
    x, y = digits
    eraser, out = erased
    before, after = eraser.moment_gaps(x, y), eraser.moment_gaps(out, y)
    assert after["mean_gap"] < before["mean_gap"]
    assert after["cov_gap"] < before["cov_gap"]


def test_a_class_id_absent_from_the_batch_is_ignored(digits):
    # Ids {0, 2}: class 1 has no rows, so its (empty) moments must not enter the objective.
    x, y = digits
    rows = (y == 3) | (y == 7)
    eraser = IterativeEraser.fit(x, max_iter=5)
    gapped = eraser(x[rows], torch.where(y[rows] == 3, 0, 2))
    compact = eraser(x[rows], torch.where(y[rows] == 3, 0, 1))
    assert torch.isfinite(gapped).all()
    torch.testing.assert_close(gapped, compact)


def test_numpy_integers_are_stored_as_ints(digits, tmp_path):
    x, y = digits
    fitter = IterativeFitter(64, max_iter=np.int64(2)).update(x)
    assert type(fitter.options["max_iter"]) is int
    fitter.eraser.save(tmp_path / "iterative.safetensors")  # its JSON header holds max_iter


def test_image_shape_and_dtype_kept(digits):
    x, y = digits
    images = x[:40].reshape(40, 1, 8, 8).float()
    eraser = IterativeFitter(64, max_iter=3).update(images).eraser
    out = eraser(images, y[:40])
    assert out.shape == images.shape and out.dtype == torch.float32


def test_bad_input(digits):
    x, y = digits
    eraser = IterativeEraser.fit(x, max_iter=2)
    with pytest.raises(RangeError, match=r"\[0, 1\]"):
        eraser(x * 2, y)
    lonely = y.clone()
    lonely[0] = 11  # a class with a single sample
    with pytest.raises(LabelError, match="2 samples"):
        eraser(x, lonely)
    with pytest.raises(LabelError):
        eraser(x)
