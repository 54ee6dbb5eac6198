"""Learning-speed summaries of curves: area under the curve, steps to a threshold, and the
difference-in-differences between two architectures (SCIENCE §4.2–4.4)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, LabelError, NonFiniteError, RangeError, ShapeError


def _array(values, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 1-D sequence of numbers") from e
    if out.ndim != 1:
        raise ShapeError(f"{name} must be 1-D, got shape {out.shape}")
    return out


def _curve(steps, values, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    s, v = _array(steps, "steps"), _array(values, "values")
    if s.shape != v.shape:
        raise ShapeError(f"steps has {s.size} entries but values {v.size}; expected one value "
                         "per step")
    if s.size < min_points:
        raise ShapeError(f"the curve has {s.size} point(s), expected at least {min_points}")
    if not (np.isfinite(s).all() and np.isfinite(v).all()):
        raise NonFiniteError("steps and values must be finite (drop NaN evaluations first)")
    if (np.diff(s) <= 0).any():
        raise ConfigError("steps must increase strictly (one curve: filter by split and "
                          "feature, sort by step)")
    return s, v


def area_under_curve(steps, values, *, log_x: bool = False) -> float:
    """Trapezoid mean of a curve over its step range: `∫ value ds / (s_J − s_1)`.

    Args:
        steps, values: one curve (e.g. the "val"/"all" rows of `TrainResult.curves`); the
            result is in the units of `values` (nats for our curves; divide by ln 2 for bits).
        log_x: integrate over `log₂ s` instead of s, which weights early learning more; every
            step must then be >= 1 (drop step 0).
    """
    s, v = _curve(steps, values, 2)
    if log_x:
        if s[0] < 1:
            raise RangeError(f"log_x needs steps >= 1, got {s[0]:g} (drop the step-0 point)")
        s = np.log2(s)
    return float(np.sum(np.diff(s) * (v[1:] + v[:-1]) / 2) / (s[-1] - s[0]))


@dataclasses.dataclass(frozen=True)
class Threshold:
    """When a curve first reached a threshold; NaN and `censored` when it never did."""

    step: float
    censored: bool

    def __float__(self) -> float:
        return self.step


def steps_to_threshold(steps, values, threshold: float, *, mode: str = "loss",
                       ema: float = 0.0, interpolate: bool = False) -> Threshold:
    """The first step at which the (smoothed) curve reaches `threshold`.

    Args:
        mode: "loss" (reached when value <= threshold) or "accuracy" (value >= threshold).
        ema: smoothing factor α in [0, 1): `v̄_j = α·v̄_{j−1} + (1−α)·v_j`, `v̄_1 = v_1`.
        interpolate: place the crossing on the straight line between the last grid point
            that missed the threshold and the first that reached it, instead of at the latter.
    """
    check.choice(mode, "mode", ("loss", "accuracy"))
    threshold, ema = check.real(threshold, "threshold"), check.real(ema, "ema")
    if not 0 <= ema < 1:
        raise ConfigError(f"ema must lie in [0, 1), got {ema!r}")
    s, v = _curve(steps, values, 1)
    if ema:
        smooth = np.empty_like(v)
        smooth[0] = v[0]
        for j in range(1, v.size):  # a recurrence over evaluations (tens), not samples
            smooth[j] = ema * smooth[j - 1] + (1 - ema) * v[j]
        v = smooth
    reached = v <= threshold if mode == "loss" else v >= threshold
    if not reached.any():
        return Threshold(math.nan, True)
    j = int(np.argmax(reached))
    if not interpolate or j == 0:
        return Threshold(float(s[j]), False)
    fraction = (threshold - v[j - 1]) / (v[j] - v[j - 1])
    return Threshold(float(s[j - 1] + fraction * (s[j] - s[j - 1])), False)


@dataclasses.dataclass(frozen=True, eq=False)
class DiffInDiff:
    """`(A_treated − B_treated) − (A_control − B_control)` with its standard error."""

    value: float
    se: float
    """`sqrt(Σ_cells s²/n)` over the four cells (paired: the SE of the per-pair mean); NaN
    when a cell has fewer than two values."""
    cells: pd.DataFrame
    """One row per cell: group, condition, mean, std, n."""
    paired: bool

    @property
    def means(self) -> dict[tuple, float]:
        return {(r.group, r.condition): r.mean for r in self.cells.itertuples()}

    @property
    def counts(self) -> dict[tuple, int]:
        return {(r.group, r.condition): r.n for r in self.cells.itertuples()}


def difference_in_differences(frame: pd.DataFrame, *, value: str, groups: tuple, conditions:
                              tuple, group: str = "arch", condition: str = "eraser",
                              pair_by: str | None = None) -> DiffInDiff:
    """Difference-in-differences of `value` between two groups and two conditions (§4.4).

    With `groups=("mlp", "lenet")` and `conditions=("leace", "control")` it is the "conv
    gain" `(MDL_mlp,leace − MDL_lenet,leace) − (MDL_mlp,control − MDL_lenet,control)`:
    positive when the treatment costs the first group more than the second.

    Args:
        frame: tidy rows, one per run (e.g. one per seed), with columns `group`,
            `condition` and `value`.
        groups: `(A, B)`, values of column `group`.
        conditions: `(treated, control)`, values of column `condition`.
        pair_by: a column (e.g. "seed") pairing runs across the four cells: the DiD is then
            computed per pair, over the pairs present in every cell, and its SE is that of
            their mean.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    for name, pair in (("groups", groups), ("conditions", conditions)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or pair[0] == pair[1]:
            raise ConfigError(f"{name} must be a pair of two different values, got {pair!r}")
    needed = [group, condition, value] + ([pair_by] if pair_by is not None else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(f"frame has no column(s) {missing}; it has {list(frame.columns)}")
    cells = {(g, c): frame[(frame[group] == g) & (frame[condition] == c)]
             for g in groups for c in conditions}
    for (g, c), rows in cells.items():
        if rows.empty:
            raise LabelError(f"no rows with {group}={g!r} and {condition}={c!r}; each of the "
                             "four cells needs at least one")
    keys = list(cells)
    sign = np.array([1.0, -1.0, -1.0, 1.0])  # (A,T), (A,C), (B,T), (B,C)
    if pair_by is None:
        values = [_finite(rows[value], value) for rows in cells.values()]
        means = np.array([v.mean() for v in values])
        stds = np.array([v.std(ddof=1) if v.size > 1 else math.nan for v in values])
        counts = [v.size for v in values]
        se = math.sqrt(float(np.sum(stds**2 / np.array(counts))))
        did = float(sign @ means)
    else:
        table = pd.concat({k: _by_pair(rows, pair_by, value, k) for k, rows in cells.items()},
                          axis=1, join="inner")
        if table.empty:
            raise LabelError(f"no value of {pair_by!r} is present in all four cells")
        per_pair = table.to_numpy(np.float64) @ sign
        _finite(pd.Series(per_pair), value)
        means = table.mean().to_numpy()
        stds = table.std(ddof=1).to_numpy() if len(table) > 1 else np.full(4, math.nan)
        counts = [len(table)] * 4
        did = float(per_pair.mean())
        se = float(per_pair.std(ddof=1) / math.sqrt(len(per_pair))) if len(table) > 1 \
            else math.nan
    summary = pd.DataFrame({"group": [k[0] for k in keys], "condition": [k[1] for k in keys],
                            "mean": means, "std": stds, "n": counts})
    return DiffInDiff(did, se, summary, pair_by is not None)


def _finite(column: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise NonFiniteError(f"column {name!r} holds non-numeric, NaN or infinite values")
    return values


def _by_pair(rows: pd.DataFrame, pair_by: str, value: str, cell: tuple) -> pd.Series:
    if rows[pair_by].duplicated().any():
        raise LabelError(f"cell {cell} has several rows for the same {pair_by!r}; pairing needs "
                         "one per cell")
    return pd.Series(_finite(rows[value], value), index=rows[pair_by].to_numpy())
