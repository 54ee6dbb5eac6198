"""Dataset-level concept erasure in paper 1's order (SCIENCE §5).

The eraser is fitted once, in float64, on the flattened, un-augmented training images; each
training batch is then augmented and erased (QLEACE and Oracle with the batch's labels), and
the val/test splits are erased without augmentation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .. import _validate as check
from ..erasure import IterativeEraser
from ..errors import ConfigError, LabelError, ShapeError
from .augment import make_augment
from .base import SPLITS, TaskData

METHODS = ("leace", "orth", "oracle", "qleace", "alf-qleace", "iterative", "random", "identity")
ALIASES = {"none": "identity", "control": "identity"}
# Dataset transforms: they move each class of a whole split, so they run once per split
# (before augmentation) rather than on batches whose class moments are too noisy to match.
WHOLE_SPLIT = ("iterative",)
# Class covariances of images are singular, so these fit with shrinkage unless told otherwise.
SHRINK_BY_DEFAULT = ("qleace", "alf-qleace", "iterative")

Pair = tuple[Tensor, Tensor]


@dataclasses.dataclass(frozen=True)
class ErasedData:
    """Erased splits, the fitted eraser and the per-batch training transform.

    With `transform` None, `train` is erased; otherwise `train` holds the original training
    images and `transform(x, y)` augments and then erases each batch:
    `train(model, erased.train, config, val=erased.val, transform=erased.transform)`.
    """

    eraser: Any
    train: Pair
    val: Pair
    test: Pair
    transform: Callable[[Tensor, Tensor], Pair] | None
    num_classes: tuple[int, ...]
    feature_names: tuple[str, ...]
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class EraseTransform:
    """`(x, y) -> (x', y)`: augment the batch, flatten, erase, reshape (picklable)."""

    def __init__(self, eraser, augment, column: int | None, erase: bool = True):
        self.eraser, self.augment, self.column, self.erase = eraser, augment, column, erase
        self._on: dict[torch.device, Any] = {}

    def __call__(self, x: Tensor, y: Tensor) -> Pair:
        if self.augment is not None:
            x, y = self.augment(x, y)
        if self.erase:
            if x.device not in self._on:  # the eraser follows the batches' device
                self._on[x.device] = _to(self.eraser, x.device)
            z = y if self.column is None else y[:, self.column]
            x = apply(self._on[x.device], x, z)
        return x, y

    def reset(self) -> None:
        """Restart the augmentation's random stream (when it has one)."""
        if hasattr(self.augment, "reset"):
            self.augment.reset()


def erase_dataset(data: TaskData | Pair, eraser_or_method, *, feature: str | int | None = None,
                  augment=None, shrinkage: bool | None = None, seed: int = 0,
                  **fit_kwargs) -> ErasedData:
    """Fit a concept eraser on a dataset's training images and erase every split.

    Args:
        data: a single-label `TaskData` (or a multi-feature one with `feature`), or one
            training pair `(x, y)` (val and test are then empty).
        eraser_or_method: a fitted eraser acting on flattened inputs `[n, d]`, or a method:
            `"leace"`, `"orth"`, `"oracle"`, `"qleace"`, `"alf-qleace"`, `"iterative"`,
            `"random"` (rank `fit_kwargs["rank"]`, default k − 1: the rank LEACE removes) or
            `"identity"` (alias `"none"`, `"control"`).
        feature: the target column to erase when y has several (name or index).
        augment: None, `"crop_flip"`, `"crop"`, `"translate"` (see `make_augment`), or a
            callable `(x, y) -> (x, y)` applied to each training batch before erasure.
            Iterative erasure is a dataset transform: it is applied to each whole split once
            and the transform then only augments.
        shrinkage: covariance shrinkage for the fit; default on for QLEACE, ALF-QLEACE and
            iterative erasure (image class covariances are singular), off otherwise.
        seed: seeds the augmentation stream and the random-subspace control.
        fit_kwargs: passed to the fitter (e.g. `svd_tol`, `target_erasure`, `max_iter`).

    Returns:
        `ErasedData`; erased images keep their shape and dtype and may leave [0, 1].
    """
    splits, num_classes, names, column = _inputs(data, feature)
    x, y = splits["train"]
    k = num_classes[0 if column is None else column]
    labels = {name: _labels(pair, column, k, name) for name, pair in splits.items()}
    d = x[0].numel() if x.shape[0] else 0
    if isinstance(eraser_or_method, str):
        method = ALIASES.get(eraser_or_method, eraser_or_method)
        check.choice(method, "method", METHODS + tuple(ALIASES))
        shrink = method in SHRINK_BY_DEFAULT if shrinkage is None else bool(shrinkage)
        flat = check.features(x.reshape(x.shape[0], -1), "x", min_rows=2)
        eraser = _fit(method, flat.double(), labels["train"], k, shrink, seed, fit_kwargs)
    else:
        if not callable(eraser_or_method):
            raise ConfigError(f"eraser_or_method must be a method name {METHODS} or a fitted "
                              f"eraser, got {type(eraser_or_method).__name__}")
        if fit_kwargs or shrinkage is not None:
            raise ConfigError("fit options were given with an already fitted eraser")
        method, eraser = type(eraser_or_method).__name__, eraser_or_method
        width = getattr(eraser, "dim", None)
        if width is not None and width != d:
            raise ShapeError(f"the eraser acts on {width} features but the images flatten to "
                             f"{d}; expected an eraser fitted on flattened images")
    whole = method in WHOLE_SPLIT or isinstance(eraser, IterativeEraser)
    aug = make_augment(augment, seed)
    out = {}
    for name, (xs, ys) in splits.items():
        raw = name == "train" and aug is not None and not whole
        out[name] = (xs if raw or xs.shape[0] == 0 else _erase_split(eraser, xs, labels[name]),
                     ys)
    transform = None if aug is None else EraseTransform(eraser, aug, column, erase=not whole)
    info = {"method": method, "augment": augment if isinstance(augment, str) or augment is None
            else repr(augment), "feature": names[column] if column is not None else names[0],
            "train_erased": transform is None or whole}
    return ErasedData(eraser, out["train"], out["val"], out["test"], transform,
                      tuple(num_classes), tuple(names), info)


def apply(eraser, x: Tensor, z: Tensor | None) -> Tensor:
    """`eraser` applied to images `[n, ...]` flattened to `[n, d]`, in x's shape and dtype."""
    flat = x.reshape(x.shape[0], -1)
    out = eraser(flat, z) if getattr(eraser, "requires_labels", False) else eraser(flat)
    return out.reshape(x.shape).to(x.dtype)


def _erase_split(eraser, x: Tensor, z: Tensor) -> Tensor:
    # Whole splits are erased in float64 (as the statistics are), then cast back.
    return apply(_to(eraser, x.device), x.double(), z.to(x.device)).to(x.dtype)


def _to(eraser, device):
    return eraser.to(device) if hasattr(eraser, "to") else eraser


def _inputs(data, feature) -> tuple[dict[str, Pair], tuple[int, ...], tuple[str, ...],
                                    int | None]:
    """The splits, classes per column, column names and the column to erase (None: y is 1-D)."""
    if isinstance(data, TaskData):
        if data.sequence:
            raise ConfigError("erase_dataset erases images or vectors; sequence tasks hold "
                              "token ids")
        splits = {name: data.split(name) for name in SPLITS}
        num_classes, names = tuple(data.num_classes), tuple(data.feature_names)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (check.as_tensor(t, n) for t, n in zip(data, ("x", "y"), strict=True))
        if y.is_floating_point() or y.dtype == torch.bool:
            raise LabelError(f"y must hold integer class ids, got dtype {y.dtype}")
        if y.numel() and int(y.min()) < 0:
            raise LabelError(f"y holds negative class ids (min {int(y.min())}); expected "
                             "ids >= 0")
        width = 1 if y.ndim == 1 else y.shape[-1]
        counts = [int(y.reshape(y.shape[0], -1)[:, j].max()) + 1 if y.numel() else 1
                  for j in range(width)]
        splits = {"train": (x, y), "val": (x[:0], y[:0]), "test": (x[:0], y[:0])}
        num_classes, names = tuple(counts), tuple(f"y{j}" for j in range(width))
        if y.ndim == 1:
            names = ("y",)
    else:
        raise ConfigError(f"data must be a TaskData or a pair (x, y), got {type(data).__name__}")
    x = splits["train"][0]
    if not x.is_floating_point():
        raise ConfigError(f"erase_dataset needs floating inputs (images), got dtype {x.dtype}")
    for name, (xs, ys) in splits.items():
        if xs.shape[0] != ys.shape[0] or xs.shape[1:] != x.shape[1:]:
            raise ShapeError(f"{name} split: x {tuple(xs.shape)}, y {tuple(ys.shape)}; "
                             f"expected one label per row and inputs shaped like train's "
                             f"{tuple(x.shape[1:])}")
    return splits, num_classes, names, _column(splits["train"][1], feature, names)


def _column(y: Tensor, feature, names: tuple[str, ...]) -> int | None:
    if y.ndim == 1:
        if feature not in (None, 0, names[0]):
            raise ConfigError(f"y has one column ({names[0]!r}); feature={feature!r} does not "
                              "name it")
        return None
    if feature is None:
        raise LabelError(f"y has {y.shape[1]} columns {names}; pass feature= (a name or index) "
                         "to choose the concept to erase")
    if isinstance(feature, str):
        if feature not in names:
            raise ConfigError(f"unknown feature {feature!r}; the columns are {names}")
        return names.index(feature)
    if isinstance(feature, bool) or not isinstance(feature, int) or not (
            0 <= feature < len(names)):
        raise ConfigError(f"feature must be a name in {names} or an index < {len(names)}, "
                          f"got {feature!r}")
    return feature


def _labels(pair: Pair, column: int | None, k: int, split: str) -> Tensor:
    y = pair[1] if column is None else pair[1][:, column]
    if y.is_floating_point() or y.dtype == torch.bool:
        raise LabelError(f"{split} labels must be integer class ids, got dtype {y.dtype}")
    return check.class_ids(y, pair[0].shape[0], k, f"{split} labels")


def _fit(method: str, x: Tensor, z: Tensor, k: int, shrinkage: bool, seed: int,
         options: dict):
    """The fitted eraser of `method` on float64 rows x with class ids z."""
    from .. import erasure

    if k < 2:
        raise LabelError(f"erasure needs at least two classes, got num_classes = {k}")
    fitters = {
        "leace": lambda: erasure.LeaceFitter.fit(x, z, z_dim=k, shrinkage=shrinkage, **options),
        "orth": lambda: erasure.LeaceFitter.fit(x, z, z_dim=k, method="orth",
                                                shrinkage=shrinkage, **options),
        "oracle": lambda: erasure.OracleFitter.fit(x, z, z_dim=k, shrinkage=shrinkage,
                                                   **options),
        "qleace": lambda: erasure.QuadraticFitter.fit(x, z, num_classes=k, shrinkage=shrinkage,
                                                      **options),
        "alf-qleace": lambda: erasure.AlfQleaceFitter.fit(x, z, num_classes=k,
                                                          shrinkage=shrinkage, **options),
        "iterative": lambda: erasure.IterativeFitter.fit(x, shrinkage=shrinkage, **options),
        "random": lambda: erasure.RandomFitter.fit(x, rank=options.pop("rank", k - 1),
                                                   seed=seed, **options),
    }
    if method == "identity":
        if options:
            raise ConfigError(f"method 'identity' takes no options, got {sorted(options)}")
        return erasure.IdentityEraser()
    try:
        return fitters[method]().eraser
    except TypeError as e:  # an option the fitter does not take
        raise ConfigError(f"method {method!r} does not accept the options "
                          f"{sorted(options)}: {e}") from e
