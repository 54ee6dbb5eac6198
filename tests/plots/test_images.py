"""erased_images: one mosaic row per method, per-image min-max scaling, shape handling."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from featurebias.errors import ConfigError, DTypeError, NonFiniteError, ShapeError
from featurebias.plots import erased_images

from . import frames
from .artists import tick_texts


def mosaic(fig) -> np.ndarray:
    return np.asarray(fig.axes[0].images[0].get_array())


def cell(img: np.ndarray, row: int, col: int, h: int, w: int) -> np.ndarray:
    return img[row * (h + 1): row * (h + 1) + h, col * (w + 1): col * (w + 1) + w]


def test_rows_are_methods_columns_are_examples_each_scaled_to_unit_range():
    images = frames.images(n=5)
    fig = erased_images(images, n=4, title="erasure")
    ax = fig.axes[0]
    img = mosaic(fig)
    assert img.shape == (2 * 9 - 1, 4 * 9 - 1)  # 8×8 cells, 1-pixel white gutters
    assert tick_texts(ax, "y") == ["original", "LEACE"] and tick_texts(ax) == ["0", "1", "2", "3"]
    for r, x in enumerate(images.values()):
        for c in range(4):
            expected = x[c].reshape(8, 8).numpy()
            expected = (expected - expected.min()) / (expected.max() - expected.min())
            np.testing.assert_allclose(cell(img, r, c, 8, 8), expected, atol=1e-6)
    assert ax.get_title() == "erasure"
    plt.close(fig)


def test_colour_images_keep_channels_and_clipping_replaces_scaling():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 4, 5, generator=g) * 3 - 1  # leaves [0, 1] as erased images do
    fig = erased_images({"a": x, "b": x}, normalise=False)
    img = mosaic(fig)
    assert img.shape == (2 * 5 - 1, 3 * 6 - 1, 3)
    np.testing.assert_allclose(cell(img, 1, 2, 4, 5), x[2].permute(1, 2, 0).clamp(0, 1).numpy())
    plt.close(fig)


@pytest.mark.parametrize("x, shape, hw", [
    (torch.rand(2, 6, 4), None, (6, 4)),
    (torch.rand(2, 24), (6, 4), (6, 4)),
    (torch.rand(2, 72), (3, 6, 4), (6, 4)),
    (np.random.default_rng(0).random((2, 1, 6, 4)), None, (6, 4)),
])
def test_accepted_layouts(x, shape, hw):
    fig = erased_images({"m": x}, image_shape=shape)
    h, w = hw
    assert mosaic(fig).shape[:2] == (h, 2 * (w + 1) - 1)
    plt.close(fig)


def test_a_constant_image_is_mid_grey():
    fig = erased_images({"flat": torch.full((1, 16), 3.0)})
    assert np.all(mosaic(fig) == 0.5)
    plt.close(fig)


@pytest.mark.parametrize("images, options, error, message", [
    ({"a": torch.rand(2, 10)}, {}, ShapeError, "not a square grey image"),
    ({"a": torch.rand(2, 10)}, {"image_shape": (3, 3)}, ShapeError, "does not fit"),
    ({"a": torch.rand(2, 4, 4), "b": torch.rand(2, 5, 5)}, {}, ShapeError, "one shape"),
    ({"a": torch.rand(2, 2, 4, 4)}, {}, ShapeError, "C = 1 or 3"),
    ({"a": torch.tensor([[float("nan")] * 4])}, {}, NonFiniteError, "NaN"),
    ({"a": torch.ones(2, 4, dtype=torch.bool)}, {}, DTypeError, "bool"),
    ({"a": torch.rand(2, 4, 4)}, {"image_shape": (4, 4)}, ConfigError, "flat rows"),
    ({}, {}, ConfigError, "non-empty dict"),
    ({"a": torch.rand(2, 16)}, {"n": 0}, ConfigError, "n must be an integer"),
])
def test_bad_images_are_refused_without_a_figure(images, options, error, message):
    open_before = plt.get_fignums()
    with pytest.raises(error, match=message):
        erased_images(images, **options)
    assert plt.get_fignums() == open_before


def test_png_and_given_axes(tmp_path):
    fig = erased_images(frames.images(), path=tmp_path / "img.png", dpi=30)
    assert (tmp_path / "img.png").stat().st_size > 0
    plt.close(fig)
    mine, ax = plt.subplots()
    assert erased_images(frames.images(), ax=ax) is mine and len(ax.images) == 1
    plt.close(mine)
