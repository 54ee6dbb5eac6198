"""Datasets: synthetic feature tasks, colour/shape images, digits, real-image folders, erasure.

Every builder returns a `TaskData` (train/val/test pairs `(x, y)`, classes per target column,
column names, task facts in `info`), is seeded (same seed, same data; the global RNG is not
touched) and raises a `FeatureBiasError` subclass on bad options. Nothing here downloads
unless asked to (`download=True`).

- `synthetic_task`, `sequence_task`, `FeatureSpec`, `subcomponents`: binary features of
  disjoint groups of ±1 bits with controlled complexity, prevalence, curriculum and (for
  transformers) output position (SCIENCE §6.1).
- `colour_shape`: one coloured shape per image; colour is easy, shape hard.
- `digits`: scikit-learn's 8×8 digits, the embedded real dataset.
- `cifar10`, `svhn`, `mnist`, `fashion_mnist`: local folders in the official formats.
- `erase_dataset`: fit an eraser on the un-augmented training images, erase every split and
  build the training transform (augment, then erase) of paper 1 (SCIENCE §5).
"""

from .augment import CropFlip, crop_flip
from .base import TaskData, split_indices
from .digits import digits
from .erase import ErasedData, EraseTransform, erase_dataset
from .features import FeatureSpec, truth_table
from .folders import DatasetNotFoundError, cifar10, fashion_mnist, mnist, svhn
from .images import colour_shape
from .sequence import sequence_task
from .synthetic import input_bits, subcomponents, synthetic_task

__all__ = [
    "CropFlip", "DatasetNotFoundError", "ErasedData", "EraseTransform", "FeatureSpec",
    "TaskData", "cifar10", "colour_shape", "crop_flip", "digits", "erase_dataset",
    "fashion_mnist", "input_bits", "mnist", "sequence_task", "split_indices", "subcomponents",
    "svhn", "synthetic_task", "truth_table",
]
