"""Drawing primitives shared by the plot families: lines over categories or numbers."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from ._palette import Colour
from ._style import categorical_x

DEFAULT_COLOUR = "#0173b2"


def lines(ax: Axes, data: pd.DataFrame, *, x: str, y: str, hue: str | None = None,
          hue_order: Sequence | None = None, colours: Mapping[Hashable, Colour] | None = None,
          categories: Sequence | None = None, errorbar=None, style: str | None = None,
          legend: bool = True) -> None:
    """Mean of `y` per `x` (and hue/style) with an optional error band, one line per group.

    With `categories`, `x` is categorical: its values sit at 0..n-1 in that order (layers,
    K values), so the lines keep the order the caller gives instead of sorting labels.
    """
    column = x
    if categories is not None:
        column = "__position"
        data = data.assign(**{column: data[x].map({c: i for i, c in enumerate(categories)})})
        data = data[data[column].notna()]
    extra = {"marker": "o"} if style is None else {"markers": True}
    if hue is None:
        extra["color"] = DEFAULT_COLOUR
    elif colours is not None:
        extra["palette"] = dict(colours)
    sns.lineplot(data=data, x=column, y=y, hue=hue, hue_order=hue_order, style=style,
                 dashes=False, markersize=5, errorbar=errorbar,
                 legend="auto" if legend else False, ax=ax, **extra)
    if categories is not None:
        categorical_x(ax, categories)
    ax.set_xlabel(x)
