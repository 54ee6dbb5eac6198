"""Helpers shared by the analyses: the image datasets, a trained model with its activations,
and features by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import Tensor, nn

from featurebias.datasets import TaskData, cifar10, digits, svhn
from featurebias.datasets.base import split_indices, take
from featurebias.hooks import collect
from featurebias.training import TrainResult


@dataclasses.dataclass
class Trained:
    """A trained model, its training run, its sites and their test activations `[n, d]`."""

    name: str
    model: nn.Module
    result: TrainResult
    sites: list[str]
    acts: dict[str, Tensor]
    task: TaskData


def activations(model: nn.Module, x: Tensor, sites: list[str], reduce=None,
                batch_size: int = 512) -> dict[str, Tensor]:
    """`{site: activations}` of `model` on `x`, in eval mode and without gradients.

    `x` goes to the model's device; the activations come back on the CPU, where the analyses'
    features and conditions live (the tables measured from them are small).

    Args:
        reduce: as in `featurebias.hooks.collect` (None keeps every token position).
    """
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            store = collect(model, x.to(device).split(batch_size), sites, reduce=reduce,
                            to="cpu", progress=False)
    finally:
        model.train(was)
    return {s: store[s] for s in sites}


def test_features(task: TaskData) -> dict[str, Tensor]:
    """The test split's feature values by name (the sequence task lists them in output order)."""
    y = task.test[1]
    if task.info.get("format") == "sequence":
        y = y[:, list(task.info["output_positions"])]
    return {name: y[:, j] for j, name in enumerate(task.feature_names)}


def load_image_task(config) -> TaskData:
    """`config.dataset`: "digits" (embedded) or "cifar10"/"svhn" read from `config.data_dir`,
    split with `config.seed`, the training rows capped at `config.max_train` (stratified)."""
    if config.dataset == "digits":
        task = digits(val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                      seed=config.seed)
    else:
        loader = cifar10 if config.dataset == "cifar10" else svhn
        task = loader(Path(config.data_dir), val_fraction=config.val_fraction,
                      seed=config.seed, progress=False)
    n = len(task.train[1])
    if config.max_train is not None and config.max_train < n:
        keep, _ = split_indices(n, (config.max_train, n - config.max_train), seed=config.seed,
                                stratify=task.train[1])
        task = dataclasses.replace(task, train=take(task.train, keep))
    return task
