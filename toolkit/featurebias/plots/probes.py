"""Layer-wise probe scores with their chance baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ConfigError
from . import _style as st
from ._draw import lines
from ._palette import FIXED, palette

METRIC_LABELS = {
    "accuracy": "probe accuracy (held-out)",
    "log_loss_bits": "probe log-loss (bits per example)",
    "selectivity": "selectivity (accuracy − control)",
}
_ID = ("feature", "probe")  # the columns that name what a probe_sites row measured


@st.guarded
def probe_accuracy(frame: pd.DataFrame, *, metric: str = "accuracy", hue: str = "feature",
                   style: str | None = None, sites: Sequence[str] | None = None,
                   hue_order: Sequence | None = None, chance: bool = True, legend: bool = True,
                   ax=None, title: str | None = None, path=None, dpi: float = st.DPI) -> Figure:
    """Held-out probe score per site (in the frame's order), mean and 95 % CI over folds/seeds.

    Args:
        frame: `featurebias.probes.probe_sites` output (`site, feature, probe, fold, accuracy,
            log_loss_bits, chance_accuracy, chance_log_loss_bits, ...`), optionally with a
            `seed` column and rows of several probes.
        metric: the score column ("accuracy", "log_loss_bits", ...).
        hue: the column that colours the lines ("feature" or "probe").
        style: a second column told apart by markers, e.g. "probe" when hue is "feature".
            Every other naming column (`feature`, `probe`) must hold one value.
        chance: draw the dashed chance level from `chance_<metric>` (mean over rows): one
            black line when every hue shares it, else one line per hue in its colour.
    """
    what = "probe_accuracy"
    if style is not None and style == hue:
        raise ConfigError(f"style and hue are both {hue!r}; expected two different columns")
    base = f"chance_{metric}"
    st.require(frame, ["site", metric, hue, *([style] if style else []),
                       *([base] if chance else [])], what)
    for column in _ID:
        if column in frame.columns and column not in (hue, style):
            st.one_of(frame, column, None, what)
    hues = st.levels(frame[hue], hue_order, f"{what} hue_order")
    df = frame[frame[hue].isin(hues)]
    names = st.levels(df["site"], sites, f"{what} sites")
    df = df[df["site"].isin(names)]
    keys = ["site", hue, *([style] if style else [])]
    st.check_repeats(df, keys + [c for c in ("fold", "seed") if c in df.columns], what)
    colours = palette(hues, kind=hue)
    with sns.axes_style("whitegrid"):
        width = max(4.5, 0.8 * len(names) + 2.0) + 1.5 * legend
        fig, axis = st.single(ax, what, (width, 3.6))
        lines(axis, df, x="site", y=metric, hue=hue, hue_order=hues, colours=colours,
              categories=names, errorbar=st.CI if st.repeats(df, keys) else None, style=style,
              legend=legend)
        if chance:
            _chance(axis, df, base, hue, hues, colours, legend)
        axis.set_xlabel("site")
        axis.set_ylabel(METRIC_LABELS.get(metric, st.label(metric)))
    st.legend(axis, outside=ax is None)
    return st.finish(fig, [axis], title, path, dpi)


def _chance(axis, df: pd.DataFrame, column: str, hue: str, hues: list, colours: dict,
            legend: bool) -> None:
    levels = df.groupby(hue, sort=False)[column].mean().reindex(hues)
    shared = bool(np.ptp(levels.to_numpy()) <= 1e-9)
    for name, level in levels.items():
        colour = FIXED["chance"] if shared else colours[name]
        axis.axhline(level, linestyle="--", linewidth=1.2, color=colour, zorder=1)
        if shared:
            break
    if legend and axis.get_legend() is not None:
        # Add the chance entry to seaborn's legend rather than building a second one.
        old = axis.get_legend()
        handles, labels = list(old.legend_handles), [t.get_text() for t in old.get_texts()]
        colour = FIXED["chance"] if shared else "#808080"
        handles.append(Line2D([], [], linestyle="--", color=colour))
        labels.append("chance")
        axis.legend(handles, labels, title=old.get_title().get_text() or None)
