"""Paper 2: learned representations are biased by complexity, prevalence, order and position.

Networks that compute an easy feature (majority of 3 bits) and a hard one (parity of 4 bits)
equally well still give the easy feature most of their representation's variance (SCIENCE
§6). Sub-experiments, each a toggle in `Config.experiments`:

- `complexity`: an MLP per seed: variance explained per feature per layer (and unique shares),
  over training, in the top PCs and in single units, and the hard feature's sub-components.
- `prevalence`: the hard (or easy) feature skewed in training; how its variance changes.
- `order`: the hard feature trained first (curriculum), then both, against the default.
- `position`: a tiny transformer emitting the features in either order; variance explained at
  `[SEP]` and the output positions per layer.
- `colour_shape`: a plain CNN and a ResNet on colour-vs-shape images, read at the pooled layer.
- `confounds`: RSA between same-task and easy-only models; linear probes per layer and on the
  top PCs.

`run(Config())` takes a minute or two on a 2-core CPU; the fields scale it to the paper's
settings (4 × 256 MLPs, more seeds, steps and data) on a GPU.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from featurebias._progress import tqdm
from featurebias.datasets.images import PALETTE, SHAPES
from featurebias.errors import ConfigError

from . import _repbias_complexity, _repbias_conditions, _repbias_confounds, _repbias_models
from ._repbias_lab import Lab, final_accuracy
from ._repbias_text import Headline
from ._report import Report

EXPERIMENTS = ("complexity", "prevalence", "order", "position", "colour_shape", "confounds")
_STEPS = {
    "complexity": _repbias_complexity.complexity,
    "prevalence": _repbias_conditions.prevalence,
    "order": _repbias_conditions.order,
    "position": _repbias_models.position,
    "colour_shape": _repbias_models.colour_shape,
    "confounds": _repbias_confounds.confounds,
}
_FEATURES = ("easy", "hard")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the representation-bias analysis; defaults run in a minute or two on a CPU."""

    experiments: tuple[str, ...] = EXPERIMENTS
    seed: int = 0
    seeds: int = 2
    slow_seeds: int = 1
    device: str = "cpu"
    """What runs, and where: the sub-experiments (any of `EXPERIMENTS`, in that order), the
    first seed, how many seeds (seed, seed + 1, ...) train each MLP, how many train each
    transformer and CNN (slow on a CPU; raise it to `seeds` on a GPU), and the torch device
    models train on ("cpu", "cuda", "cuda:1", ...)."""

    sizes: tuple[int, ...] = (4096, 1024, 1024)
    distractors: int = 9
    """The synthetic task (SCIENCE §6.1): train/val/test rows and distractor bits. The paper's
    scale: 8192/2048/2048."""

    depth: int = 4
    width: int = 64
    steps: int = 1200
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    checkpoints: int = 10
    """The MLPs and their training (every model uses `optimizer`): hidden layers, their
    width, steps, batch size, and log-spaced checkpoints for the over-training curves. The
    paper: 4 × 256, Adam, lr 1e-3, 3000+ steps. (A larger lr, e.g. 3e-3, learns faster but
    gives the hard feature more of the last layer's variance.)"""

    components: int = 6
    unit_threshold: float = 0.1
    subcomponent_order: int = 2
    probe_folds: int = 3
    """Measurements: top PCs attributed, the unit density threshold τ (R²_uj > τ), the largest
    XOR of the hard feature's bits measured as a sub-component (capped below its group size),
    and cross-validation folds of the linear probes."""

    prevalence_feature: str = "hard"
    prevalences: tuple[float, ...] = (0.5, 0.9)
    prevalence_mode: str = "positive_rate"
    """`prevalence`: the feature whose training prevalence varies, the values p, and how
    (`"positive_rate"`: P(f = 1) = p; `"variation"`: the group varies in a fraction p)."""

    first: str = "hard"
    first_steps: int = 400
    """`order`: the feature trained alone first, for this many steps, before `steps` steps on
    every feature."""

    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4
    transformer_steps: int = 400
    transformer_batch_size: int = 64
    transformer_lr: float = 1e-3
    transformer_hard_bits: int = 2
    """`position`: the tiny transformer (the paper's default: 2 layers, d_model 64, 4 heads),
    its training, and the size of the hard feature's parity group in its task. The default 2
    (an XOR) is learned in a few hundred steps; the MLPs' parity of 4 takes a transformer
    thousands of steps (a plateau, then a jump), beyond a CPU budget: set 4 on a GPU."""

    image_sizes: tuple[int, ...] = (2048, 512, 512)
    image_size: int = 16
    colours: tuple[str, ...] = ("red", "green")
    shapes: tuple[str, ...] = ("square", "circle")
    cnn_width: int = 16
    cnn_depth: int = 3
    resnet_blocks: int = 1
    cnn_steps: int = 600
    cnn_batch_size: int = 64
    cnn_lr: float = 3e-3
    """`colour_shape`: images (train/val/test, pixels, palette, shapes), the CNN's conv layers,
    the ResNet's residual blocks (both `cnn_width` channels), and their training."""

    confound_site: int = -1
    pc_counts: tuple[int, ...] = (1, 2, 4, 8)
    """`confounds`: the MLP layer compared by RSA/CKA (an index, -1 the last), and how many top
    PCs the PC-restricted probes keep."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first nonsense value."""
        unknown = [e for e in self.experiments if e not in EXPERIMENTS]
        if not self.experiments or unknown or len(set(self.experiments)) != len(self.experiments):
            raise ConfigError(f"experiments must be distinct names from {EXPERIMENTS}, got "
                              f"{self.experiments}")
        for name in ("seeds", "slow_seeds", "depth", "width", "steps", "batch_size",
                     "components", "subcomponent_order", "first_steps", "d_model", "n_layers",
                     "n_heads", "transformer_steps", "transformer_batch_size", "image_size",
                     "cnn_width", "cnn_depth", "resnet_blocks", "cnn_steps", "cnn_batch_size"):
            _positive(self, name)
        _positive(self, "seed", minimum=0)
        _positive(self, "distractors", minimum=0)
        _positive(self, "probe_folds", minimum=2)
        _positive(self, "checkpoints", minimum=2)
        for name, sizes in (("sizes", self.sizes), ("image_sizes", self.image_sizes)):
            if len(sizes) != 3 or min(sizes) < 32:
                raise ConfigError(f"{name} must be three split sizes (train, val, test) of at "
                                  f"least 32 rows, got {sizes}")
        if self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got "
                              f"{self.device!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"optimizer must be 'adam', 'adamw' or 'sgd', got "
                              f"{self.optimizer!r}")
        for name in ("lr", "transformer_lr", "cnn_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 2 <= self.transformer_hard_bits <= 16:
            raise ConfigError(f"transformer_hard_bits must lie in 2..16 (a parity's group "
                              f"size), got {self.transformer_hard_bits}")
        if not 0 <= self.unit_threshold < 1:
            raise ConfigError(f"unit_threshold must lie in [0, 1), got {self.unit_threshold}")
        for name in ("prevalence_feature", "first"):
            if getattr(self, name) not in _FEATURES:
                raise ConfigError(f"{name} must be one of {_FEATURES}, got "
                                  f"{getattr(self, name)!r}")
        if self.prevalence_mode not in ("positive_rate", "variation"):
            raise ConfigError(f"prevalence_mode must be 'positive_rate' or 'variation', got "
                              f"{self.prevalence_mode!r}")
        if not self.prevalences or not all(0 < p <= 1 for p in self.prevalences) or (
                self.prevalence_mode == "positive_rate" and max(self.prevalences) >= 1):
            raise ConfigError(f"prevalences must be values in (0, 1) ((0, 1] with "
                              f"'variation'), got {self.prevalences}")
        if len(set(self.prevalences)) != len(self.prevalences):
            raise ConfigError(f"prevalences must be distinct, got {self.prevalences}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads "
                              f"({self.n_heads})")
        if not -self.depth <= self.confound_site < self.depth:
            raise ConfigError(f"confound_site must index one of the {self.depth} MLP layers "
                              f"(-{self.depth}..{self.depth - 1}), got {self.confound_site}")
        if not self.pc_counts or min(self.pc_counts) < 1 or max(self.pc_counts) > self.width:
            raise ConfigError(f"pc_counts must be numbers of PCs in 1..width ({self.width}), "
                              f"got {self.pc_counts}")
        for name, known in (("colours", PALETTE), ("shapes", SHAPES)):
            values = getattr(self, name)
            if len(values) < 2 or len(set(values)) != len(values) or not set(values) <= set(known):
                raise ConfigError(f"{name} must be at least two distinct names from "
                                  f"{sorted(known)}, got {values}")
        if self.image_size < 4:
            raise ConfigError(f"image_size must be >= 4 pixels, got {self.image_size}")


def _positive(config: Config, name: str, minimum: int = 1) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def tiny() -> Config:
    """Seconds-long settings for tests: every experiment, tiny models and data."""
    return Config(seeds=2, slow_seeds=1, sizes=(1024, 256, 512), depth=3, width=32, steps=300,
                  lr=3e-3, checkpoints=4, components=3, probe_folds=2, first_steps=100,
                  d_model=16, n_layers=1, n_heads=2, transformer_steps=60,
                  transformer_batch_size=32, image_sizes=(128, 64, 64), image_size=8,
                  cnn_width=4, cnn_depth=1, resnet_blocks=1, cnn_steps=20,
                  cnn_batch_size=32, pc_counts=(1, 4))


def run(config: Config, *, progress: bool = True) -> Report:
    """Run the chosen sub-experiments; returns tables, figures and a narrative."""
    report = Report("Representation bias: which features a network's representation favours")
    lab = Lab(config, progress)
    headline = Headline()
    report.text("What this measures", _INTRO)
    for name in tqdm([e for e in EXPERIMENTS if e in config.experiments],
                     desc="representation_bias", disable=not progress):
        _STEPS[name](lab, report, headline.experiment(name))
    curves = report.table("training_curves", pd.concat(lab.curves, ignore_index=True))
    report.table("final_accuracy", final_accuracy(curves))
    report.table("headline", headline.frame())
    return report


_INTRO = """
Each network is trained until it computes its features (validation accuracy is reported next
to every result). The *variance explained* R² of a feature at a layer is the fraction of the
layer's (centred) activation variance that a linear map from the feature predicts, on held-out
test items (SCIENCE §6.2); *unique* is what it adds to all other features. Numbers are means
over seeds; figures show 95 % bootstrap intervals over seeds where there are several.
"""
