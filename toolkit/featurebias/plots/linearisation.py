"""Iterative linearisation: performance against K, and how far the kernel moves in training."""

from __future__ import annotations

import math
import numbers

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..errors import ConfigError
from . import _style as st
from ._draw import lines
from ._palette import Colour, palette

INFINITY = "∞"
_NEVER = frozenset({"inf", "infinity", "never", "none", INFINITY})


def _k(value) -> float:
    """K as a number; None, NaN, inf and "never"/"∞" mean never re-linearised (∞)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NEVER):
        return math.inf
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
        if math.isnan(value) or value == math.inf:
            return math.inf
        if value > 0:
            return value
    raise ConfigError(f"K (`every`) values must be positive numbers, or None/inf/'∞' for never; "
                      f"got {value!r}")


def k_labels(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Each K as its label ("1", "16", "∞") and the labels in increasing K, ∞ last."""
    ks = [_k(v) for v in values]
    named = [INFINITY if k == math.inf else f"{k:g}" for k in ks]
    ordered = [n for _, n in sorted(set(zip(ks, named, strict=True)))]
    return pd.Series(named, index=values.index), ordered


def k_palette(labels: list[str]) -> dict[str, Colour]:
    """Sequential colours, lighter for small K (frequent feature updates), darker for large, ∞
    black (features frozen at initialisation)."""
    finite = [n for n in labels if n != INFINITY]
    colours = dict(zip(finite, sns.color_palette("flare", max(len(finite), 1)), strict=False))
    return {n: colours.get(n, (0.0, 0.0, 0.0)) for n in labels}


@st.guarded
def accuracy_vs_k(frame: pd.DataFrame, *, y: str = "test_accuracy", x: str = "every",
                  hue: str | None = None, legend: bool = True, ax=None,
                  title: str | None = None, path=None, dpi: float = st.DPI) -> Figure:
    """`y` against K on a categorical axis 1, 2, 5, ..., ∞; mean and 95 % CI over seeds.

    Args:
        frame: one row per run: `every` (K; None, NaN or inf for never), `seed` and value
            columns such as `test_accuracy`, `train_loss`.
        y: the value column to draw.
        hue: an optional column told apart by colour (e.g. `arch`).
    """
    what = "accuracy_vs_k"
    st.require(frame, [x, y, *([hue] if hue else [])], what)
    named, order = k_labels(frame[x])
    df = frame.assign(**{x: named})
    keys = [x, *([hue] if hue else [])]
    st.check_repeats(df, keys + (["seed"] if "seed" in df.columns else []), what)
    hues = st.unique(df[hue]) if hue else None
    with sns.axes_style("whitegrid"):
        fig, axis = st.single(ax, what, (max(4.5, 0.6 * len(order) + 2.5)
                                         + 1.5 * (legend and hue is not None), 3.6))
        lines(axis, df, x=x, y=y, hue=hue, hue_order=hues,
              colours=palette(hues, kind=hue) if hue else None, categories=order,
              errorbar=st.CI if st.repeats(df, keys) else None, legend=legend)
        axis.set_xlabel(st.label(x))
        axis.set_ylabel(st.label(y))
    st.legend(axis, outside=ax is None)
    return st.finish(fig, [axis], title, path, dpi)


@st.guarded
def kernel_distance_plot(frame: pd.DataFrame, *, y: str = "kernel_distance",
                         hue: str | None = "every", log_x: bool = False, legend: bool = True,
                         ax=None, title: str | None = None, path=None,
                         dpi: float = st.DPI) -> Figure:
    """Kernel distance to the initial NTK (or velocity, alignment) over steps, one line per K.

    Args:
        frame: `KernelLogger.frame` rows (`step, kernel_distance, ...`) stacked over runs with
            an `every` column (K; None/inf for never) and optionally `seed` (95 % CI bands).
        y: "kernel_distance", "kernel_velocity", "alignment", ...
        hue: the column of K (default "every", skipped when absent), or any other column.
    """
    what = "kernel_distance_plot"
    if hue == "every" and "every" not in getattr(frame, "columns", ()):
        hue = None
    st.require(frame, ["step", y, *([hue] if hue else [])], what)
    df, hues, colours = frame, None, None
    if hue == "every":
        named, hues = k_labels(frame["every"])
        df, colours = frame.assign(every=named), k_palette(hues)
    elif hue is not None:
        hues = st.unique(frame[hue])
        colours = palette(hues, kind=hue)
    keys = ["step", *([hue] if hue else [])]
    st.check_repeats(df, keys + (["seed"] if "seed" in df.columns else []), what)
    with sns.axes_style("whitegrid"):
        fig, axis = st.single(ax, what, (5.0 + 1.5 * (legend and hue is not None), 3.6))
        extra = {"palette": colours, "hue_order": hues} if hue else {"color": "#0173b2"}
        sns.lineplot(data=df, x="step", y=y, hue=hue, errorbar=st.CI if st.repeats(df, keys)
                     else None, legend="auto" if legend else False,
                     linewidth=1.5, ax=axis, **extra)
        if log_x:
            st.log_x(axis, df["step"])
        axis.set_xlabel("step")
        axis.set_ylabel(st.label(y))
    st.legend(axis, outside=ax is None, title="K" if hue == "every" else None)
    return st.finish(fig, [axis], title, path, dpi)
