"""learning_curves, mdl_bars and did_plot: what is drawn matches the frame."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from featurebias.errors import ConfigError
from featurebias.plots import did_plot, learning_curves, mdl_bars, palette
from featurebias.training import loop

from . import frames
from .artists import bars, data_lines, lines_by_name, tick_texts

ERASERS = ["none", "LEACE"]


def test_one_panel_per_arch_one_line_per_eraser_through_the_seed_means():
    df = frames.curves()
    fig = learning_curves(df, title="curves")
    assert [ax.get_title() for ax in fig.axes] == ["architecture: mlp", "architecture: lenet"]
    assert fig.get_suptitle() == "curves"
    rows = df[(df.split == "val") & (df.feature == "all")]
    for ax, arch in zip(fig.axes, ["mlp", "lenet"], strict=True):
        assert len(ax.collections) == 2  # a CI band per eraser: three seeds per point
        for eraser, line in lines_by_name(ax, ERASERS, kind="eraser").items():
            mean = rows[(rows.arch == arch) & (rows.eraser == eraser)].groupby("step").loss.mean()
            np.testing.assert_array_equal(line.get_xdata(), mean.index)
            np.testing.assert_allclose(line.get_ydata(), mean.to_numpy())
    assert fig.axes[0].get_ylabel() == "validation loss (nats)"
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    plt.close(fig)


def test_both_splits_are_told_apart_by_dashes():
    df = frames.curves(seeds=1, archs=("mlp",))
    fig = learning_curves(df, y="accuracy", split=None)
    ax = fig.axes[0]
    solid, dashed = data_lines(ax), data_lines(ax, dashed=True)
    assert len(solid) == len(dashed) == 2 and not ax.collections
    train_mean = df[(df.split == "train") & (df.feature == "all") & (df.eraser == "none")]
    assert any(np.allclose(line.get_ydata(), train_mean.accuracy) for line in dashed)
    assert ax.get_ylabel() == "accuracy"
    plt.close(fig)


def test_the_train_loop_columns_plot_without_sweep_columns():
    # TrainResult.curves's own column list: catches drift between the producer and the plot.
    df = frames.curves(seeds=1, archs=("mlp",), erasers=("none",))[list(loop.COLUMNS)]
    fig = learning_curves(df, log_x=True)
    ax = fig.axes[0]
    (line,) = data_lines(ax)
    val = df[(df.split == "val") & (df.feature == "all")]
    np.testing.assert_allclose(line.get_ydata(), val.loss)
    assert ax.get_xscale() == "symlog" and ax.get_legend() is None
    plt.close(fig)


@pytest.mark.parametrize("options, error, message", [
    ({"feature": None}, ConfigError, r"one feature at a time.*\['all', 'easy'\]"),
    ({"split": "test"}, ConfigError, "split='test' matches no rows"),
    ({"hue": "arch", "col": "arch"}, ConfigError, "both 'arch'"),
    ({"hue_order": ["none", "QLEACE"]}, ConfigError, r"\['QLEACE'\] are not in the frame"),
])
def test_learning_curve_options_are_checked(options, error, message):
    with pytest.raises(error, match=message):
        learning_curves(frames.curves(seeds=1), **options)


def test_feature_as_hue_draws_one_line_per_feature():
    df = frames.curves(seeds=1, archs=("mlp",), erasers=("none",)).drop(columns="eraser")
    fig = learning_curves(df, hue="feature")
    assert sorted(lines_by_name(fig.axes[0], ["all", "easy"], kind="feature")) == ["all", "easy"]
    plt.close(fig)


def test_mdl_bars_are_cell_means_in_the_eraser_colours():
    df = frames.mdl()
    fig = mdl_bars(df, uniform=math.log2(10), title="MDL")
    ax = fig.axes[0]
    colours = {to_hex(c): e for e, c in palette(["none", "LEACE", "QLEACE"], "eraser").items()}
    means = df.groupby(["arch", "eraser"]).bits_per_sample.mean()
    drawn = bars(ax)
    assert len(drawn) == 6 and tick_texts(ax) == ["mlp", "lenet"]
    for bar in drawn:
        arch = ["mlp", "lenet"][round(bar.get_x() + bar.get_width() / 2)]
        eraser = colours[to_hex(bar.get_facecolor())]
        assert bar.get_height() == pytest.approx(means[arch, eraser])
    (uniform,) = data_lines(ax, dashed=True)
    assert uniform.get_ydata()[0] == pytest.approx(math.log2(10))
    assert "uniform code" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylabel() == "bits per example" and ax.get_title() == "MDL"
    plt.close(fig)


def test_mdl_bars_refuse_a_bad_reference():
    with pytest.raises(ConfigError, match="uniform must be a finite number"):
        mdl_bars(frames.mdl(), uniform=float("nan"))


def test_did_points_with_z_standard_error_bars_and_a_zero_line():
    df = frames.did()
    fig = did_plot(df, z=2.0, log_x=True)
    ax = fig.axes[0]
    (line,) = [ln for ln in data_lines(ax) if len(ln.get_xdata()) == 3]
    np.testing.assert_array_equal(line.get_xdata(), df.width)
    np.testing.assert_allclose(line.get_ydata(), df.value)
    segments = ax.collections[0].get_segments()
    np.testing.assert_allclose([s[:, 1].min() for s in segments], df.value - 2 * df.se)
    np.testing.assert_allclose([s[:, 1].max() for s in segments], df.value + 2 * df.se)
    assert any(np.all(np.asarray(ln.get_ydata()) == 0) for ln in data_lines(ax))
    assert tick_texts(ax) == ["16", "32", "64"] and ax.get_xscale() == "log"
    plt.close(fig)


def test_did_with_categories_and_hue():
    df = pd.concat([frames.did().assign(depth=["2", "4", "8"], model=m) for m in ("a", "b")])
    fig = did_plot(df, x="depth", hue="model")
    ax = fig.axes[0]
    assert tick_texts(ax) == ["2", "4", "8"]
    assert sorted(lines_by_name(ax, ["a", "b"], kind="model")) == ["a", "b"]
    plt.close(fig)
    with pytest.raises(ConfigError, match="log_x needs positive numeric"):
        did_plot(df, x="depth", hue="model", log_x=True)
    with pytest.raises(ConfigError, match="z must be a number"):
        did_plot(frames.did(), z=-1)
