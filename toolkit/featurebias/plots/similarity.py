"""Heatmaps of all-pairs representation similarity (CKA, RSA, CCA, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from . import _style as st

MEASURE_LABELS = {
    "cka": "linear CKA",
    "cka_debiased": "debiased linear CKA",
    "cka_rbf": "RBF CKA",
    "rsa": "RSA (Spearman ρ of RDMs)",
    "rsa_euclidean": "RSA (Spearman ρ, Euclidean RDMs)",
    "cca": "mean CCA correlation",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "procrustes": "Procrustes distance",
    "procrustes_angular": "angular Procrustes distance",
    "mutual_knn": "mutual k-NN overlap",
}
# Colour scales: similarities bounded in [0, 1] share one fixed scale so that heatmaps compare
# across figures; signed ones get a diverging map centred on 0; the rest span their data.
_UNIT = frozenset({"cka", "cka_rbf", "cca", "svcca", "pwcca", "mutual_knn"})
_SIGNED = frozenset({"rsa", "rsa_euclidean", "cka_debiased"})
_DISTANCE = frozenset({"procrustes", "procrustes_angular"})


@st.guarded
def similarity_heatmap(frame: pd.DataFrame, *, measure: str | None = None,
                       order: Sequence[str] | None = None, columns: Sequence[str] | None = None,
                       annot: bool | None = None, fmt: str = ".2f", vmin: float | None = None,
                       vmax: float | None = None, cmap: str | None = None, xlabel: str = "",
                       ylabel: str = "", ax=None, title: str | None = None, path=None,
                       dpi: float = st.DPI) -> Figure:
    """One square cell per pair: rows are `x`, columns `y`, both in the frame's order.

    Args:
        frame: `featurebias.similarity.similarity_matrix` output (`x, y, measure, value`).
            With a `seed` column each cell is the mean over seeds.
        measure: the measure to draw when the frame holds several.
        order: the row names to draw, in order (default all, as they appear); also the
            columns when `columns` is None and the matrix is square.
        annot: write each value in its cell (default: when both sides have ≤ 12 names).
        vmin, vmax, cmap: colour scale. By default [0, 1] for CKA, CCA and k-NN, [−1, 1]
            (diverging) for RSA and debiased CKA, the data's range (reversed map) for
            distances.
    """
    what = "similarity_heatmap"
    st.require(frame, ["x", "y", "value"], what)
    df = st.one_of(frame, "measure", measure, what) if "measure" in frame.columns else frame
    name = str(df["measure"].iloc[0]) if "measure" in df.columns else "value"
    rows = st.levels(df["x"], order, f"{what} order")
    square = set(df["x"]) == set(df["y"])
    if columns is None and square:
        columns = order
    cols = st.levels(df["y"], columns, f"{what} columns")
    df = df[df["x"].isin(rows) & df["y"].isin(cols)]
    st.check_repeats(df, ["x", "y", *(["seed"] if "seed" in df.columns else [])], what)
    grid = (df.groupby(["x", "y"], sort=False)["value"].mean().unstack("y")
            .reindex(index=rows, columns=cols).astype(float))
    lo, hi, palette = _scale(name, grid.to_numpy())
    annot = max(len(rows), len(cols)) <= 12 if annot is None else bool(annot)
    side = float(np.clip(0.55 * max(len(rows), len(cols)) + 2.5, 4.0, 12.0))
    with sns.axes_style("white"):
        fig, axis = st.single(ax, what, (side + 1.0, side))
        sns.heatmap(grid, ax=axis, vmin=lo if vmin is None else vmin,
                    vmax=hi if vmax is None else vmax, cmap=cmap or palette,
                    annot=annot, fmt=fmt, square=True, linewidths=0.5, linecolor="white",
                    annot_kws={"fontsize": "small"},
                    cbar_kws={"label": MEASURE_LABELS.get(name, st.label(name)), "shrink": 0.8})
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.tick_params(axis="y", labelrotation=0)
        axis.tick_params(axis="x", labelrotation=0)
        st.rotate(axis, cols)
    return st.finish(fig, [axis], title, path, dpi)


def _scale(name: str, values: np.ndarray) -> tuple[float | None, float | None, str]:
    """(vmin, vmax, cmap) for a measure's default colour scale."""
    if name in _UNIT:
        return 0.0, 1.0, "viridis"
    if name in _SIGNED:  # symmetric limits centre the diverging map on 0
        return -1.0, 1.0, "vlag"
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
    return lo, hi, "viridis_r" if name in _DISTANCE else "viridis"
