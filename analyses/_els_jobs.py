"""One cell of the erasure × architecture × seed grid: prequential MDL and a training run.

The erasers are fitted once, in the main process, and written with the data to a cache
folder; `cell` (run by `featurebias.training.sweep`, possibly in a spawned worker) reads them
back, so no worker refits an eraser or reloads a dataset.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from featurebias import erasure, models
from featurebias.datasets import ErasedData, EraseTransform, TaskData
from featurebias.datasets.augment import make_augment
from featurebias.training import TrainConfig, prequential_mdl, train

ARCHS = ("mlp", "resmlp", "lenet", "small_cnn")
# What each job returns, by table; `run` splits the stacked rows back into these.
COLUMNS = {
    "mdl": ["bits_per_sample", "codelength_bits", "uniform_bits", "compression",
            "mdl_reference_weighting", "num_classes", "n", "heldout"],
    "chunks": ["chunk", "train_size", "start", "end", "size", "bits", "bits_per_sample",
               "coder", "steps", "best_step"],
    "curves": ["step", "split", "feature", "loss", "accuracy"],
    "final": ["split", "loss_bits", "accuracy"],
}
INTEGERS = {"num_classes", "n", "heldout", "chunk", "train_size", "start", "end", "size",
            "step"}


def save_data(folder: Path, task: TaskData) -> None:
    """The raw training images and every split's labels, for the workers."""
    save_file({"train_x": task.train[0].contiguous(), "train_y": task.train[1].contiguous(),
               "val_y": task.val[1].contiguous(), "test_y": task.test[1].contiguous(),
               "num_classes": torch.tensor(task.num_classes[0])},
              str(folder / "data.safetensors"))


def save_erased(folder: Path, name: str, erased: ErasedData) -> None:
    """The fitted eraser and the erased (un-augmented) splits of method `name`."""
    erased.eraser.save(folder / f"{name}.eraser.safetensors")
    save_file({split: getattr(erased, split)[0].contiguous() for split in ("train", "val", "test")},
              str(folder / f"{name}.safetensors"))


def build_model(arch: str, shape: tuple[int, ...], num_classes: int, config, seed: int,
                device: str) -> nn.Module:
    """A fresh, seeded model of `arch` for images of `shape` (C, H, W)."""
    c, h, w = shape
    if arch == "mlp":
        model = models.mlp(c * h * w, config.mlp_hidden, num_classes,
                           activation=config.activation, seed=seed)
    elif arch == "resmlp":
        model = models.resmlp(c * h * w, config.resmlp_width, config.resmlp_depth, num_classes,
                              activation=config.activation, seed=seed)
    elif arch == "lenet":
        model = models.lenet(c, num_classes, image_size=(h, w), seed=seed)
    else:
        model = models.small_cnn(c, num_classes, config.cnn_width, config.cnn_depth,
                                 image_size=(h, w), seed=seed)
    return model.to(device)


class _Coded(nn.Module):
    """Reads the erased half of stacked `(raw, erased)` rows `[n, 2, C, H, W]`.

    `prequential_mdl` codes its chunks and early-stops on rows exactly as given, while its
    training batches go through the transform: stacking lets the coded and held-out rows be
    the erased images (un-augmented) and the training batches be augmented raw images erased
    afterwards, the paper's order.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x[:, 1] if x.ndim == 5 else x)


class _First:
    """The training transform applied to the raw half of stacked rows."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(x[:, 0], y)


def cell(eraser: str, arch: str, seed: int, *, config, cache: str) -> pd.DataFrame:
    """Prequential MDL and a fixed-budget training run of `arch` on data erased by `eraser`.

    Returns the rows of every table in `COLUMNS`, stacked, with a `table` column.
    """
    folder = Path(cache)
    data = load_file(str(folder / "data.safetensors"))
    erased = load_file(str(folder / f"{eraser}.safetensors"))
    y = {split: data[f"{split}_y"] for split in ("train", "val", "test")}
    shape = tuple(erased["train"].shape[1:])
    k = int(data["num_classes"])
    make = functools.partial(build_model, arch, shape, k, config, seed, config.device)

    raw, transform = _training_input(folder, eraser, data["train_x"], erased["train"], config,
                                     seed)
    optimiser = dict(optimizer=config.optimizer, lr=config.lr, batch_size=config.batch_size,
                     weight_decay=config.weight_decay, eval_every=config.eval_every)
    if transform is None or raw is erased["train"]:
        x_mdl, mdl_fn, mdl_transform = erased["train"], make, transform
    else:
        x_mdl = torch.stack([raw, erased["train"]], 1)
        mdl_fn, mdl_transform = (lambda: _Coded(make())), _First(transform)
    first = config.first_chunk or min(1024, 2 * max(config.batch_size, k, math.prod(shape)))
    mdl = prequential_mdl(mdl_fn, x_mdl, y["train"], num_chunks=config.num_chunks,
                          config=TrainConfig(steps=config.mdl_steps, patience=config.patience,
                                             **optimiser),
                          seed=seed, first_chunk=first, transform=mdl_transform, progress=False)

    # A fresh augmentation stream for the training run (the MDL's chunks used the first).
    raw, transform = _training_input(folder, eraser, data["train_x"], erased["train"], config,
                                     seed)
    result = train(make(), (raw, y["train"]), TrainConfig(steps=config.curve_steps, seed=seed,
                                                          **optimiser),
                   val=(erased["val"], y["val"]), transform=transform, progress=False)
    final = [_evaluate(result.model, erased[split], y[split], split) for split in ("val", "test")]
    return pd.concat([mdl.to_frame().assign(table="mdl"), mdl.curve.assign(table="chunks"),
                      result.curves.assign(table="curves"),
                      pd.DataFrame(final).assign(table="final")], ignore_index=True)


def _training_input(folder: Path, eraser: str, raw: Tensor, erased: Tensor, config,
                    seed: int):
    """The training images and their per-batch transform (None: train on the erased images).

    With augmentation, each batch of raw images is augmented, then erased with the eraser
    fitted on the un-augmented images; a whole-split eraser (iterative) erased the split
    already, so its batches are only augmented.
    """
    if config.augment is None:
        return erased, None
    augment = make_augment(config.augment, seed)
    fitted = erasure.load(folder / f"{eraser}.eraser.safetensors")
    if isinstance(fitted, erasure.IterativeEraser):
        return erased, augment
    return raw, EraseTransform(fitted, augment, None)


def _evaluate(model: nn.Module, x: Tensor, y: Tensor, split: str) -> dict:
    """Mean cross-entropy (bits) and accuracy of `model` on one erased split."""
    p = next(model.parameters())
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xb.to(p.device, p.dtype)) for xb in x.split(1024)])
    target = y.to(logits.device)
    loss = torch.nn.functional.cross_entropy(logits.double(), target) / math.log(2)
    accuracy = (logits.argmax(1) == target).double().mean()
    return {"split": split, "loss_bits": float(loss), "accuracy": float(accuracy)}


def split_tables(frame: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The sweep's stacked rows as one frame per table, grid `keys` first, types restored."""
    out = {}
    for name, columns in COLUMNS.items():
        rows = frame.loc[frame["table"] == name, keys + columns].reset_index(drop=True)
        for column in columns:
            if column in INTEGERS:
                rows[column] = rows[column].astype("int64")
            elif column in ("steps", "best_step"):
                rows[column] = rows[column].astype("Int64")
        out[name] = rows
    return out
