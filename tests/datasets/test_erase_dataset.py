"""Dataset-level erasure: fit on un-augmented training images, erase splits and batches."""

from __future__ import annotations

import pytest
import torch

from featurebias.datasets import (
    CropFlip,
    ErasedData,
    colour_shape,
    digits,
    erase_dataset,
    sequence_task,
)
from featurebias.erasure import LeaceFitter, QuadraticFitter
from featurebias.errors import ConfigError, LabelError, ShapeError


@pytest.fixture(scope="module")
def task():
    return digits(seed=0)


def class_mean_gap(x: torch.Tensor, y: torch.Tensor) -> float:
    """Largest distance of a class mean from the overall mean (flattened inputs, float64)."""
    flat = x.reshape(len(x), -1).double()
    means = torch.stack([flat[y == c].mean(0) for c in y.unique()])
    return float((means - flat.mean(0)).abs().max())


@pytest.mark.parametrize("method", ["leace", "orth", "oracle", "qleace", "alf-qleace"])
def test_class_means_coincide_on_the_erased_training_set(task, method):
    erased = erase_dataset(task, method)
    x, y = erased.train
    assert x.shape == task.train[0].shape and x.dtype == task.train[0].dtype
    assert torch.equal(y, task.train[1])
    assert class_mean_gap(*task.train) > 0.1  # there was something to erase
    assert class_mean_gap(x, y) < 1e-6
    assert erased.transform is None and erased.info["train_erased"]
    assert erased.info["method"] == method


@pytest.mark.parametrize("method", ["identity", "none", "control", "random"])
def test_controls_leave_class_means_apart(task, method):
    erased = erase_dataset(task, method, seed=1)
    assert class_mean_gap(*erased.train) > 0.1
    if method != "random":
        assert torch.equal(erased.train[0], task.train[0])
    else:  # a rank-(k − 1) random subspace is gone: the change has rank 9
        delta = (erased.train[0] - task.train[0]).reshape(len(task.train[0]), -1).double()
        assert int(torch.linalg.matrix_rank(delta, atol=1e-4)) == 9


def test_leace_plumbing_matches_a_direct_fit(task):
    erased = erase_dataset(task, "leace")
    flat = task.train[0].reshape(len(task.train[0]), -1).double()
    eraser = LeaceFitter.fit(flat, task.train[1], z_dim=10).eraser
    assert torch.allclose(erased.eraser.P, eraser.P, atol=1e-10)
    for split in ("val", "test"):
        x = task.split(split)[0]
        want = eraser(x.reshape(len(x), -1).double()).float().reshape(x.shape)
        assert torch.allclose(getattr(erased, split)[0], want, atol=1e-6)
    # a fitted eraser can be passed in instead of a method name
    again = erase_dataset(task, eraser)
    assert torch.allclose(again.train[0], erased.train[0], atol=1e-6)
    assert again.info["method"] == "LeaceEraser"


def test_identity_augment_makes_the_transform_the_pre_erased_data(task):
    pre = erase_dataset(task, "leace")
    lazy = erase_dataset(task, "leace", augment=lambda x, y: (x, y))
    assert torch.equal(lazy.train[0], task.train[0])  # kept raw: the transform erases
    assert not lazy.info["train_erased"]
    x, y = lazy.transform(*task.train)
    assert torch.allclose(x, pre.train[0], atol=1e-5) and torch.equal(y, task.train[1])
    assert torch.equal(lazy.val[0], pre.val[0])  # val/test: erased, never augmented


def test_transform_augments_then_erases(task):
    erased = erase_dataset(task, "leace", augment="translate", seed=3)
    x, y = task.train[0][:64], task.train[1][:64]
    got, labels = erased.transform(x, y)
    shifted = CropFlip(1, flip=False, seed=3)(x, y)[0]
    flat = shifted.reshape(64, -1)
    want = erased.eraser(flat).reshape(x.shape)
    assert torch.allclose(got, want, atol=1e-6) and torch.equal(labels, y)
    assert not torch.allclose(got, erased.eraser(x.reshape(64, -1)).reshape(x.shape))
    erased.transform.reset()  # a second training run sees the same augmentations
    assert torch.equal(erased.transform(x, y)[0], got)


@pytest.mark.parametrize("method", ["qleace", "oracle"])
def test_label_dependent_erasers_get_the_batch_labels(task, method):
    erased = erase_dataset(task, method, augment=lambda x, y: (x, y))
    x, y = task.train[0][:50], task.train[1][:50]
    got = erased.transform(x, y)[0]
    assert torch.allclose(got, erased.eraser(x.reshape(50, -1), y).reshape(x.shape), atol=1e-6)
    other = (y + 1) % 10
    assert not torch.allclose(got, erased.transform(x, other)[0], atol=1e-3)


@pytest.mark.filterwarnings("ignore:Wasserstein barycenter did not converge")
def test_qleace_fit_uses_shrinkage_by_default(task):
    flat = task.train[0].reshape(len(task.train[0]), -1).double()
    shrunk = QuadraticFitter.fit(flat, task.train[1], shrinkage=True).eraser
    erased = erase_dataset(task, "qleace")
    assert torch.allclose(erased.eraser.ot_maps, shrunk.ot_maps, atol=1e-8)
    plain = erase_dataset(task, "qleace", shrinkage=False)
    assert not torch.allclose(plain.eraser.ot_maps, shrunk.ot_maps, atol=1e-3)


def test_iterative_is_applied_to_whole_splits():
    small = digits(seed=0, flat=True)
    pair = (small.train[0][:200], small.train[1][:200])
    erased = erase_dataset(pair, "iterative", augment=lambda x, y: (x + 0, y), max_iter=5,
                           w_mean=1.0, w_cov=1.0)
    x, y = erased.train
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    before = erased.eraser.moment_gaps(pair[0], y)
    after = erased.eraser.moment_gaps(x, y)
    assert after["mean_gap"] < before["mean_gap"]
    # the transform only augments: the split is already erased
    assert torch.equal(erased.transform(x, y)[0], x)
    assert erased.info["train_erased"]
    # a fitted iterative eraser passed in is treated the same way
    again = erase_dataset(pair, erased.eraser, augment=lambda x, y: (x, y))
    assert torch.allclose(again.train[0], x, atol=1e-6) and again.info["train_erased"]


def test_multi_feature_task_needs_a_column():
    images = colour_shape(256, 32, 32, size=8, radius=(0.25, 0.4), seed=0)
    erased = erase_dataset(images, "leace", feature="colour")
    x, y = erased.train
    assert class_mean_gap(images.train[0], y[:, 0]) > 0.05
    assert class_mean_gap(x, y[:, 0]) < 1e-6
    assert class_mean_gap(x, y[:, 1]) > 1e-3  # shape was not the target
    assert isinstance(erased, ErasedData) and erased.feature_names == ("colour", "shape")
    by_index = erase_dataset(images, "leace", feature=0)
    assert torch.equal(by_index.train[0], x)
    with pytest.raises(LabelError, match="feature="):
        erase_dataset(images, "leace")
    with pytest.raises(ConfigError, match="unknown feature"):
        erase_dataset(images, "leace", feature="size")


def test_pair_input(task):
    x, y = task.train
    erased = erase_dataset((x, y), "leace")
    assert class_mean_gap(*erased.train) < 1e-6
    assert len(erased.val[0]) == 0 and len(erased.test[0]) == 0
    assert erased.num_classes == (10,)


def test_inputs_are_not_modified(task):
    before = task.train[0].clone()
    erase_dataset(task, "qleace", augment="crop")
    assert torch.equal(task.train[0], before)


@pytest.mark.parametrize("make, error, match", [
    (lambda t: erase_dataset(t, "lace"), ConfigError, "method"),
    (lambda t: erase_dataset(t, 3), ConfigError, "method name"),
    (lambda t: erase_dataset(t, "leace", svd_tolerance=0.1), ConfigError, "options"),
    (lambda t: erase_dataset(t, "identity", rank=3), ConfigError, "no options"),
    (lambda t: erase_dataset(t, "leace", augment="mixup"), ConfigError, "augment"),
    (lambda t: erase_dataset(t.train[0], "leace"), ConfigError, "pair"),
    (lambda t: erase_dataset((t.train[0], t.train[1].float()), "leace"), LabelError, "integer"),
    (lambda t: erase_dataset((t.train[0], t.train[1] - 1), "leace"), LabelError, "negative"),
    (lambda t: erase_dataset((t.train[0], t.train[1][:-1]), "leace"), ShapeError, "label"),
    (lambda t: erase_dataset((t.train[0], t.train[1] * 0), "leace"), LabelError, "two classes"),
    (lambda t: erase_dataset((t.train[0].long(), t.train[1]), "leace"), ConfigError,
     "floating"),
    (lambda t: erase_dataset(t, LeaceFitter.fit(torch.randn(50, 7), torch.arange(50) % 2)
                             .eraser), ShapeError, "7 features"),
    (lambda t: erase_dataset(t, LeaceFitter.fit(torch.randn(50, 64), torch.arange(50) % 2)
                             .eraser, shrinkage=True), ConfigError, "already fitted"),
    (lambda t: erase_dataset(sequence_task(sizes=(8, 8, 8)), "leace"), ConfigError,
     "sequence"),
])
def test_bad_input_raises(task, make, error, match):
    with pytest.raises(error, match=match):
        make(task)


def test_val_labels_out_of_range_are_caught():
    good = digits(seed=0)
    bad_val = (good.val[0], good.val[1] + 10)
    broken = type(good)(good.train, bad_val, good.test, good.num_classes, good.feature_names)
    with pytest.raises(LabelError, match="val labels"):
        erase_dataset(broken, "leace")
