"""Helpers shared by the analyses: a trained model with its activations, and features by name."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from featurebias.datasets import TaskData
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
