"""accuracy_vs_k and kernel_distance_plot: K on an ordered axis with ∞ last, one line per K."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex

from featurebias.errors import ConfigError
from featurebias.plots import accuracy_vs_k, kernel_distance_plot
from featurebias.plots.linearisation import k_labels
from featurebias.training import KernelLogger

from . import frames
from .artists import data_lines, tick_texts


@pytest.mark.parametrize("never", [None, math.inf, float("nan"), "∞", "never"])
def test_k_labels_order_numbers_then_never(never):
    values = pd.Series([64, never, 1, 4.0, 1024], dtype=object)
    labels, order = k_labels(values)
    assert order == ["1", "4", "64", "1024", "∞"]
    assert labels.tolist() == ["64", "∞", "1", "4", "1024"]


@pytest.mark.parametrize("bad", [0, -3, "often", True])
def test_k_labels_refuse_what_is_not_a_k(bad):
    with pytest.raises(ConfigError, match="positive numbers"):
        k_labels(pd.Series([1, bad], dtype=object))


@pytest.mark.parametrize("y", ["test_accuracy", "train_loss"])
def test_points_are_seed_means_on_the_ordered_k_axis(y):
    df = frames.every()
    fig = accuracy_vs_k(df, y=y)
    ax = fig.axes[0]
    assert tick_texts(ax) == ["1", "4", "16", "∞"]
    (line,) = data_lines(ax)
    means = [df[df.every.isna() if k is None else df.every == k][y].mean() for k in frames.KS]
    np.testing.assert_allclose(line.get_ydata(), means)
    np.testing.assert_array_equal(line.get_xdata(), range(4))
    assert len(ax.collections) == 1  # CI band over the two seeds
    assert ax.get_xlabel() == "K (steps between linearisations)"
    assert ax.get_ylabel() == {"test_accuracy": "test accuracy",
                               "train_loss": "training loss (nats)"}[y]
    plt.close(fig)


def test_one_kernel_line_per_k_darker_for_larger_k_and_black_for_never():
    df = frames.kernels()
    fig = kernel_distance_plot(df, log_x=True)
    ax = fig.axes[0]
    lines = data_lines(ax)
    assert len(lines) == 4 and ax.get_xscale() == "symlog"
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "K"
    assert [t.get_text() for t in legend.get_texts()] == ["1", "4", "16", "∞"]
    colours = {t.get_text(): to_hex(h.get_color())
               for t, h in zip(legend.get_texts(), legend.get_lines(), strict=True)}
    assert colours["∞"] == "#000000" and len(set(colours.values())) == 4
    lightness = [sum(plt.matplotlib.colors.to_rgb(colours[k])) for k in ["1", "4", "16"]]
    assert lightness == sorted(lightness, reverse=True)
    never = [ln for ln in lines if to_hex(ln.get_color()) == "#000000"][0]
    means = df[df.every.isna()].groupby("step").kernel_distance.mean()
    np.testing.assert_allclose(never.get_ydata(), means.to_numpy())
    plt.close(fig)


def test_the_kernel_logger_frame_plots_with_an_every_column():
    # KernelLogger's own columns (an empty log has them): catches drift against the producer.
    columns = KernelLogger(torch.zeros(2, 3)).frame.columns
    df = frames.kernels(seeds=1)
    logged = pd.DataFrame({c: df[c] if c in df else 0.0 for c in columns}).assign(
        every=df.every, relative_change=df.kernel_distance * 2)
    fig = kernel_distance_plot(logged, y="relative_change")
    assert len(data_lines(fig.axes[0])) == 4 and "relative" in fig.axes[0].get_ylabel()
    plt.close(fig)
    fig = kernel_distance_plot(logged.drop(columns="every")[logged.every == 4])
    assert len(data_lines(fig.axes[0])) == 1 and fig.axes[0].get_legend() is None
    plt.close(fig)


def test_runs_repeated_without_a_seed_column_are_refused():
    with pytest.raises(ConfigError, match="several rows share"):
        accuracy_vs_k(frames.every().drop(columns="seed"))
