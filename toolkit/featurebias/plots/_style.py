"""Shared pieces of the plots: frame checks, figures and panels, labels, axes helpers, saving."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure, SubFigure

from ..errors import ConfigError, DTypeError, ShapeError

DPI = 150
N_BOOT = 1000
BOOT_SEED = 0  # the bootstrap draws at random: a fixed seed makes figures reproducible
PANEL = (4.5, 3.4)  # inches per facet
WRAP = 3  # facets per row

# Axis labels for the columns the toolkit's frames use; anything else is prettified.
LABELS = {
    "step": "step",
    "site": "site",
    "loss": "loss (nats)",
    "accuracy": "accuracy",
    "train_loss": "training loss (nats)",
    "test_loss": "test loss (nats)",
    "val_loss": "validation loss (nats)",
    "test_accuracy": "test accuracy",
    "train_accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
    "log_loss_bits": "log-loss (bits per example)",
    "bits_per_sample": "bits per example",
    "codelength_bits": "code length (bits)",
    "kernel_distance": "kernel distance to init (1 − cos)",
    "kernel_velocity": "kernel velocity (distance per step)",
    "alignment": "kernel–target alignment",
    "relative_change": "relative kernel change ‖K − K₀‖ / ‖K₀‖",
    "relinearisations": "re-linearisations",
    "every": "K (steps between linearisations)",
    "variance_fraction": "fraction of total variance",
    "arch": "architecture",
    "eraser": "eraser",
    "feature": "feature",
    "width": "width (units)",
    "depth": "depth (layers)",
}


def ci95(values) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean, as seaborn's `errorbar=("ci", 95)`.

    Passed to seaborn as a callable `errorbar`: seaborn's own bootstrap calls `np.mean` once
    per resample in Python (~50 ms per point), which makes a sweep's learning curves take
    seconds; this draws all `N_BOOT` resamples of a point in one vectorised step.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOT_SEED)
    chunk = max(1, (1 << 22) // x.size)  # bounds the resample matrix to ~32 MB for big groups
    means = np.concatenate([x[rng.integers(0, x.size, (min(chunk, N_BOOT - i), x.size))]
                            .mean(axis=1) for i in range(0, N_BOOT, chunk)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


CI = ci95


def label(column: str) -> str:
    """A readable axis label for a column name."""
    return LABELS.get(column, str(column).replace("_", " "))


def require(frame, columns: Iterable[str], what: str) -> pd.DataFrame:
    """`frame` itself, after checking it is a non-empty DataFrame holding `columns`."""
    if not isinstance(frame, pd.DataFrame):
        raise DTypeError(f"{what} takes a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ShapeError(f"{what} needs column(s) {missing}, missing from the frame; it has "
                         f"columns {list(frame.columns)}")
    if frame.empty:
        raise ShapeError(f"{what} got a frame with no rows; expected at least one measurement")
    return frame


def select(frame: pd.DataFrame, what: str, **equal) -> pd.DataFrame:
    """Rows where each named column equals its value (None: no filter on that column)."""
    for column, value in equal.items():
        if value is None:
            continue
        keep = frame[column] == value
        if not keep.any():
            raise ConfigError(f"{what}: {column}={value!r} matches no rows; the frame has "
                              f"{column} values {unique(frame[column])}")
        frame = frame[keep]
    return frame


def unique(values: Iterable) -> list:
    """Distinct values in order of first appearance (the order the producer wrote them in)."""
    return list(dict.fromkeys(values))


def levels(values: Iterable, given: Sequence | None, what: str) -> list:
    """The categories to draw: `given` (a subset of `values`, in its order) or all, as seen."""
    seen = unique(values)
    if given is None:
        return seen
    given = [given] if isinstance(given, str) else list(given)
    unknown = [v for v in given if v not in seen]
    if unknown or not given:
        raise ConfigError(f"{what}: {unknown or given} are not in the frame; expected a "
                          f"non-empty subset of {seen}")
    return given


def last_step(frame: pd.DataFrame, step, what: str) -> pd.DataFrame:
    """Rows of one checkpoint: `step`, or the last one when None; frames without steps pass."""
    if "step" not in frame.columns:
        if step is not None:
            raise ConfigError(f"{what}: step={step!r} given, but the frame has no step column")
        return frame
    return select(frame, what, step=frame["step"].max() if step is None else step)


def one_of(frame: pd.DataFrame, column: str, value, what: str) -> pd.DataFrame:
    """Rows with `column == value`; with value None the column must hold a single value."""
    if value is not None:
        return select(frame, what, **{column: value})
    values = unique(frame[column])
    if len(values) > 1:
        raise ConfigError(f"{what} draws one {column} at a time; the frame has {values}: pass "
                          f"{column}=... to choose one")
    return frame


# Columns that identify a measurement (as opposed to measured values); used to say which
# column makes rows collide when the caller forgot to select or map it.
_IDS = ("seed", "fold", "step", "every", "component", "width", "depth")


def check_repeats(frame: pd.DataFrame, keys: Sequence[str], what: str) -> None:
    """Raise when rows repeat for the same `keys`: a plot would silently average them."""
    keys = list(dict.fromkeys(keys))
    dup = frame.duplicated(keys, keep=False)
    if not dup.any():
        return
    groups = frame[dup].groupby(keys, dropna=False, sort=False)
    varying = [c for c in frame.columns if c not in keys
               and (not pd.api.types.is_numeric_dtype(frame[c])
                    or pd.api.types.is_bool_dtype(frame[c]) or c in _IDS)
               and bool((groups[c].nunique(dropna=False) > 1).any())]
    hint = f"; they differ in {varying}" if varying else ""
    raise ConfigError(f"{what}: several rows share the same {keys}{hint}. Select one value of "
                      "those columns, or map them to hue/col")


def repeats(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    """Whether some point has several rows (seeds, folds): then it gets a CI."""
    return bool(frame.duplicated(list(dict.fromkeys(keys))).any())


def root(ax: Axes) -> Figure:
    fig = ax.figure
    while isinstance(fig, SubFigure):  # a subfigure's Axes still save through the root figure
        fig = fig.figure
    return fig


def panels(ax: Axes | None, n: int, what: str, size: tuple[float, float] = PANEL,
           sharey: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure with `n` facets (wrapped `WRAP` per row), or the caller's single Axes."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise ConfigError(f"{what}: ax must be a matplotlib Axes, got {type(ax).__name__}")
        if n != 1:
            raise ConfigError(f"{what} draws {n} panels, but ax= takes one Axes; select one "
                              "panel's rows or leave ax=None")
        return root(ax), [ax]
    cols = min(n, WRAP)
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(size[0] * cols + 1.5 * (n > 1), size[1] * rows),
                             sharey=sharey, squeeze=False, layout="constrained")
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.remove()
    return fig, axes[:n]


def single(ax: Axes | None, what: str, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """The caller's Axes, or a new figure of `size` inches with one Axes."""
    if ax is None:
        fig, axis = plt.subplots(figsize=size, layout="constrained")
        return fig, axis
    return panels(ax, 1, what)[0], ax


def legend(ax: Axes, outside: bool, title: str | None = None) -> None:
    """Move seaborn's legend out of the data (right of the Axes) when the figure is ours."""
    if ax.get_legend() is None:
        return
    named = {} if title is None else {"title": title}
    if outside:
        import seaborn as sns

        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, **named)
    elif title is not None:
        ax.get_legend().set_title(title)


def drop_legends(axes: Sequence[Axes]) -> None:
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()


def categorical_x(ax: Axes, names: Sequence) -> None:
    """Ticks at 0..n-1 named `names`, rotated when long enough to collide."""
    ax.set_xticks(range(len(names)), [str(n) for n in names])
    ax.set_xlim(-0.5, len(names) - 0.5)
    rotate(ax, names)


def rotate(ax: Axes, names: Sequence) -> None:
    # ~7 characters fit under a category at the default panel width and font size.
    longest = max((len(str(n)) for n in names), default=0)
    if longest > 7 or longest * len(names) > 48:
        ax.tick_params(axis="x", labelrotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")


def log_x(ax: Axes, values) -> None:
    """Log x axis; symlog (linear below 1) when a step 0 or another value ≤ 0 is present."""
    values = np.asarray(values, dtype=float)
    if (values <= 0).any():
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_xlim(left=values.min())  # no empty negative half
    else:
        ax.set_xscale("log")


def guarded(fn: Callable) -> Callable:
    """Check `path`/`dpi`/`ax` before drawing; close the figures a failing call opened."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        name = fn.__name__
        check_dpi(kwargs.get("dpi", DPI))
        if kwargs.get("path") is not None:
            check_path(kwargs["path"])
        ax = kwargs.get("ax")
        if ax is not None and not isinstance(ax, Axes):
            raise ConfigError(f"{name}: ax must be a matplotlib Axes, got {type(ax).__name__}")
        before = set(plt.get_fignums())
        try:
            return fn(*args, **kwargs)
        except BaseException:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
            raise

    return wrapper


def check_dpi(dpi) -> float:
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 0 < dpi < 2000:
        raise ConfigError(f"dpi must be a number in (0, 2000), got {dpi!r}")
    return dpi


def check_path(path) -> Path:
    """`path` as a Path with a format suffix matplotlib can write (`.png` added when none)."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise ConfigError(f"path must be a file name (str or Path), got {path!r}")
    path = Path(path)
    if not path.suffix:
        return path.with_suffix(".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ConfigError(f"path {str(path)!r} has suffix {path.suffix!r}; expected one of "
                          f"{sorted('.' + f for f in formats)} or none (PNG)")
    return path


def finish(fig: Figure, axes: Sequence[Axes], title: str | None, path, dpi: float) -> Figure:
    """Set the title (the Axes' for one panel, the figure's for facets), save when asked."""
    if title is not None:
        if len(axes) == 1:
            axes[0].set_title(str(title))
        else:
            fig.suptitle(str(title))
    if path is not None:
        save(fig, path, dpi)
    return fig


def save(fig: Figure, path, dpi: float = DPI) -> Path:
    """Write `fig` to `path` (PNG unless the suffix names another format), parents created.

    Returns the path written; one without a suffix gets `.png`. The image is
    `figsize × dpi` pixels (no tight bounding box, so the size is predictable).
    """
    if not isinstance(fig, Figure):
        raise ConfigError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    check_dpi(dpi)
    path = check_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
