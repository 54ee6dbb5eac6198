"""Paper 1: erasing simple (linear, quadratic) features from images slows learning.

For every eraser × architecture × seed (SCIENCE §5): fit the eraser once on the un-augmented
training images, then measure how fast a fresh network learns the erased data — the
prequential MDL of the training labels (§4.1), a fixed-budget training run's validation
curve, its area (AULC, §4.2) and steps to an accuracy threshold (§4.3) — and compare an MLP
with a convolutional net by the difference in differences (§4.4).

`run(Config())` takes about two minutes on a 2-core CPU (scikit-learn's 8×8 digits, two
seeds); the fields scale it to the paper's settings (CIFAR-10 or SVHN from a local folder,
crop-and-flip augmentation, wider models, more seeds and steps) on a GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
from pathlib import Path

import pandas as pd

from featurebias._progress import tqdm
from featurebias.datasets import TaskData, erase_dataset
from featurebias.errors import ConfigError
from featurebias.training import sweep

from . import _els_tables as tables_
from ._common import load_image_task
from ._els_jobs import ARCHS, cell, save_data, save_erased, split_tables
from ._els_report import ARCH_NAMES, ERASER_NAMES, figures, narrative
from ._report import Report, writable_folder

ERASERS = ("control", "leace", "orth", "oracle", "qleace", "alf-qleace", "iterative", "random")
DATASETS = ("digits", "cifar10", "svhn")
AUGMENTS = ("auto", "translate", "crop", "crop_flip")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "identity")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the erasure learning-speed analysis; defaults run in about two minutes on a
    2-core CPU."""

    erasers: tuple[str, ...] = ("control", "leace", "qleace", "alf-qleace")
    archs: tuple[str, ...] = ("mlp", "lenet")
    seed: int = 0
    seeds: int = 2
    workers: int = 2
    launcher: str = "local"
    device: str = "cpu"
    cache_dir: str | None = None
    """The grid and where it runs: erasers (`erase_dataset` names; "control" is required, it
    is what the others are compared with; also "orth", "oracle", "iterative", "random"),
    architectures (any of "mlp", "resmlp", "lenet", "small_cnn"), the first seed (it also
    draws the data splits and the random-subspace control) and how many seeds (seed,
    seed + 1, ...; each seeds the model, batch order, augmentation and the MDL's example
    order), parallel jobs (local processes with one torch thread each, or SLURM jobs at a
    time), where the jobs run ("local", or "slurm" through submitit: `featurebias run ...
    --launcher slurm`), the torch device models train on, and the folder under which the
    fitted erasers and erased splits are passed to the jobs (None: the system's temporary
    folder; on SLURM it must be a folder every node sees; CIFAR-10 needs about 1 GB per
    eraser). The paper: 5 seeds."""

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_train: int | None = None
    augment: str | None = "auto"
    """The data: "digits" (scikit-learn's 8×8 digits, embedded), or "cifar10"/"svhn" read from
    the local folder `data_dir`; digits' validation and test shares (the folders keep their
    official test set and hold `val_fraction` of the training set out); an optional cap on
    the training rows (a stratified, seeded subset); and the training-batch augmentation,
    applied before erasure: None, "translate" (±1 pixel), "crop", "crop_flip" (the paper's),
    or "auto": none for digits, crop_flip for the folders. (SCIENCE §5 suggests ±1 pixel
    shifts for digits; on 8×8 images they stall every erased model within a CPU budget, so
    every eraser codes at the uniform length and the comparison says nothing.)"""

    mlp_hidden: tuple[int, ...] = (64, 64)
    resmlp_width: int = 64
    resmlp_depth: int = 2
    cnn_width: int = 16
    cnn_depth: int = 2
    activation: str = "relu"
    did_groups: tuple[str, ...] = ("mlp", "lenet")
    """Architectures: the MLP's hidden widths, the ResMLP's width and blocks, the small CNN's
    channels and conv layers, the MLPs' activation (LeNet is LeNet-small, fixed), and the two
    architectures the difference in differences compares (skipped unless both run). The
    paper: MLP widths 64–2048, depths 1–8."""

    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    eval_every: int = 25
    """Optimisation of every model (MDL chunks and training runs), and the steps between
    validation evaluations. The paper: schedule-free AdamW, lr 5e-4, batch 128; 3e-3 lets the
    CPU budget learn the erased digits at all."""

    num_chunks: int = 8
    first_chunk: int | None = 128
    mdl_steps: int = 1000
    patience: int = 5
    """Prequential MDL: chunks m, the first chunk t₁ (None: min(1024, 2·max(batch, k, d))),
    and each chunk model's step budget and early-stopping patience (in evaluations) on the
    held-out examples. The paper: m = 10, patience 100 epochs."""

    curve_steps: int = 600
    threshold: float = 0.5
    """The training run per cell: its fixed step budget (no early stopping, so every curve
    covers the same steps and AULCs compare), and the validation accuracy whose first
    crossing is reported as steps to threshold."""

    guard_rows: int | None = 2000
    images: int = 8
    """Checks and figures: training rows probed (3-fold linear and quadratic probes) after
    each erasure (None: no probes), and example images shown per eraser."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first nonsense value."""
        _names(self.erasers, "erasers", ERASERS)
        if "control" not in self.erasers:
            raise ConfigError(f"erasers must include 'control' (what every eraser is compared "
                              f"with), got {self.erasers}")
        _names(self.archs, "archs", ARCHS)
        if self.launcher not in ("local", "slurm"):
            raise ConfigError(f"launcher must be 'local' or 'slurm', got {self.launcher!r}")
        if self.launcher == "slurm" and self.cache_dir is None:
            raise ConfigError("launcher='slurm' needs cache_dir, a folder every node can read "
                              "(the jobs load the erased data from it)")
        _names(self.did_groups, "did_groups", ARCHS)
        if len(self.did_groups) != 2:
            raise ConfigError(f"did_groups must name two architectures, got {self.did_groups}")
        for name in ("seeds", "workers", "resmlp_width", "resmlp_depth", "cnn_width",
                     "cnn_depth", "batch_size", "eval_every", "mdl_steps", "patience",
                     "curve_steps", "images"):
            _integer(self, name)
        _integer(self, "seed", minimum=0)
        _integer(self, "num_chunks", minimum=2)
        for name in ("first_chunk", "max_train", "guard_rows"):
            if getattr(self, name) is not None:
                _integer(self, name, minimum=10)
        if not self.mlp_hidden or min(self.mlp_hidden) < 1:
            raise ConfigError(f"mlp_hidden must be positive widths, got {self.mlp_hidden}")
        if self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got "
                              f"{self.device!r}")
        _choice(self, "dataset", DATASETS)
        if self.dataset != "digits" and not self.data_dir:
            raise ConfigError(f"dataset={self.dataset!r} is read from a local folder: set "
                              f"data_dir")
        if self.augment is not None:
            _choice(self, "augment", AUGMENTS)
        _choice(self, "activation", ACTIVATIONS)
        _choice(self, "optimizer", ("adamw", "adam", "sgd"))
        fractions = (self.val_fraction, self.test_fraction)
        if not all(0 < f < 1 for f in fractions) or sum(fractions) >= 0.9:
            raise ConfigError(f"val_fraction and test_fraction must lie in (0, 1) and leave "
                              f"at least 10 % for training, got {fractions}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, "
                              f"{self.weight_decay}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold is a validation accuracy in (0, 1], got "
                              f"{self.threshold}")


def _names(values: tuple[str, ...], field: str, known: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in known]
    if not values or unknown or len(set(values)) != len(values):
        raise ConfigError(f"{field} must be distinct names from {known}, got {values}")


def _integer(config: Config, name: str, minimum: int = 1) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def _choice(config: Config, name: str, options: tuple[str, ...]) -> None:
    if getattr(config, name) not in options:
        raise ConfigError(f"{name} must be one of {options}, got {getattr(config, name)!r}")


def tiny() -> Config:
    """Seconds-long settings for tests: control and LEACE, an MLP and LeNet, two seeds."""
    return Config(erasers=("control", "leace"), seeds=2, workers=1, augment=None,
                  mlp_hidden=(32,), num_chunks=3, first_chunk=128, mdl_steps=120, patience=2,
                  eval_every=20, curve_steps=80, lr=3e-3, guard_rows=1000, images=4)


def demo_config(seeds: int) -> Config:
    """About a minute on a 2-core CPU: control, LEACE and QLEACE, an MLP and LeNet."""
    return Config(erasers=("control", "leace", "qleace"), seeds=seeds, augment=None,
                  num_chunks=6, mdl_steps=500, curve_steps=300)


def load_task(config) -> TaskData:
    """The configured dataset (see `_common.load_image_task`)."""
    return load_image_task(config)


def augmentation(config: Config) -> str | None:
    """The augmentation `augment="auto"` stands for on this dataset."""
    if config.augment != "auto":
        return config.augment
    return None if config.dataset == "digits" else "crop_flip"


def run(config: Config, *, progress: bool = True) -> Report:
    """Fit the erasers, run the grid, and report tables, figures and findings."""
    task = load_task(config)
    config = dataclasses.replace(config, augment=augmentation(config))
    k = task.num_classes[0]
    _check_sizes(config, task)
    report = Report("Erasing simple features slows learning: prequential MDL and learning "
                    "curves")
    seeds = list(range(config.seed, config.seed + config.seeds))
    shown = {"original": task.test[0][:config.images]}
    rows = []
    parent = None if config.cache_dir is None else writable_folder(config.cache_dir)
    with tempfile.TemporaryDirectory(prefix="featurebias-els-", dir=parent) as cache:
        save_data(Path(cache), task)
        for name in tqdm(config.erasers, desc="fitting erasers", disable=not progress):
            erased = erase_dataset(task, name, seed=config.seed)
            save_erased(Path(cache), name, erased)
            rows.append(tables_.erasure_row(name, task, erased, guard_rows=config.guard_rows,
                                            seed=config.seed))
            shown[name] = erased.test[0][:config.images]
        frame = sweep(functools.partial(cell, config=config, cache=cache),
                      {"eraser": list(config.erasers), "arch": list(config.archs),
                       "seed": seeds}, workers=config.workers, launcher=config.launcher,
                      progress=progress)
    tables = split_tables(frame, tables_.KEYS)
    tables["erasure"] = pd.DataFrame(rows)
    tables["aulc"] = tables_.learning_speed(tables["curves"], config.threshold)
    runs = tables_.per_run(tables["mdl"], tables["aulc"], tables["final"])
    tables["summary"] = tables_.summary(runs)
    tables["did"] = tables_.did(runs, tuple(config.did_groups))
    for name in ("mdl", "aulc", "final", "summary", "did", "erasure", "curves", "chunks"):
        report.table(name, tables[name])
    figures(report, tables, shown, config.erasers, config.archs, k)
    narrative(report, tables, _setting(config, task, tables["mdl"]))
    return report


def _check_sizes(config: Config, task: TaskData) -> None:
    """Refuse, before any training, an MDL split the training rows cannot hold."""
    n = len(task.train[1])
    coded = n - min(2048, math.floor(0.2 * n))
    d = task.train[0][0].numel()
    first = config.first_chunk or min(1024, 2 * max(config.batch_size, task.num_classes[0], d))
    if coded < first + config.num_chunks - 1:
        raise ConfigError(f"{n} training rows leave {coded} to code, fewer than first_chunk "
                          f"({first}) + num_chunks - 1 ({config.num_chunks - 1}); lower "
                          "first_chunk or num_chunks, or use more data")
    side = task.train[0].shape[-2:]
    if "lenet" in config.archs and any(s % 4 for s in side):
        raise ConfigError(f"lenet needs image sides divisible by 4, got {tuple(side)}")


def _setting(config: Config, task: TaskData, mdl: pd.DataFrame) -> str:
    x = task.train[0]
    shape = "×".join(str(s) for s in x.shape[1:])
    first = mdl.iloc[0]
    archs = ", ".join(ARCH_NAMES[a] for a in config.archs)
    erasers = ", ".join(ERASER_NAMES[e] for e in config.erasers)
    augment = ("is not augmented" if config.augment is None else
               f"is augmented (`{config.augment}`), then erased")
    return f"""
Dataset `{config.dataset}`: {len(task.train[1])} training, {len(task.val[1])} validation and
{len(task.test[1])} test images of shape {shape}, {task.num_classes[0]} classes. Erasers
({erasers}) are fitted on the un-augmented training images; each training batch {augment}
(SCIENCE §5). Architectures: {archs}; seeds
{config.seed}–{config.seed + config.seeds - 1}.

*Prequential MDL* (SCIENCE §4.1): {int(first['heldout'])} training images are held out for
early stopping; the other {int(first['n'])} are coded in {config.num_chunks} log-spaced
chunks, the first by the uniform code ({math.log2(task.num_classes[0]):.3f} bits per
example), every later one by a fresh model trained on all earlier chunks. Training:
{config.optimizer}, lr {config.lr:g}, batch {config.batch_size}.
"""
