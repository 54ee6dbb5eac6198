"""`TaskData`, the seeded (stratified) split helper, and scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from featurebias.datasets import TaskData, digits, split_indices
from featurebias.errors import ConfigError, ShapeError


@pytest.mark.parametrize("n, sizes", [(10, (3, 3, 4)), (100, (50, 20)), (7, (0, 7)), (5, ())])
def test_split_indices_are_disjoint_with_the_sizes_asked(n, sizes):
    parts = split_indices(n, sizes, seed=1)
    assert [len(p) for p in parts] == list(sizes)
    joined = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    assert joined.unique().numel() == joined.numel() and bool((joined < n).all())
    assert all(torch.equal(p, p.sort().values) for p in parts)


def test_split_indices_seeded():
    a = split_indices(1000, (800, 200), seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, split_indices(1000, (800, 200), seed=3),
                                                 strict=True))
    assert not torch.equal(a[1], split_indices(1000, (800, 200), seed=4)[1])


def test_stratified_split_keeps_class_proportions():
    g = torch.Generator().manual_seed(0)
    labels = torch.multinomial(torch.tensor([0.6, 0.25, 0.1, 0.05]), 3001, replacement=True,
                               generator=g)
    sizes = (1800, 700, 501)
    parts = split_indices(3001, sizes, seed=2, stratify=labels)
    counts = torch.bincount(labels, minlength=4).double()
    for part, size in zip(parts, sizes, strict=True):
        got = torch.bincount(labels[part], minlength=4).double()
        # systematic sampling: within about one row of the proportional share, per class
        assert (got - counts * size / 3001).abs().max() <= 2
    # an unstratified split of the same sizes drifts much more for some seed (sanity check
    # that the bound above is not trivially met)
    drift = max((torch.bincount(labels[split_indices(3001, sizes, seed=s)[2]], minlength=4)
                 .double() - counts * 501 / 3001).abs().max() for s in range(10))
    assert drift > 2


def test_split_indices_bad_input():
    with pytest.raises(ConfigError, match="sum"):
        split_indices(10, (6, 6))
    with pytest.raises(ConfigError, match="sizes"):
        split_indices(10, (-1, 2))
    with pytest.raises(ShapeError, match="stratify"):
        split_indices(10, (5, 5), stratify=torch.zeros(9))


def test_taskdata_validates_pairs():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    TaskData((x, y), (x, y), (x, y), (2,), ("y",))
    with pytest.raises(ShapeError, match="targets"):
        TaskData((x, y[:3]), (x, y), (x, y), (2,), ("y",))
    with pytest.raises(ShapeError, match="pair"):
        TaskData((x,), (x, y), (x, y), (2,), ("y",))
    with pytest.raises(ShapeError, match="one per column"):
        TaskData((x, y), (x, y), (x, y), (2, 2), ("y",))
    task = TaskData((x, y), (x, y), (x, y + 1), (2,), ("y",))
    assert torch.equal(task.targets("test")["y"], y + 1)
    with pytest.raises(ConfigError, match="split"):
        task.split("holdout")


def test_digits_splits_disjoint_stratified_and_faithful():
    task = digits(seed=0)
    bunch = load_digits()
    idx = task.info["indices"]
    everything = torch.cat([idx["train"], idx["val"], idx["test"]])
    assert everything.sort().values.tolist() == list(range(1797))
    assert [len(idx[s]) for s in ("train", "val", "test")] == [1079, 359, 359]
    labels = torch.as_tensor(bunch.target)
    counts = torch.bincount(labels, minlength=10).double()
    for split in ("train", "val", "test"):
        x, y = task.split(split)
        assert x.shape == (len(idx[split]), 1, 8, 8) and x.dtype == torch.float32
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.equal(y, labels[idx[split]])
        expected = torch.as_tensor(bunch.images[idx[split].numpy()], dtype=torch.float32) / 16
        assert torch.equal(x[:, 0], expected)
        share = torch.bincount(y, minlength=10).double() - counts * len(y) / 1797
        assert share.abs().max() <= 2
    assert task.num_classes == (10,) and task.feature_names == ("digit",)


def test_digits_flat_seeded_and_fractions():
    a, b, c = digits(flat=True, seed=1), digits(flat=True, seed=1), digits(flat=True, seed=2)
    assert a.train[0].shape[1:] == (64,)
    assert torch.equal(a.train[0], b.train[0]) and not torch.equal(a.val[1], c.val[1])
    small = digits(val_fraction=0.1, test_fraction=0.0)
    assert (len(small.train[0]), len(small.val[0]), len(small.test[0])) == (1617, 180, 0)
    for bad in ({"val_fraction": 1.0}, {"test_fraction": -0.1},
                {"val_fraction": 0.6, "test_fraction": 0.5}):
        with pytest.raises(ConfigError):
            digits(**bad)
