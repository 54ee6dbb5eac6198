"""Read back what a plot drew: its data lines by colour, its bars, its bands."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from featurebias.plots import palette


def data_lines(ax: Axes, dashed: bool = False) -> list[Line2D]:
    """Solid (or dashed) lines with data; seaborn also parks empty legend proxies among the
    Axes' lines, and error bar caps are lines without a line style."""
    return [line for line in ax.lines if len(line.get_xdata())
            and line.get_linestyle() == ("--" if dashed else "-")]


def lines_by_name(ax: Axes, names, kind: str = "feature") -> dict[str, Line2D]:
    """The solid data line drawn in each name's palette colour (others, e.g. a black
    reference line, are left out)."""
    colours = {to_hex(c): n for n, c in palette(names, kind).items()}
    mine = [line for line in data_lines(ax) if to_hex(line.get_color()) in colours]
    found = {colours[to_hex(line.get_color())]: line for line in mine}
    assert len(found) == len(mine), "two lines share a colour"
    return found


def bars(ax: Axes) -> list[Rectangle]:
    """Drawn bars (seaborn adds zero-size legend proxies to the patches too)."""
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]


def band_limits(ax: Axes, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of the i-th error band (a PolyCollection from fill_between)."""
    verts = ax.collections[i].get_paths()[0].vertices
    x = np.unique(verts[:, 0])
    lo = np.array([verts[verts[:, 0] == v, 1].min() for v in x])
    hi = np.array([verts[verts[:, 0] == v, 1].max() for v in x])
    return lo, hi


def tick_texts(ax: Axes, axis: str = "x") -> list[str]:
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]
