"""Paper 3: how often must a network's features change? Iterative linearisation against K.

Each run trains the first-order Taylor model of a network and moves its linearisation point
θ_lin to the current parameters every K steps (SCIENCE §7.1): K = 1 is standard training,
K = ∞ (`None`) trains the network linearised at initialisation, whose empirical NTK never
changes (the lazy regime). For every K × architecture × seed, with the same optimisation
throughout, it records the final training and test loss and accuracy, the empirical NTK of
the linearised model on a fixed probe batch over training (distance to the initial kernel,
velocity, kernel–target alignment) and the linearisation gap just before each feature
update (SCIENCE §7.3–7.5).

`run(Config())` takes a minute or two on a 2-core CPU (scikit-learn's 8×8 digits, an MLP,
K ∈ {1, 10, 100, ∞}, two seeds); the fields scale it to the paper's setting (CIFAR-10 from a
local folder, convolutional nets, K up to 10⁴–10⁶ with longer training, more seeds) on a GPU.
"""

from __future__ import annotations

import dataclasses
import functools

from featurebias.errors import ConfigError
from featurebias.training import sweep

from ._itlin_jobs import ARCHS, cell, load_task, split_tables
from ._itlin_report import figures, narrative
from ._report import Report

DATASETS = ("digits", "cifar10", "svhn")
OPTIMIZERS = ("sgd", "adam", "adamw")
NTK_MODES = ("jacobian", "ntk_vp")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the iterative-linearisation analysis; defaults run in a minute or two on a
    2-core CPU."""

    every: tuple[int | None, ...] = (1, 10, 100, None)
    archs: tuple[str, ...] = ("mlp",)
    seed: int = 0
    seeds: int = 2
    workers: int = 2
    launcher: str = "local"
    device: str = "cpu"
    """The grid and where it runs: the K values (steps between feature updates; None is
    never, K = ∞), architectures ("mlp", "small_cnn"), the first seed and how many seeds
    (seed, seed + 1, ...; each seeds the model's initialisation and the batch order), parallel
    jobs (local processes with one torch thread each, 1 runs here; or SLURM jobs at a time),
    where the jobs run ("local" or "slurm" through submitit: `featurebias run ... --launcher
    slurm`), and the torch device. The paper:
    K = 1 against K ≈ 10⁴–10⁶, a handful of feature updates per run."""

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    max_train: int | None = None
    """The data: "digits" (scikit-learn's 8×8 digits, embedded) or "cifar10"/"svhn" read from
    the local folder `data_dir`; the validation and test shares (the folders keep their
    official test set and hold `val_fraction` of the training set out), and an optional cap
    on the training rows (a stratified subset). `seed` draws the splits. The paper: CIFAR-10."""

    mlp_hidden: tuple[int, ...] = (128, 128)
    cnn_width: int = 16
    cnn_depth: int = 2
    """Architectures: the MLP's hidden widths (ReLU; SCIENCE §7.5's 64–128–128–10 on digits),
    the small CNN's channels and 3×3 conv layers (no BatchNorm, so f_lin is a function of the
    parameters alone)."""

    steps: int = 2000
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    batch_size: int = 64
    eval_every: int = 100
    reset_optimizer: bool = False
    """Optimisation, the same for every K: steps T, optimiser ("sgd", "adam", "adamw"),
    learning rate, SGD momentum, batch size, steps between validation evaluations, and
    whether the optimiser's state is cleared at every feature update (default: kept).
    SCIENCE §7.5's small default: plain SGD, lr 0.05, batch 64, T = 3000 (2000 here, to stay
    within two minutes on a shared CPU); the paper: lr 1e-3 in all experiments."""

    probe_size: int = 128
    kernel_logs: int = 10
    ntk_mode: str = "jacobian"
    linearisation_gap: bool = True
    """Measurements: training examples in the fixed probe batch (the kernels are its traced
    empirical NTK, `probe_size × probe_size`), logged steps (step 0 and log-spaced steps up to
    T), the NTK recipe ("jacobian": fast for small probes; "ntk_vp": never forms the
    Jacobian, for large models), and whether the linearisation gap is measured on the probe
    before every feature update."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first nonsense value."""
        finite = [k for k in self.every if k is not None]
        if (not self.every or len(set(self.every)) != len(self.every)
                or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in finite)):
            raise ConfigError(f"every must be distinct K values, each an int >= 1 or None "
                              f"(never), got {self.every}")
        if not self.archs or len(set(self.archs)) != len(self.archs) or not set(
                self.archs) <= set(ARCHS):
            raise ConfigError(f"archs must be distinct names from {ARCHS}, got {self.archs}")
        if self.launcher not in ("local", "slurm"):
            raise ConfigError(f"launcher must be 'local' or 'slurm', got {self.launcher!r}")
        for name in ("seeds", "workers", "cnn_width", "cnn_depth", "steps", "batch_size",
                     "eval_every", "probe_size"):
            _integer(self, name)
        _integer(self, "seed", minimum=0)
        _integer(self, "kernel_logs", minimum=2)
        if self.max_train is not None:
            _integer(self, "max_train", minimum=2)
        if not self.mlp_hidden or min(self.mlp_hidden) < 1:
            raise ConfigError(f"mlp_hidden must be positive widths, got {self.mlp_hidden}")
        if self.kernel_logs - 1 > self.steps:
            raise ConfigError(f"kernel_logs ({self.kernel_logs}) must not exceed steps + 1 "
                              f"({self.steps + 1}): a kernel is logged at distinct steps")
        if self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got "
                              f"{self.device!r}")
        for name, options in (("dataset", DATASETS), ("optimizer", OPTIMIZERS),
                              ("ntk_mode", NTK_MODES)):
            if getattr(self, name) not in options:
                raise ConfigError(f"{name} must be one of {options}, got "
                                  f"{getattr(self, name)!r}")
        if self.dataset != "digits" and not self.data_dir:
            raise ConfigError(f"dataset={self.dataset!r} is read from a local folder: set "
                              "data_dir")
        fractions = (self.val_fraction, self.test_fraction)
        if not all(0 < f < 1 for f in fractions) or sum(fractions) >= 0.9:
            raise ConfigError(f"val_fraction and test_fraction must lie in (0, 1) and leave "
                              f"at least 10 % for training, got {fractions}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1 or (self.momentum and self.optimizer != "sgd"):
            raise ConfigError(f"momentum must lie in [0, 1) and is for optimizer='sgd' only, "
                              f"got {self.momentum} with {self.optimizer!r}")


def _integer(config: Config, name: str, minimum: int = 1) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def tiny() -> Config:
    """Seconds-long settings for tests: a small MLP, K ∈ {1, 10, 100, ∞}, two seeds."""
    return Config(mlp_hidden=(32,), steps=300, lr=0.1, eval_every=50, probe_size=24,
                  kernel_logs=5, workers=1)


def run(config: Config, *, progress: bool = True) -> Report:
    """Train every K × architecture × seed; report tables, figures and findings."""
    task = load_task(config)
    if config.probe_size > len(task.train[1]):
        raise ConfigError(f"probe_size ({config.probe_size}) exceeds the {len(task.train[1])} "
                          "training rows; expected at most that many probe examples")
    if "small_cnn" in config.archs and task.train[0].ndim != 4:
        raise ConfigError("small_cnn needs image inputs [n, C, H, W]")
    frame = sweep(functools.partial(cell, config=config),
                  {"every": list(config.every), "arch": list(config.archs),
                   "seed": list(range(config.seed, config.seed + config.seeds))},
                  workers=config.workers, launcher=config.launcher, progress=progress)
    tables = split_tables(frame)
    report = Report("Iterative linearisation: how often must features change?")
    for name in ("final", "kernels", "curves", "gaps"):
        report.table(name, tables[name])
    figures(report, tables, config)
    narrative(report, tables, config, task)
    return report
