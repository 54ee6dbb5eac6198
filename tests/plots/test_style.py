"""Shared plumbing: palette keyed by name, saving, column checks, no matplotlib at top level."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from scipy.stats import bootstrap

import featurebias
from featurebias.errors import ConfigError, DTypeError, ShapeError
from featurebias.plots import palette, representation_bias, reset_palette, save, set_palette
from featurebias.plots._palette import FIXED
from featurebias.plots._style import check_repeats, ci95, require

from . import frames


def test_a_name_keeps_its_colour_across_calls_and_figures():
    first = palette(["easy", "hard"])
    again = palette(["medium", "hard", "easy"])
    assert again["easy"] == first["easy"] and again["hard"] == first["hard"]
    assert len(set(again.values())) == 3  # distinct within one figure
    assert palette(["easy"], kind="eraser")["easy"] == first["easy"]  # kinds count separately
    assert palette(["easy", "LEACE"], kind="eraser")["LEACE"] != first["easy"]


def test_colours_stay_distinct_past_the_base_palette():
    names = [f"f{i}" for i in range(25)]
    colours = palette(names)
    assert len(set(colours.values())) == 25
    assert all(0 <= c <= 1 for rgb in colours.values() for c in rgb)


def test_reference_names_are_grey_and_pins_win():
    colours = palette(["joint", "residual", "none"])
    assert all(len(set(np.round(rgb, 6))) == 1 for rgb in colours.values())  # r = g = b
    assert colours["joint"] == FIXED["joint"]
    set_palette({"easy": "red", "joint": "#00ff00"})
    assert palette(["easy", "joint", "hard"]) == {"easy": (1.0, 0.0, 0.0),
                                                  "joint": (0.0, 1.0, 0.0),
                                                  "hard": to_rgb("#0173b2")}
    reset_palette("feature")
    assert palette(["easy"])["easy"] == to_rgb("#0173b2")
    with pytest.raises(ConfigError, match="not a matplotlib colour"):
        set_palette({"easy": "no-such-colour"})


def test_the_same_feature_has_the_same_colour_in_two_figures():
    a = representation_bias(frames.variance(), features=["hard", "easy"])
    b = representation_bias(frames.variance(), measure="unique", features=["easy", "hard"])
    colour = {fig: {line.get_label(): line.get_color() for line in fig.axes[0].get_legend()
                    .get_lines()} for fig in (a, b)}
    assert colour[a]["easy"] == colour[b]["easy"] and colour[a]["hard"] == colour[b]["hard"]
    assert colour[a]["easy"] != colour[a]["hard"]
    plt.close(a)
    plt.close(b)


@pytest.mark.parametrize("name, suffix", [("plain.png", ".png"), ("no_suffix", ".png"),
                                          ("vector.svg", ".svg")])
def test_save_creates_folders_and_picks_the_format(name, suffix, tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    path = save(fig, tmp_path / "a" / "b" / name, dpi=60)
    assert path.suffix == suffix and path.exists() and path.stat().st_size > 0
    if suffix == ".png":
        with Image.open(path) as img:
            assert img.size == (180, 120)
    plt.close(fig)


def test_save_rejects_what_is_not_a_figure(tmp_path):
    with pytest.raises(ConfigError, match="Figure"):
        save("figure", tmp_path / "x.png")


def test_require_names_missing_and_present_columns():
    df = pd.DataFrame({"site": ["a"], "value": [1.0]})
    with pytest.raises(ShapeError, match=r"\['feature', 'measure'\].*\['site', 'value'\]"):
        require(df, ["site", "feature", "measure"], "plot")
    with pytest.raises(DTypeError, match="list"):
        require([1, 2], ["site"], "plot")
    assert require(df, ["site"], "plot") is df


def test_repeated_rows_name_the_column_that_tells_them_apart():
    df = pd.DataFrame({"step": [0, 0, 1, 1], "feature": ["all", "easy"] * 2,
                       "loss": [1.0, 2.0, 0.5, 0.6]})
    with pytest.raises(ConfigError, match=r"\['step'\].*\['feature'\]"):
        check_repeats(df, ["step"], "plot")
    check_repeats(df, ["step", "feature"], "plot")  # no repeats: nothing raised


@pytest.mark.parametrize("n", [3, 8, 30])
def test_ci_agrees_with_scipys_percentile_bootstrap(n):
    x = np.random.default_rng(n).normal(size=n)
    lo, hi = ci95(x)
    ref = bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                    rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert lo < x.mean() < hi
    assert lo == pytest.approx(ref.low, abs=0.1 * width)
    assert hi == pytest.approx(ref.high, abs=0.1 * width)
    assert ci95(x) == (lo, hi)  # seeded: the same band every time
    assert ci95(np.r_[x, np.nan]) == (lo, hi)
    assert ci95([2.5]) == (2.5, 2.5)


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:  # module level only: imports inside functions are lazy
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names |= {base} | {f"{base}.{a.name}" if node.module else base + a.name
                               for a in node.names}
    return names


def test_nothing_outside_plots_imports_matplotlib_at_import_time():
    package = Path(featurebias.__file__).parent
    offenders = {}
    for path in package.rglob("*.py"):
        if "plots" in path.relative_to(package).parts:
            continue
        bad = {n for n in _top_level_imports(path)
               if n.split(".")[0] in ("matplotlib", "seaborn") or "plots" in n.split(".")}
        if bad:
            offenders[str(path.relative_to(package))] = bad
    assert not offenders
