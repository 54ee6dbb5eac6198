"""How fast networks learn: loss/accuracy curves, MDL bars, difference-in-differences."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..errors import ConfigError
from . import _style as st
from ._draw import DEFAULT_COLOUR
from ._palette import FIXED, palette

SPLITS = {"train": "training", "val": "validation", "test": "test"}
_DASHES = {"train": (4, 2), "val": "", "test": (1, 1.5)}


def _optional(frame: pd.DataFrame, column: str | None, default: str) -> str | None:
    # The default facet columns are what sweeps add; a frame without them (one run) still plots.
    if column == default and column not in getattr(frame, "columns", ()):
        return None
    return column


@st.guarded
def learning_curves(frame: pd.DataFrame, y: str = "loss", *, hue: str | None = "eraser",
                    col: str | None = "arch", split: str | None = "val",
                    feature: str | None = "all", hue_order: Sequence | None = None,
                    col_order: Sequence | None = None, log_x: bool = False, log_y: bool = False,
                    legend: bool = True, ax=None, title: str | None = None, path=None,
                    dpi: float = st.DPI) -> Figure:
    """`y` against step, one panel per `col`, one colour per `hue`; 95 % CI bands over seeds.

    Args:
        frame: `TrainResult.curves` (`step, split, feature, loss, accuracy`), usually stacked
            over runs with caller-added columns such as `eraser`, `arch`, `seed`.
        y: the value column ("loss" in nats, "accuracy", ...).
        hue, col: columns for colour and panels; None for none. The defaults ("eraser",
            "arch") are skipped when the frame lacks them.
        split: the split to draw ("val", "train"), or None for every split, told apart by
            dashes (training dashed).
        feature: the `feature` rows to draw ("all" is the total); ignored when `feature` is
            the hue or col. None requires a single feature.
        log_x, log_y: log axes (symlog x when step 0 is present).
    """
    what = "learning_curves"
    hue, col = _optional(frame, hue, "eraser"), _optional(frame, col, "arch")
    if hue is not None and hue == col:
        raise ConfigError(f"hue and col are both {hue!r}; expected two different columns")
    st.require(frame, ["step", y, *[c for c in (hue, col) if c],
                       *(["split"] if split is not None else [])], what)
    df = st.select(frame, what, split=split)
    if "feature" in df.columns and "feature" not in (hue, col):
        df = st.one_of(df, "feature", feature, what)
    style = "split" if split is None and "split" in df.columns and df["split"].nunique() > 1 \
        else None
    hues = st.levels(df[hue], hue_order, f"{what} hue_order") if hue else []
    cols = st.levels(df[col], col_order, f"{what} col_order") if col else [None]
    if hue:
        df = df[df[hue].isin(hues)]
    if col:
        df = df[df[col].isin(cols)]
    keys = ["step", *[c for c in (hue, col, style) if c]]
    st.check_repeats(df, keys + (["seed"] if "seed" in df.columns else []), what)
    errorbar = st.CI if st.repeats(df, keys) else None
    ylabel = st.label(y) if split is None else f"{SPLITS.get(split, split)} {st.label(y)}"
    with sns.axes_style("whitegrid"):
        fig, axes = st.panels(ax, len(cols), what)
        for i, (axis, value) in enumerate(zip(axes, cols, strict=True)):
            part = df if col is None else df[df[col] == value]
            extra = ({"palette": palette(hues, kind=hue), "hue_order": hues} if hue
                     else {"color": DEFAULT_COLOUR})
            if style:
                extra.update(style=style, dashes={s: _DASHES.get(s, (2, 2))
                                                  for s in part[style].unique()})
            sns.lineplot(data=part, x="step", y=y, hue=hue, errorbar=errorbar,
                         ax=axis, legend="auto" if legend else False,
                         linewidth=1.5, **extra)
            if log_x:
                st.log_x(axis, part["step"])
            if log_y:
                axis.set_yscale("log")
            if col is not None:
                axis.set_title(f"{st.label(col)}: {value}", fontsize="medium")
            axis.set_xlabel("step")
            axis.set_ylabel(ylabel if i % st.WRAP == 0 else "")
        st.drop_legends(axes[:-1])
    st.legend(axes[-1], outside=ax is None)
    return st.finish(fig, axes, title, path, dpi)


@st.guarded
def mdl_bars(frame: pd.DataFrame, *, x: str = "arch", hue: str | None = "eraser",
             value: str = "bits_per_sample", uniform: float | None = None,
             order: Sequence | None = None, hue_order: Sequence | None = None,
             legend: bool = True, ax=None, title: str | None = None, path=None,
             dpi: float = st.DPI) -> Figure:
    """Grouped bars of the prequential code length per `x` × `hue`, mean and 95 % CI over seeds.

    Args:
        frame: one row per run, e.g. `eraser, arch, seed, bits_per_sample` built from
            `prequential_mdl(...).bits_per_sample`.
        uniform: draw the uniform code's length (log₂ K bits per example) as a dashed line.
    """
    what = "mdl_bars"
    if uniform is not None and (isinstance(uniform, bool) or not isinstance(uniform, (int, float))
                                or not math.isfinite(uniform)):
        raise ConfigError(f"uniform must be a finite number (log2 of the class count), got "
                          f"{uniform!r}")
    st.require(frame, [x, value, *([hue] if hue else [])], what)
    xs = st.levels(frame[x], order, f"{what} order")
    df = frame[frame[x].isin(xs)]
    hues = st.levels(df[hue], hue_order, f"{what} hue_order") if hue else []
    if hue:
        df = df[df[hue].isin(hues)]
    keys = [x, *([hue] if hue else [])]
    st.check_repeats(df, keys + (["seed"] if "seed" in df.columns else []), what)
    extra = {"palette": palette(hues, kind=hue), "hue_order": hues} if hue else \
        {"color": DEFAULT_COLOUR}
    with sns.axes_style("whitegrid"):
        width = max(4.5, 0.5 * len(xs) * max(1, len(hues)) + 2.0) + 1.5 * legend
        fig, axis = st.single(ax, what, (width, 3.6))
        # saturation=1: the bars keep the exact palette colours the lines use elsewhere.
        sns.barplot(df, x=x, y=value, hue=hue, order=xs, errorbar=st.CI if st.repeats(df, keys)
                    else None, capsize=0.1, saturation=1.0,
                    err_kws={"linewidth": 1.2}, legend="auto" if legend else False, ax=axis,
                    **extra)
        if uniform is not None:
            axis.axhline(uniform, linestyle="--", color=FIXED["chance"], linewidth=1.2,
                         label="uniform code")
            if legend:
                axis.legend(title=hue)
        axis.set_xlabel(st.label(x))
        axis.set_ylabel(st.label(value))
        st.rotate(axis, xs)
    st.legend(axis, outside=ax is None)
    return st.finish(fig, [axis], title, path, dpi)


@st.guarded
def did_plot(frame: pd.DataFrame, *, x: str = "width", value: str = "value", se: str = "se",
             hue: str | None = None, z: float = 1.0, log_x: bool = False,
             ylabel: str = "difference in differences (bits per example)", legend: bool = True,
             ax=None, title: str | None = None, path=None, dpi: float = st.DPI) -> Figure:
    """Difference-in-differences (SCIENCE §4.4) against a size, with ±z·SE error bars.

    Args:
        frame: one row per `x` (and hue): the DiD `value` and its standard error `se`, e.g. from
            `difference_in_differences(...)` at each width or depth.
        x: numeric columns are drawn on a numeric axis, others as categories in frame order.
        z: error bar half-width in standard errors (1: ±SE, 1.96: a normal 95 % interval).
    """
    what = "did_plot"
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not z >= 0:
        raise ConfigError(f"z must be a number >= 0 (standard errors per bar), got {z!r}")
    st.require(frame, [x, value, se, *([hue] if hue else [])], what)
    st.check_repeats(frame, [x, *([hue] if hue else [])], what)
    numeric = pd.api.types.is_numeric_dtype(frame[x])
    if log_x and not (numeric and bool((frame[x] > 0).all())):
        raise ConfigError(f"log_x needs positive numeric {x!r} values")
    names = None if numeric else st.unique(frame[x])
    hues = st.unique(frame[hue]) if hue else [None]
    colours = palette(hues, kind=hue) if hue else {None: DEFAULT_COLOUR}
    with sns.axes_style("whitegrid"):
        fig, axis = st.single(ax, what, (5.0 + 1.5 * (legend and hue is not None), 3.6))
        axis.axhline(0.0, color=FIXED["chance"], linewidth=1.0, zorder=1)
        for h in hues:
            part = frame if h is None else frame[frame[hue] == h]
            part = part.sort_values(x) if numeric else part
            pos = part[x].to_numpy(float) if numeric else np.array(
                [names.index(v) for v in part[x]], dtype=float)
            axis.errorbar(pos, part[value].to_numpy(float), yerr=z * part[se].to_numpy(float),
                          marker="o", markersize=5, capsize=3, color=colours[h],
                          label=None if h is None else str(h))
        if names is not None:
            st.categorical_x(axis, names)
        else:
            if log_x:
                axis.set_xscale("log")
            sizes = sorted(set(frame[x].tolist()))
            if len(sizes) <= 12:  # a handful of sizes: label each one, plainly
                axis.set_xticks(sizes, [f"{v:g}" for v in sizes])
                axis.minorticks_off()
        axis.set_xlabel(st.label(x))
        axis.set_ylabel(ylabel)
        if legend and hue is not None:
            axis.legend(title=hue, frameon=False, **({"loc": "upper left",
                                                      "bbox_to_anchor": (1.02, 1.0)}
                                                     if ax is None else {}))
    return st.finish(fig, [axis], title, path, dpi)
