"""One run of the K × architecture × seed grid: train linearised every K steps, log the NTK.

`cell` is what `featurebias.training.sweep` runs, possibly in a spawned worker: it loads the
data itself (the digits are embedded; the folders are read from `data_dir`), so nothing but
the config crosses the process boundary. The probe batch and the data split depend on
`config.seed` only, so every run measures its kernel on the same examples.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor, nn

from featurebias import models
from featurebias.datasets import TaskData
from featurebias.training import (
    KernelLogger,
    LinearisedTrainer,
    TrainConfig,
    checkpoint_steps,
)

from ._common import load_image_task

ARCHS = ("mlp", "small_cnn")
# What each run returns, by table; `split_tables` takes the stacked rows apart again.
COLUMNS = {
    "final": ["train_loss", "test_loss", "test_accuracy", "network_test_loss",
              "network_test_accuracy", "relinearisations"],
    "kernels": ["step", "kernel_distance", "relative_change", "kernel_velocity", "alignment",
                "relinearisations"],
    "curves": ["step", "split", "feature", "loss", "accuracy"],
    "gaps": ["step", "relinearisations", "gap"],
}
INTEGERS = {"step", "relinearisations"}
KEYS = ["every", "arch", "seed"]


def load_task(config) -> TaskData:
    """The configured dataset (see `_common.load_image_task`)."""
    return load_image_task(config)


def probe_batch(task: TaskData, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """`size` training examples drawn with `seed`: the fixed batch the kernels are taken on."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(task.train[1]), generator=g)[:size]
    return task.train[0][index], task.train[1][index]


def build_model(arch: str, shape: tuple[int, ...], num_classes: int, config,
                seed: int) -> nn.Module:
    """A fresh, seeded `arch` for inputs of `shape` (C, H, W), on `config.device`."""
    c, h, w = shape
    if arch == "mlp":
        model = models.mlp(c * h * w, config.mlp_hidden, num_classes, seed=seed)
    else:
        model = models.small_cnn(c, num_classes, config.cnn_width, config.cnn_depth,
                                 image_size=(h, w), seed=seed)
    return model.to(config.device)


def train_config(config, seed: int) -> TrainConfig:
    """The same optimisation for every K; only the seed changes between runs."""
    return TrainConfig(steps=config.steps, batch_size=config.batch_size,
                       optimizer=config.optimizer, lr=config.lr, momentum=config.momentum,
                       eval_every=config.eval_every, seed=seed)


def cell(every: int | None, arch: str, seed: int, *, config) -> pd.DataFrame:
    """Train `arch` linearised every `every` steps (None: never) and measure its kernel.

    Returns the rows of every table in `COLUMNS`, stacked, with a `table` column.
    """
    task = load_task(config)
    probe_x, probe_y = probe_batch(task, config.probe_size, config.seed)
    model = build_model(arch, tuple(task.train[0].shape[1:]), task.num_classes[0], config,
                        seed)
    logger = KernelLogger(probe_x, steps=checkpoint_steps(config.steps, config.kernel_logs),
                          mode=config.ntk_mode, targets=probe_y, keep_kernels=False)
    trainer = LinearisedTrainer(every, reset_optimizer=config.reset_optimizer,
                                gap_probe=probe_x if config.linearisation_gap else None)
    result = trainer.train(model, task.train, train_config(config, seed), val=task.val,
                           callbacks=[logger], progress=False)
    linearised = result.model
    train_loss, _ = evaluate(linearised, *task.train)
    test_loss, test_accuracy = evaluate(linearised, *task.test)
    # The plain network at the trained θ: what the parameters compute without θ_lin.
    network_loss, network_accuracy = evaluate(linearised.model, *task.test)
    final = {"train_loss": train_loss, "test_loss": test_loss, "test_accuracy": test_accuracy,
             "network_test_loss": network_loss, "network_test_accuracy": network_accuracy,
             "relinearisations": linearised.relinearisations}
    return pd.concat([pd.DataFrame([final]).assign(table="final"),
                      logger.frame.assign(table="kernels"),
                      result.curves.assign(table="curves"),
                      trainer.gaps.assign(table="gaps")], ignore_index=True)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> tuple[float,
                                                                                       float]:
    """Mean cross-entropy (nats) and accuracy of `model` on `(x, y)`, in eval mode."""
    p = next(model.parameters())
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = torch.cat([model(xb.to(p.device, p.dtype)) for xb in x.split(batch_size)])
    finally:
        model.train(was)
    target = y.to(logits.device)
    loss = torch.nn.functional.cross_entropy(logits.double(), target)
    return float(loss), float((logits.argmax(1) == target).double().mean())


def k_value(every) -> float:
    """K as a float: `inf` for never re-linearised (None, NaN)."""
    return math.inf if every is None or pd.isna(every) else float(every)


def split_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The sweep's stacked rows as one frame per table: `every` (inf: never), `arch`, `seed`
    first, integer columns restored."""
    out = {}
    for name, columns in COLUMNS.items():
        rows = frame.loc[frame["table"] == name, KEYS + columns].reset_index(drop=True)
        rows["every"] = rows["every"].map(k_value).astype(float)
        rows["seed"] = rows["seed"].astype("int64")
        for column in columns:
            if column in INTEGERS:
                rows[column] = rows[column].astype("int64")
        out[name] = rows
    return out
