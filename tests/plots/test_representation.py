"""representation_bias and pc_attribution_plot on real variance_explained/pc_attribution output."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from featurebias.errors import ConfigError
from featurebias.plots import pc_attribution_plot, representation_bias

from . import frames
from .artists import band_limits, bars, lines_by_name, tick_texts

FEATURES = ["easy", "hard", "joint"]


def values(df, feature, measure="r2", by="site"):
    """The frame's values of one feature in plot order (sites as given, steps ascending)."""
    part = df[(df.feature == feature) & (df.measure == measure)]
    means = part.groupby(by, sort=False)["value"].mean()
    return means.reindex(frames.SITES).to_numpy() if by == "site" else means.sort_index().to_numpy()


@pytest.mark.parametrize("measure", ["r2", "unique"])
def test_one_line_per_feature_through_the_frame_values_in_site_order(measure):
    df = frames.variance()
    fig = representation_bias(df, measure=measure)
    ax = fig.axes[0]
    names = FEATURES if measure == "r2" else FEATURES[:2]  # the joint model has no unique share
    found = lines_by_name(ax, names)
    assert sorted(found) == sorted(names)
    for name, line in found.items():
        np.testing.assert_allclose(line.get_ydata(), values(df, name, measure))
    assert tick_texts(ax) == frames.SITES
    assert "variance explained" in ax.get_ylabel() and ax.get_xlabel() == "site"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    assert not ax.collections  # one seed: no CI band
    plt.close(fig)


def test_over_seeds_lines_are_means_inside_a_band_within_the_seed_range():
    df = frames.variance(seeds=3)
    fig = representation_bias(df, features=["easy", "hard"])
    ax = fig.axes[0]
    assert len(ax.collections) == 2
    for i, (name, line) in enumerate(lines_by_name(ax, ["easy", "hard"]).items()):
        mean = values(df, name)
        np.testing.assert_allclose(line.get_ydata(), mean)
        per_seed = df[(df.feature == name) & (df.measure == "r2")].pivot(
            index="seed", columns="site", values="value")[frames.SITES].to_numpy()
        lo, hi = band_limits(ax, i)
        assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
        assert np.all(lo >= per_seed.min(0) - 1e-12) and np.all(hi <= per_seed.max(0) + 1e-12)
    plt.close(fig)


def test_bars_have_the_frame_heights():
    df = frames.variance()
    fig = representation_bias(df, kind="bar", features=["easy", "hard"])
    heights = sorted(round(b.get_height(), 9) for b in bars(fig.axes[0]))
    expected = sorted(round(v, 9) for f in ("easy", "hard") for v in values(df, f))
    assert heights == expected
    plt.close(fig)


def test_over_steps_one_panel_per_site_and_log_steps():
    steps = (0, 10, 100)
    df = frames.variance(steps=steps)
    fig = representation_bias(df, by="step", log_x=True)
    assert [ax.get_title() for ax in fig.axes] == frames.SITES
    for ax, site in zip(fig.axes, frames.SITES, strict=True):
        assert ax.get_xscale() == "symlog"  # step 0 is present
        for name, line in lines_by_name(ax, FEATURES).items():
            np.testing.assert_array_equal(line.get_xdata(), steps)
            np.testing.assert_allclose(line.get_ydata(), values(df[df.site == site], name,
                                                               by="step"))
    assert fig.axes[-1].get_legend() is not None and fig.axes[0].get_legend() is None
    plt.close(fig)
    fig = representation_bias(df[df.step > 0], by="step", log_x=True, sites=frames.SITES[1:2])
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"
    plt.close(fig)


@pytest.mark.parametrize("step, expected", [(None, 100), (10, 10)])
def test_by_site_draws_one_checkpoint(step, expected):
    df = frames.variance(steps=(10, 100))
    fig = representation_bias(df, step=step, features=["easy"])
    (line,) = lines_by_name(fig.axes[0], ["easy"]).values()
    np.testing.assert_allclose(line.get_ydata(), values(df[df.step == expected], "easy"))
    plt.close(fig)


@pytest.mark.parametrize("options, message", [
    ({"measure": "r3"}, "measure='r3' matches no rows"),
    ({"by": "layer"}, "by must be one of"),
    ({"kind": "bar", "by": "step"}, "kind='bar'"),
    ({"log_x": True}, "log_x applies to steps"),
    ({"features": ["easy", "medium"]}, r"\['medium'\] are not in the frame"),
    ({"sites": []}, "non-empty subset"),
    ({"step": 5}, "no step column"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        representation_bias(frames.variance(), **options)


def test_seeds_without_a_seed_column_are_caught_not_averaged():
    df = frames.variance(seeds=2).drop(columns="seed")
    with pytest.raises(ConfigError, match="several rows share"):
        representation_bias(df)


def test_several_panels_do_not_fit_one_given_axes():
    _, ax = plt.subplots()
    with pytest.raises(ConfigError, match="3 panels"):
        representation_bias(frames.variance(steps=(0, 1)), by="step", ax=ax)


def test_pc_bars_stack_each_features_share_on_the_pc_variance():
    df = frames.pcs(n_components=4)
    site = frames.SITES[1]
    fig = pc_attribution_plot(df, site=site, components=3)
    ax = fig.axes[0]
    drawn = bars(ax)
    assert len(drawn) == 3 * 3  # 3 PCs × (easy, hard, unexplained)
    assert tick_texts(ax) == ["1", "2", "3"] and ax.get_xlabel() == "principal component"
    part = df[(df.site == site) & (df.component <= 3)]
    for k in range(3):
        column = [b for b in drawn if abs(b.get_x() + b.get_width() / 2 - k) < 1e-9]
        column.sort(key=lambda b: b.get_y())
        rows = part[part.component == k + 1].set_index("feature")
        share = rows.variance_fraction * rows.r2
        np.testing.assert_allclose([b.get_height() for b in column[:2]],
                                   share[["easy", "hard"]].to_numpy())
        top = column[-1].get_y() + column[-1].get_height()
        assert top == pytest.approx(max(rows.variance_fraction.iloc[0], share.sum()))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["easy", "hard", "unexplained"]
    plt.close(fig)


def test_pc_plot_needs_a_site_when_there_are_several():
    with pytest.raises(ConfigError, match="pass site="):
        pc_attribution_plot(frames.pcs())
    with pytest.raises(ConfigError, match="components must be an integer"):
        pc_attribution_plot(frames.pcs(), site=frames.SITES[0], components=0)
