"""Representation bias: how much of a representation each feature explains, by layer and step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .. import _validate as check
from ..errors import ConfigError
from . import _style as st
from ._draw import lines
from ._palette import FIXED, palette

MEASURE_LABELS = {
    "r2": "variance explained (R²)",
    "unique": "unique variance explained (ΔR²)",
    "residual": "unexplained variance (1 − R²)",
}


@st.guarded
def representation_bias(frame: pd.DataFrame, *, by: str = "site", measure: str = "r2",
                        features: Sequence[str] | None = None, sites: Sequence[str] | None = None,
                        step=None, kind: str = "line", log_x: bool = False, legend: bool = True,
                        ax=None, title: str | None = None, path=None,
                        dpi: float = st.DPI) -> Figure:
    """Variance explained per feature across layers (`by="site"`) or over training (`"step"`).

    Args:
        frame: `featurebias.features.variance_explained` output (`site, [step], feature,
            measure, value`), optionally with a `seed` column: then the points are means with
            95 % bootstrap CIs over seeds.
        measure: "r2", "unique" or "residual" (the joint model's `1 − R²`).
        features: the features to draw, in legend order (default all, as they appear; the
            joint model is the grey line "joint").
        sites: the sites to draw, in order (default all, in the frame's order).
        step: with `by="site"` and a `step` column, the checkpoint to draw (default the last).
        kind: "line" or "bar" (`by="site"` only).
        log_x: log-scaled steps (symlog when step 0 is present), `by="step"` only.

    With `by="step"` and several sites, there is one panel per site.
    """
    what = "representation_bias"
    check.choice(by, "by", ("site", "step"))
    check.choice(kind, "kind", ("line", "bar"))
    if kind == "bar" and by == "step":
        raise ConfigError("kind='bar' draws sites side by side; over steps use kind='line'")
    if log_x and by != "step":
        raise ConfigError("log_x applies to steps; use it with by='step'")
    st.require(frame, ["site", "feature", "measure", "value", *(["step"] * (by == "step"))], what)
    df = st.select(frame, what, measure=measure)
    feats = st.levels(df["feature"], features, f"{what} features")
    colours = palette(feats)
    seeds = ["seed"] if "seed" in df.columns else []
    df = df[df["feature"].isin(feats)]
    if by == "site":
        df = st.last_step(df, step, what)
    names = st.levels(df["site"], sites, f"{what} sites")
    df = df[df["site"].isin(names)]
    keys = ["site", "feature"] + ["step"] * (by == "step")
    st.check_repeats(df, keys + seeds, what)
    errorbar = st.CI if st.repeats(df, keys) else None
    ylabel = MEASURE_LABELS.get(measure, st.label(measure))
    with sns.axes_style("whitegrid"):
        if by == "site":
            width = max(4.5, 0.8 * len(names) + 2.0)
            fig, axis = st.single(ax, what, (width + 1.5 * legend, 3.6))
            axes = [axis]
            if kind == "line":
                lines(axis, df, x="site", y="value", hue="feature", hue_order=feats,
                      colours=colours, categories=names, errorbar=errorbar, legend=legend)
            else:
                sns.barplot(df, x="site", y="value", hue="feature", order=names, hue_order=feats,
                            palette=colours, errorbar=errorbar, ax=axis,
                            saturation=1.0, legend="auto" if legend else False)
                st.rotate(axis, names)
        else:
            fig, axes = st.panels(ax, len(names), what)
            for i, (axis, site) in enumerate(zip(axes, names, strict=True)):
                part = df[df["site"] == site]
                lines(axis, part, x="step", y="value", hue="feature", hue_order=feats,
                      colours=colours, errorbar=errorbar, legend=legend and i == len(names) - 1)
                if log_x:
                    st.log_x(axis, part["step"])
                if len(names) > 1:
                    axis.set_title(str(site), fontsize="medium")
        for i, axis in enumerate(axes):
            axis.set_ylabel(ylabel if i % st.WRAP == 0 else "")
            axis.set_xlabel(by)
    st.legend(axes[-1], outside=ax is None, title="feature")
    return st.finish(fig, axes, title, path, dpi)


@st.guarded
def pc_attribution_plot(frame: pd.DataFrame, *, site: str | None = None, step=None,
                        components: int = 10, features: Sequence[str] | None = None,
                        legend: bool = True, ax=None, title: str | None = None, path=None,
                        dpi: float = st.DPI) -> Figure:
    """Stacked bars: each top PC's share of the variance, split by the feature explaining it.

    A bar is PC k's `variance_fraction` (λ_k / total); its segments are each feature's
    `variance_fraction · r2` (λ_k R²_kj / total) and a grey remainder no feature explains.
    Correlated features can explain overlapping parts of a PC, so their segments may then
    stack past the bar's height (the remainder is then 0).

    Args:
        frame: `featurebias.features.pc_attribution` output.
        site: the site to draw (needed when the frame has several).
        step: the checkpoint to draw when the frame has a `step` column (default the last).
        components: how many of the top PCs to draw.
    """
    what = "pc_attribution_plot"
    check.positive_int(components, "components")
    st.require(frame, ["site", "component", "feature", "variance_fraction", "r2"], what)
    df = st.one_of(st.last_step(frame, step, what), "site", site, what)
    feats = st.levels(df["feature"], features, f"{what} features")
    df = df[df["feature"].isin(feats) & (df["component"] <= components)]
    st.check_repeats(df, ["component", "feature"], what)
    share = df.assign(share=df["variance_fraction"] * df["r2"]).pivot(
        index="component", columns="feature", values="share").reindex(columns=feats).fillna(0.0)
    total = df.groupby("component")["variance_fraction"].first().reindex(share.index)
    rest = np.clip(total.to_numpy() - share.sum(axis=1).to_numpy(), 0.0, None)
    colours = {**palette(feats), "unexplained": FIXED["unexplained"]}
    x = np.arange(len(share.index))
    with sns.axes_style("whitegrid"):
        fig, axis = st.single(ax, what, (max(4.5, 0.45 * len(x) + 2.5) + 1.5 * legend, 3.6))
        bottom = np.zeros(len(x))
        for name, heights in [*share.items(), ("unexplained", rest)]:
            heights = np.asarray(heights, dtype=float)
            axis.bar(x, heights, bottom=bottom, width=0.75, color=colours[name],
                     label=str(name), edgecolor="white", linewidth=0.5)
            bottom += heights
        axis.set_xticks(x, [str(int(c)) for c in share.index])
        axis.set_xlabel("principal component")
        axis.set_ylabel("fraction of total variance")
        if legend:
            axis.legend(title="explained by", frameon=False,
                        **({"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if ax is None
                           else {}))
    return st.finish(fig, [axis], title, path, dpi)
