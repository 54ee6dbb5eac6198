"""similarity_heatmap on real similarity_matrix output: cells, order, colour scale."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from featurebias.errors import ConfigError
from featurebias.plots import similarity_heatmap

from . import frames
from .artists import tick_texts


def cells(ax) -> np.ndarray:
    mesh = ax.collections[0]
    rows, cols = len(ax.get_yticks()), len(ax.get_xticks())
    return np.ma.filled(mesh.get_array(), np.nan).reshape(rows, cols)


@pytest.mark.parametrize("measure, limits", [("cka", (0.0, 1.0)), ("rsa", (-1.0, 1.0))])
def test_cells_hold_the_frame_values_in_the_given_order(measure, limits):
    df = frames.similarity(measure)
    fig = similarity_heatmap(df)
    ax = fig.axes[0]
    assert tick_texts(ax) == frames.SITES and tick_texts(ax, "y") == frames.SITES
    expected = df.pivot(index="x", columns="y", values="value").loc[frames.SITES, frames.SITES]
    np.testing.assert_allclose(cells(ax), expected.to_numpy())
    mesh = ax.collections[0]
    assert (mesh.norm.vmin, mesh.norm.vmax) == limits
    assert len(ax.texts) == 9 and ax.texts[0].get_text() == f"{expected.iloc[0, 0]:.2f}"
    colourbar = fig.axes[1]
    assert colourbar.get_ylabel() == ("linear CKA" if measure == "cka" else
                                      "RSA (Spearman ρ of RDMs)")
    plt.close(fig)


def test_order_picks_and_reorders_rows_and_columns():
    df = frames.similarity()
    order = [frames.SITES[2], frames.SITES[0]]
    fig = similarity_heatmap(df, order=order, annot=False)
    ax = fig.axes[0]
    assert tick_texts(ax) == order and tick_texts(ax, "y") == order and not ax.texts
    expected = df.pivot(index="x", columns="y", values="value").loc[order, order]
    np.testing.assert_allclose(cells(ax), expected.to_numpy())
    plt.close(fig)


def test_seeds_are_averaged_and_distances_span_their_data():
    df = frames.similarity()
    seeds = pd.concat([df.assign(seed=0), df.assign(seed=1, value=df.value / 2)])
    fig = similarity_heatmap(seeds.assign(measure="procrustes"))
    ax = fig.axes[0]
    expected = df.pivot(index="x", columns="y", values="value").loc[frames.SITES, frames.SITES]
    np.testing.assert_allclose(cells(ax), 0.75 * expected.to_numpy())
    assert ax.collections[0].norm.vmax == pytest.approx(0.75 * df.value.max())
    plt.close(fig)


def test_several_measures_need_a_choice():
    both = pd.concat([frames.similarity("cka"), frames.similarity("rsa")])
    with pytest.raises(ConfigError, match=r"pass measure=.*|\['cka', 'rsa'\]"):
        similarity_heatmap(both)
    fig = similarity_heatmap(both, measure="rsa")
    assert fig.axes[1].get_ylabel().startswith("RSA")
    plt.close(fig)
