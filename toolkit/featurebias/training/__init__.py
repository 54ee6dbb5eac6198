"""Training and learning-speed measurement: `train`, prequential MDL, curve metrics, sweeps.

`train(model, data, config)` runs a seeded, deterministic training loop whose loss follows the
shapes of the outputs and targets (single label, several heads, or token sequences); its
`TrainResult` holds tidy loss/accuracy curves and log-spaced checkpoints. `prequential_mdl`
measures how fast a fresh model learns a dataset (online code length, in bits);
`area_under_curve`, `steps_to_threshold` and `difference_in_differences` summarise and
compare curves; `sweep` runs a grid of jobs, optionally in parallel processes.
"""

from ._spacing import checkpoint_steps, log_spaced
from .config import TrainConfig
from .kernels import KernelLogger, kernel_alignment, kernel_distance, kernel_velocity
from .linearised import Linearised, LinearisedTrainer
from .loop import TrainResult, TrainState, learning_rate, train
from .mdl import MdlResult, prequential_code, prequential_mdl
from .metrics import (
    DiffInDiff,
    Threshold,
    area_under_curve,
    difference_in_differences,
    steps_to_threshold,
)
from .ntk import empirical_ntk
from .sweep import JobError, sweep

__all__ = [
    "DiffInDiff", "JobError", "MdlResult", "Threshold", "TrainConfig", "TrainResult",
    "TrainState", "area_under_curve", "checkpoint_steps", "difference_in_differences",
    "learning_rate", "log_spaced", "prequential_code", "prequential_mdl", "steps_to_threshold",
    "sweep", "train",
    "KernelLogger", "Linearised", "LinearisedTrainer", "empirical_ntk", "kernel_alignment",
    "kernel_distance", "kernel_velocity",
]
