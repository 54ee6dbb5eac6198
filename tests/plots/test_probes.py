"""probe_accuracy on real probe_sites output: fold means, CI bands, chance lines, options."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from featurebias.errors import ConfigError, ShapeError
from featurebias.plots import palette, probe_accuracy

from . import frames
from .artists import data_lines, lines_by_name, tick_texts

SITES = frames.SITES[:2]


def test_lines_are_fold_means_with_bands_and_per_feature_chance():
    df = frames.probes()
    fig = probe_accuracy(df, title="probes")
    ax = fig.axes[0]
    assert tick_texts(ax) == SITES and ax.get_ylabel() == "probe accuracy (held-out)"
    assert len(ax.collections) == 2  # two folds per point: a band per feature
    for name, line in lines_by_name(ax, ["easy", "hard"]).items():
        mean = df[df.feature == name].groupby("site", sort=False).accuracy.mean()[SITES]
        np.testing.assert_allclose(line.get_ydata(), mean.to_numpy())
    # The features have different class counts, so each gets its own chance line.
    chance = {to_hex(line.get_color()): line.get_ydata()[0] for line in data_lines(ax, True)}
    for name, colour in palette(["easy", "hard"]).items():
        expected = df[df.feature == name].chance_accuracy.mean()
        assert chance[to_hex(colour)] == pytest.approx(expected)
    assert chance[to_hex(palette(["hard"])["hard"])] < chance[to_hex(palette(["easy"])["easy"])]
    assert "chance" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_a_shared_chance_level_is_one_black_line():
    df = frames.probes().copy()
    df["chance_log_loss_bits"] = 1.0
    fig = probe_accuracy(df, metric="log_loss_bits")
    ax = fig.axes[0]
    (chance,) = data_lines(ax, dashed=True)
    assert to_hex(chance.get_color()) == "#000000" and chance.get_ydata()[0] == 1.0
    assert "bits" in ax.get_ylabel()
    plt.close(fig)


def test_two_probes_need_a_style_and_then_get_a_line_each():
    df = frames.probes()
    both = pd.concat([df, df.assign(probe="MLPProbe", accuracy=df.accuracy * 0.9)])
    with pytest.raises(ConfigError, match=r"one probe at a time.*LogisticRegression.*MLPProbe"):
        probe_accuracy(both)
    fig = probe_accuracy(both, style="probe", chance=False)
    assert len(data_lines(fig.axes[0])) == 4 and not data_lines(fig.axes[0], dashed=True)
    plt.close(fig)
    fig = probe_accuracy(both[both.feature == "easy"], hue="probe")
    found = lines_by_name(fig.axes[0], ["LogisticRegression", "MLPProbe"], kind="probe")
    assert sorted(found) == ["LogisticRegression", "MLPProbe"]
    plt.close(fig)


@pytest.mark.parametrize("options, error, message", [
    ({"metric": "selectivity"}, ShapeError, "chance_selectivity"),
    ({"hue": "feature", "style": "feature"}, ConfigError, "two different columns"),
    ({"sites": ["layers.9"]}, ConfigError, r"\['layers.9'\] are not in the frame"),
])
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        probe_accuracy(frames.probes(), **options)
