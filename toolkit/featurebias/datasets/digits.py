"""scikit-learn's 8×8 digits: the embedded default real image dataset (no download)."""

from __future__ import annotations

import torch

from .base import TaskData, split_indices, split_sizes, take


def digits(*, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
           flat: bool = False) -> TaskData:
    """The 1797 digits of `sklearn.datasets.load_digits`, pixels / 16 in [0, 1], 10 classes.

    Args:
        val_fraction, test_fraction: shares of the rows in the val and test splits; the
            splits are disjoint, stratified by digit and drawn with `seed`.
        flat: x as `[n, 64]` instead of `[n, 1, 8, 8]`.

    Returns:
        `TaskData` with x float32, y `[n]` int64, `feature_names = ("digit",)`, and
        `info["indices"]`: each split's row numbers in the scikit-learn array.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32) / 16
    x = x.reshape(-1, 64) if flat else x[:, None]
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    n_train, n_val, n_test = split_sizes(len(y), val_fraction, test_fraction)
    parts = split_indices(len(y), (n_train, n_val, n_test), seed=seed, stratify=y)
    pairs = [take((x, y), idx) for idx in parts]
    info = {"source": "sklearn.datasets.load_digits", "seed": seed,
            "indices": dict(zip(("train", "val", "test"), parts, strict=True))}
    return TaskData(*pairs, num_classes=(10,), feature_names=("digit",), info=info)
