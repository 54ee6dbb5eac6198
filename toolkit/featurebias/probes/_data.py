"""Input handling shared by the probes: rows, label encoding, standardisation, scores."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, DTypeError, LabelError, RangeError, ShapeError

# sklearn's log_loss clips probabilities the same way, so an unseen class costs ~50 bits.
LOG_FLOOR = math.log(1e-15)


def rows(x, name: str = "x") -> Tensor:
    """Examples `[n, ...]` as a finite float matrix `[n, d]` (trailing dimensions flattened)."""
    x = check.as_tensor(x, name)
    if x.ndim < 2 or x.shape[0] < 1 or x.shape[1:].numel() < 1:
        raise ShapeError(f"{name} must have shape [n, d] (or [n, ...]) with n, d >= 1, got "
                         f"{tuple(x.shape)}")
    x = x.flatten(1) if x.ndim > 2 else x
    if not x.is_floating_point():
        if x.is_complex():
            raise DTypeError(f"{name} must be real-valued, got dtype {x.dtype}")
        x = x.to(torch.get_default_dtype())
    # Column sums by a matrix product (fast, unlike a reduction over rows): NaN and ±Inf
    # propagate into them, so only a non-finite sum needs the exact check.
    if not bool(torch.isfinite(_column_sums(x)).all()):
        check.check_finite(x, name)
    return x


def _column_sums(x: Tensor) -> Tensor:
    return (torch.ones(1, x.shape[0], dtype=x.dtype, device=x.device) @ x)[0]


def label_values(y, n: int, name: str = "y") -> Tensor:
    """Integer labels `[n]` (any ids; bools become 0/1)."""
    y = check.as_tensor(y, name)
    if y.dtype == torch.bool:
        y = y.long()
    if y.is_floating_point() or y.is_complex():
        raise LabelError(f"{name} must hold integer class ids, got dtype {y.dtype}")
    y = check.one_per_row(y, n, name)
    return y.long()


def encode(y: Tensor) -> tuple[Tensor, Tensor]:
    """`(classes [k] sorted, ids [n] in 0..k-1)` like sklearn's LabelEncoder."""
    classes, ids = torch.unique(y, sorted=True, return_inverse=True)
    return classes, ids


def fit_inputs(x, y) -> tuple[Tensor, Tensor, Tensor]:
    """Validate a training set: `(x [n, d] float, classes [k], ids [n])`."""
    x = rows(x)
    classes, ids = encode(label_values(y, x.shape[0]))
    if len(classes) < 2:
        raise LabelError(f"y holds one class only (id {int(classes[0])}); a probe needs at "
                         "least two classes")
    if is_constant(x):
        raise RangeError(f"x is constant: all {x.shape[1]} features take one value over the "
                         f"{x.shape[0]} rows; a probe needs at least one varying feature")
    return x, classes, ids


def is_constant(x: Tensor) -> bool:
    """True when every row of `x` is the same."""
    # A fixed projection rules out almost every non-constant x at the cost of one product.
    probe = torch.linspace(1, 2, x.shape[1], dtype=x.dtype, device=x.device)
    v = x @ probe
    return bool((v == v[0]).all()) and bool((x == x[:1]).all())


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """`(mean, scale)` of the columns: the population std as `scale`, 1 for a constant column
    (as sklearn's StandardScaler has it), both in x's dtype."""
    n = x.shape[0]
    ones = torch.ones(1, n, dtype=torch.float64, device=x.device)
    mean, scale, _ = split_moments(x, ones, recheck=False)  # centred on its own mean already
    return mean[0], scale[0]


def split_moments(x: Tensor, counts: Tensor, block: int | None = None, recheck: bool = True
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Each split's `moments` and which of its columns are constant, `[s, d]` each, as
    `moments(x[rows of j])` would give them, from `counts [s, n]` (how many times each row is
    in each split, as from `split_counts`) without gathering a copy of any split's rows.

    Sums run as float64 matrix products over blocks of rows (row reductions are much slower on
    a CPU; a block is 1 MiB there by default, as one that stays in cache is ~3x faster, and
    256 MiB elsewhere), about the columns' overall mean: a split whose mean lies `r` of its
    stds away from that loses ~1e-16·r² of its variance to rounding (below float32's
    resolution up to r ~ 10⁴). A column counts as constant on a split of `m` rows where its
    variance is within the rounding of `m` float64 terms, `var ≤ 4·m·eps·E[(x − centre)²]`;
    such columns are checked again about the split's own mean (`_recheck`).
    """
    n, d = x.shape
    if block is None:
        block = max(64, (1 << (20 if x.device.type == "cpu" else 28)) // (8 * d))
    centre = _column_sums(x) / n
    sums = torch.zeros(len(counts), d, dtype=torch.float64, device=x.device)
    squares = torch.zeros_like(sums)
    for start in range(0, n, block):
        u = (x[start:start + block] - centre).double()
        c = counts[:, start:start + block]
        sums += c @ u
        squares += c @ u.square_()
    total = counts.sum(1, keepdim=True)
    offset, second = sums / total, squares / total
    var = (second - offset.square()).clamp_min_(0)
    constant = var <= 4 * total * torch.finfo(torch.float64).eps * second
    mean, scale = centre + offset, torch.where(constant, 1.0, var.sqrt())
    if recheck and bool(constant.any()):
        _recheck(x, counts, mean, scale, constant)
    return mean.to(x.dtype), scale.to(x.dtype), constant


def _recheck(x: Tensor, counts: Tensor, mean: Tensor, scale: Tensor, constant: Tensor) -> None:
    """Redo, about each split's own mean, the columns judged constant on a split but not on
    all rows (in place): far from the overall mean (r > ~1/√(4·m·eps)) a varying column is
    within the cut-off too. Rare, so gathering just those entries costs little."""
    varies = x.amax(0) != x.amin(0)
    for j in (constant & varies).any(1).nonzero()[:, 0].tolist():
        cols = (constant[j] & varies).nonzero()[:, 0]
        rows = counts[j].nonzero()[:, 0]
        m, sc, c = split_moments(x[rows[:, None], cols], counts[j, rows][None], recheck=False)
        mean[j, cols], scale[j, cols], constant[j, cols] = m[0].double(), sc[0].double(), c[0]


def split_counts(trains: list, n: int, device) -> Tensor:
    """`[s, n]` float64: how many times each row is in each split (row indices, or None for
    every row once), so a split that repeats a row (a bootstrap sample) weighs it as
    `fit(x[rows])` would."""
    counts = torch.zeros(len(trains), n, dtype=torch.float64, device=device)
    for j, t in enumerate(trains):
        if t is None:
            counts[j] = 1
        else:
            counts[j].index_add_(0, t, torch.ones(len(t), dtype=counts.dtype, device=device))
    return counts


def by_splits(counts: Tensor) -> Tensor | None:
    """A row order that stores the rows used by the same splits (`counts [s, n]`) together,
    or None when every split uses every row."""
    used = counts > 0
    if bool(used.all()):
        return None
    # Each pattern of splits keyed by a fixed random weighting (unique(dim=0) is ~30x slower);
    # two patterns sharing a key, which is all but impossible, would only interleave.
    weights = torch.rand(len(counts), generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    return torch.argsort(weights.to(counts.device) @ used.double(), stable=True)


def split_rows(trains, params, n: int) -> tuple[list[Tensor], list[dict]]:
    """Training splits as int64 row indices (from indices or boolean masks `[n]`), each
    non-empty and within `[0, n)`, and one parameter dict per split (default none)."""
    trains = list(trains)
    params = [{}] * len(trains) if params is None else list(params)
    if len(params) != len(trains) or not all(isinstance(p, dict) for p in params):
        raise ConfigError(f"params must hold one dict per training split ({len(trains)}), got "
                          f"{len(params)} entries")
    out = []
    for j, t in enumerate(trains):
        t = check.as_tensor(t, f"trains[{j}]")
        if t.dtype == torch.bool and t.shape == (n,):
            t = t.nonzero()[:, 0]
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex() or t.ndim != 1:
            raise ShapeError(f"trains[{j}] must be 1-D integer row indices or a boolean mask "
                             f"[{n}], got dtype {t.dtype} and shape {tuple(t.shape)}")
        if len(t) == 0:
            raise ShapeError(f"trains[{j}] selects no rows; every split needs training rows")
        if int(t.min()) < 0 or int(t.max()) >= n:
            raise RangeError(f"trains[{j}] holds row indices outside [0, {n}): "
                             f"{int(t.min())}..{int(t.max())}")
        out.append(t.long())
    return out, params


def class_weights(ids: Tensor, k: int, mode, counts: Tensor | None = None) -> Tensor | None:
    """Per-class weights: None, or `n / (k · n_c)` for `"balanced"` (sklearn's rule), each
    row counted `counts[i]` times if given."""
    if mode is None:
        return None
    per_class = torch.bincount(ids, counts, minlength=k).double()
    n = ids.shape[0] if counts is None else counts.sum()
    return n / (k * per_class.clamp_min(1))


def resolve_device(device, x: Tensor) -> torch.device:
    if device is None:
        return x.device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device must be None, a torch.device or a name like 'cuda', "
                          f"got {device!r}") from e


def check_common(probe) -> None:
    """Parameters every probe shares: dtype, class_weight, seed."""
    check.float_dtype(probe.dtype)
    if probe.class_weight not in (None, "balanced"):
        raise ConfigError(f"class_weight must be None or 'balanced', got {probe.class_weight!r}")
    if isinstance(probe.seed, bool) or not isinstance(probe.seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int, got {probe.seed!r}")


def grid(values, name: str, check=None) -> list[float]:
    """A non-empty list of hyper-parameter values, each passing `check(value, name)`."""
    try:
        values = list(values)
    except TypeError:
        values = []
    if not values:
        raise ConfigError(f"{name} must be a non-empty sequence of values to choose from")
    for value in values:
        (check or positive)(value, f"every value in {name}")
    return values


def positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def full_log_proba(probe, x: Tensor, classes: Tensor) -> Tensor:
    """Log-probabilities `[n, len(classes)]` of a fitted probe, in float64.

    Columns follow `classes`; a class the probe never saw gets log 0 = -inf.
    """
    if hasattr(probe, "predict_log_proba"):
        logp = torch.as_tensor(probe.predict_log_proba(x))
    else:
        logp = torch.as_tensor(probe.predict_proba(x)).log()
    logp = logp.to(device=classes.device, dtype=torch.float64)
    seen = probe.classes_
    seen = (seen if isinstance(seen, Tensor) else torch.as_tensor(np.asarray(seen)))
    seen = seen.to(device=classes.device, dtype=torch.long)
    where = torch.searchsorted(classes, seen).clamp_max(len(classes) - 1)
    if not bool((classes[where] == seen).all()):
        raise LabelError("the probe predicts classes that are not in the label set")
    out = torch.full((logp.shape[0], len(classes)), -math.inf, dtype=torch.float64,
                     device=classes.device)
    out[:, where] = logp
    return out


def scores(logp: Tensor, ids: Tensor) -> tuple[float, float]:
    """`(accuracy, log-loss in bits)` of log-probabilities `[n, k]` for class ids `[n]`."""
    ids = ids.to(logp.device)
    accuracy = float((logp.argmax(1) == ids).double().mean())
    picked = logp.gather(1, ids[:, None])[:, 0].clamp_min(LOG_FLOOR)
    return accuracy, float(-picked.mean() / math.log(2))


def prior_scores(train_ids: Tensor, test_ids: Tensor, k: int) -> tuple[float, float]:
    """The chance baseline: majority class and train-fold frequencies, scored on the test ids."""
    counts = torch.bincount(train_ids, minlength=k).double()
    logp = (counts / counts.sum()).log().expand(len(test_ids), k)
    return scores(logp, test_ids)
