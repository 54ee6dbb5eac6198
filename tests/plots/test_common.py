"""Every plot: PNG of the expected size and not blank, drawing into a given Axes, bad input."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn
from PIL import Image

from featurebias.errors import ConfigError, DTypeError, ShapeError
from featurebias.plots import (
    accuracy_vs_k,
    did_plot,
    kernel_distance_plot,
    learning_curves,
    mdl_bars,
    pc_attribution_plot,
    probe_accuracy,
    representation_bias,
    similarity_heatmap,
)

from . import frames

# (plot, frame maker, options, a column the plot needs)
CASES = {
    "representation_by_site": (representation_bias, frames.variance, {}, "value"),
    "representation_by_step": (representation_bias, lambda: frames.variance(steps=(0, 10)),
                               {"by": "step", "sites": [frames.SITES[0]]}, "step"),
    "pc_attribution": (pc_attribution_plot, frames.pcs, {"site": frames.SITES[0]}, "r2"),
    "probe_accuracy": (probe_accuracy, lambda: frames.probes().copy(), {}, "chance_accuracy"),
    "similarity": (similarity_heatmap, frames.similarity, {}, "y"),
    "learning_curves": (learning_curves, frames.curves, {"col": None, "seed": None}, "loss"),
    "mdl_bars": (mdl_bars, frames.mdl, {"uniform": math.log2(10)}, "bits_per_sample"),
    "did": (did_plot, frames.did, {}, "se"),
    "accuracy_vs_k": (accuracy_vs_k, frames.every, {}, "test_accuracy"),
    "kernel_distance": (kernel_distance_plot, frames.kernels, {}, "kernel_distance"),
}


def case(name):
    plot, make, options, needed = CASES[name]
    frame = make()
    options = dict(options)
    if options.pop("seed", "keep") is None:  # one panel's worth, so that ax= can hold it
        frame = frame[frame["arch"] == "mlp"]
    return plot, frame, options, needed


@pytest.mark.parametrize("name", CASES)
def test_png_has_figure_size_times_dpi_and_is_not_blank(name, tmp_path):
    plot, frame, options, _ = case(name)
    path = tmp_path / "new" / "folder" / f"{name}.png"
    fig = plot(frame, **options, title="A title", path=path, dpi=40)
    expected = tuple(fig.get_size_inches() * 40)
    with Image.open(path) as img:
        assert img.format == "PNG"
        size, pixels = img.size, np.asarray(img.convert("L"), dtype=float)
    assert size == pytest.approx(expected, abs=1)
    assert pixels.std() > 1.0  # something other than the background was drawn
    titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle
                                                    else ""]
    assert "A title" in titles
    plt.close(fig)


@pytest.mark.parametrize("name", CASES)
def test_draws_into_the_given_axes_and_leaves_the_frame_alone(name):
    plot, frame, options, _ = case(name)
    before = frame.copy()
    mine, ax = plt.subplots()
    open_before = plt.get_fignums()
    fig = plot(frame, **options, ax=ax)
    assert fig is mine and plt.get_fignums() == open_before
    drawn = ax.lines + ax.patches + ax.collections + ax.images
    assert drawn and (ax.get_ylabel() or ax.get_yticklabels())
    pd.testing.assert_frame_equal(frame, before)
    plt.close(fig)


@pytest.mark.parametrize("name", CASES)
def test_missing_column_is_named_with_the_columns_present(name):
    plot, frame, options, needed = case(name)
    open_before = plt.get_fignums()
    with pytest.raises(ShapeError, match=needed) as err:
        plot(frame.drop(columns=needed), **options)
    assert str(list(frame.drop(columns=needed).columns)) in str(err.value)
    assert plt.get_fignums() == open_before


@pytest.mark.parametrize("name", ["representation_by_site", "mdl_bars", "did"])
def test_rejects_non_frames_and_empty_frames(name):
    plot, frame, options, _ = case(name)
    with pytest.raises(DTypeError, match="DataFrame"):
        plot(frame.to_dict("list"), **options)
    with pytest.raises(ShapeError, match="no rows"):
        plot(frame.iloc[:0], **options)


@pytest.mark.parametrize("bad", [{"dpi": 0}, {"dpi": True}, {"path": 3}, {"path": ""},
                                 {"path": "figure.v2"}, {"ax": "not an axes"}])
def test_bad_output_options_fail_before_drawing(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative path that slipped through would land here
    open_before = plt.get_fignums()
    with pytest.raises(ConfigError):
        mdl_bars(frames.mdl(), **bad)
    assert plt.get_fignums() == open_before and not list(tmp_path.iterdir())


def test_a_call_failing_mid_drawing_closes_the_figure_it_opened(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(seaborn, "lineplot", boom)
    open_before = plt.get_fignums()
    with pytest.raises(RuntimeError, match="drawing failed"):
        representation_bias(frames.variance())
    assert plt.get_fignums() == open_before
