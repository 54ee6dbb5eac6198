"""Control tasks and selectivity (Hewitt & Liang 2019; SCIENCE §9.2)."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, LabelError, ShapeError
from . import _data
from .linear import LinearProbe


def control_task(type_ids, labels, seed: int = 0) -> Tensor:
    """Control labels: each type gets one label, drawn from the empirical label distribution.

    Args:
        type_ids: integer type of every row `[n]` (token id, input-pattern id, ...).
        labels: the task's integer labels `[n]`; their frequencies are the distribution
            that every type's control label is drawn from (once, seeded).

    Returns control labels `[n]` (values from `labels`, on its device): every occurrence of a
    type carries the same label, so a probe can only solve the task by memorising types.
    """
    labels = check.as_tensor(labels, "labels")
    y = _data.label_values(labels, labels.shape[0] if labels.ndim else -1, "labels")
    types = _data.label_values(type_ids, y.shape[0], "type_ids").to(y.device)
    classes, ids = _data.encode(y)
    unique_types, type_index = _data.encode(types)
    freq = torch.bincount(ids, minlength=len(classes)).double().cpu()
    if freq.sum() == 0:
        raise ShapeError("labels is empty; expected at least one labelled row")
    gen = torch.Generator().manual_seed(int(seed))
    drawn = torch.multinomial(freq, len(unique_types), replacement=True, generator=gen)
    return classes[drawn.to(y.device)[type_index]].to(labels.dtype)


@dataclasses.dataclass(frozen=True)
class Selectivity:
    """Task and control-task scores of one probe on one held-out split."""

    task_accuracy: float
    control_accuracy: float
    task_log_loss_bits: float
    control_log_loss_bits: float
    chance_accuracy: float  # the majority task label of the train split, on the test split
    type_overlap: float  # share of test rows whose type also occurs in the train split
    n_train: int
    n_test: int

    @property
    def selectivity(self) -> float:
        """`task_accuracy − control_accuracy`."""
        return self.task_accuracy - self.control_accuracy

    def to_frame(self) -> pd.DataFrame:
        """One row with every field and `selectivity`."""
        return pd.DataFrame([{**dataclasses.asdict(self), "selectivity": self.selectivity}])


def selectivity(x, labels, type_ids, probe=None, *, test_size: float = 0.2, seed: int = 0,
                control_seed: int | None = None) -> Selectivity:
    """Fit `probe` on the task and on its control task (same split, same hyper-parameters).

    The split is by rows, stratified by task label and seeded, so types recur between train
    and test: the control task is learnable only through memorised types, which is the point
    (with disjoint types selectivity would trivially be `task − chance`). `type_overlap`
    reports how far that holds.

    Args:
        x: representations `[n, ...]`; labels: task labels `[n]`; type_ids: type of each row.
        probe: unfitted probe (default `LinearProbe()`), cloned for each fit.
        control_seed: seed of the control labels (default `seed`).
    """
    probe = LinearProbe() if probe is None else probe
    if not (isinstance(test_size, float) and 0 < test_size < 1):
        raise ConfigError(f"test_size must be a float in (0, 1), got {test_size!r}")
    x, classes, ids = _data.fit_inputs(x, labels)
    types = _data.label_values(type_ids, x.shape[0], "type_ids").to(x.device)
    counts = torch.bincount(ids)
    n_test = math.ceil(test_size * len(ids))
    if int(counts.min()) < 2 or min(n_test, len(ids) - n_test) < len(classes):
        raise LabelError(f"a stratified split needs at least 2 rows of every class and "
                         f"{len(classes)} rows on each side; got class counts "
                         f"{counts.tolist()} and {n_test} test rows of {len(ids)}")
    y = classes[ids]
    control = control_task(types, y, seed if control_seed is None else control_seed)
    c_classes, c_ids = _data.encode(control)
    train, test = train_test_split(torch.arange(len(ids)).numpy(), test_size=test_size,
                                   random_state=seed, stratify=ids.cpu().numpy())
    train = torch.as_tensor(train, device=x.device)
    test = torch.as_tensor(test, device=x.device)
    if len(torch.unique(c_ids[train])) < 2:
        raise LabelError(f"the control task gives all {len(train)} training rows one label "
                         f"({len(torch.unique(types))} types drew {len(c_classes)} distinct "
                         "labels): nothing to probe; use more types or another control_seed")
    task = _score(probe, x, y, classes, ids, train, test)
    ctrl = _score(probe, x, control, c_classes, c_ids, train, test)
    chance, _ = _data.prior_scores(ids[train], ids[test], len(classes))
    overlap = float(torch.isin(types[test], types[train]).double().mean())
    return Selectivity(task[0], ctrl[0], task[1], ctrl[1], chance, overlap, len(train),
                       len(test))


def _score(probe, x, y, classes, ids, train, test) -> tuple[float, float]:
    model = clone(probe).fit(x[train], y[train])
    return _data.scores(_data.full_log_proba(model, x[test], classes), ids[test])
