"""Colour-vs-shape images: labels recoverable from pixels, masks as specified, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from featurebias.datasets import colour_shape
from featurebias.datasets.images import PALETTE, SHAPES, draw_masks
from featurebias.errors import ConfigError

ALL_SHAPES = tuple(SHAPES)


def inside(name: str, u: float, v: float) -> bool:
    """Point-in-shape for one point (u, v) in radius units: a loop-free-of-torch reference."""
    rho = math.hypot(u, v)
    return {
        "square": max(abs(u), abs(v)) <= 0.85,
        "circle": rho <= 1,
        "triangle": v <= 0.75 and abs(u) <= (v + 1) / 1.75,
        "cross": (abs(u) <= 0.3 and abs(v) <= 1) or (abs(v) <= 0.3 and abs(u) <= 1),
        "diamond": abs(u) + abs(v) <= 1,
        "ring": 0.55 <= rho <= 1,
    }[name]


def reference_mask(name: str, cy: float, cx: float, r: float, size: int) -> np.ndarray:
    return np.array([[inside(name, (j + 0.5 - cx) / r, (i + 0.5 - cy) / r)
                      for j in range(size)] for i in range(size)])


def test_shapes_dtypes_and_range():
    task = colour_shape(64, 16, 16, size=16)
    x, y = task.train
    assert x.shape == (64, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert y.shape == (64, 2) and y.dtype == torch.int64
    assert task.num_classes == (2, 2) and task.feature_names == ("colour", "shape")
    assert [len(task.split(s)[0]) for s in ("train", "val", "test")] == [64, 16, 16]


def test_masks_match_a_pointwise_reference():
    task = colour_shape(24, 1, 1, size=20, colours=("red", "blue", "white"), shapes=ALL_SHAPES,
                        noise=0.0, background=0.0, seed=2)
    x, y = task.train
    geometry = task.info["geometry"]["train"]
    assert len(set(y[:, 1].tolist())) >= 4
    for img, (_, shape), (cy, cx, r) in zip(x, y, geometry.tolist(), strict=True):
        want = reference_mask(ALL_SHAPES[shape], cy, cx, r, 20)
        got = (img != 0).any(0).numpy()
        assert np.array_equal(got, want)
        assert want.sum() > 0  # every object is visible


def test_mean_object_colour_identifies_the_colour_class():
    colours = ("red", "green", "blue", (0.5, 0.5, 0.5))
    task = colour_shape(200, 8, 8, size=24, colours=colours, shapes=("triangle", "ring", "cross"),
                        noise=0.1, background=0.0, seed=3)
    x, y = task.train
    geo = task.info["geometry"]["train"]
    masks = draw_masks(y[:, 1], geo[:, :2], geo[:, 2], 24, task.info["shapes"])
    mean = (x * masks[:, None]).sum((2, 3)) / masks.sum((1, 2))[:, None]
    palette = torch.tensor([PALETTE["red"], PALETTE["green"], PALETTE["blue"], (0.5, 0.5, 0.5)])
    assert torch.allclose(task.info["palette"], palette)
    nearest = torch.cdist(mean, palette).argmin(1)
    assert torch.equal(nearest, y[:, 0])


def test_shapes_differ_in_area_and_overlap():
    n = len(ALL_SHAPES)
    masks = draw_masks(torch.arange(n), torch.full((n, 2), 16.3), torch.full((n,), 12.0), 32,
                       ALL_SHAPES)
    analytic = {"square": 1.7 ** 2, "circle": math.pi, "triangle": 1.75,
                "cross": 2 * 1.2 - 0.36, "diamond": 2.0, "ring": math.pi * (1 - 0.55 ** 2)}
    for name, area in zip(ALL_SHAPES, masks.sum((1, 2)).tolist(), strict=True):
        assert area / 144 == pytest.approx(analytic[name], rel=0.06)
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    iou = inter / (flat.sum(1)[:, None] + flat.sum(1)[None] - inter)
    assert float((iou - torch.eye(n)).max()) < 0.9  # no two shapes nearly coincide


def test_colour_and_shape_are_balanced_and_independent():
    task = colour_shape(2048, 8, 8, size=8, radius=(0.25, 0.4))
    y = task.train[1]
    assert (y.double().mean(0) - 0.5).abs().max() < 4 * math.sqrt(0.25 / 2048)
    assert mutual_info_score(y[:, 0].numpy(), y[:, 1].numpy()) / math.log(2) < 0.01


def test_seeded_and_splits_have_their_own_streams():
    a = colour_shape(32, 8, 8, size=12, seed=4)
    b = colour_shape(32, 8, 8, size=12, seed=4)
    c = colour_shape(32, 8, 8, size=12, seed=5)
    longer = colour_shape(64, 8, 8, size=12, seed=4)
    state = torch.get_rng_state()
    colour_shape(4, 4, 4, size=12, seed=4)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[1], b.test[1])
    assert not torch.equal(a.train[0], c.train[0])
    assert torch.equal(a.test[0], longer.test[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 0}, "n_train"),
    ({"n_test": -2}, "n_test"),
    ({"size": 2}, "size"),
    ({"colours": ("red",)}, "two distinct"),
    ({"colours": ("red", "red")}, "two distinct"),
    ({"colours": ("red", "mauve")}, "unknown colour"),
    ({"colours": ("red", (1.2, 0, 0))}, "RGB triple"),
    ({"shapes": ("square", "hexagon")}, "shapes"),
    ({"shapes": ("square",)}, "shapes"),
    ({"radius": (0.4, 0.3)}, "radius"),
    ({"radius": (0.1, 0.6)}, "radius"),
    ({"noise": -0.1}, "noise"),
    ({"size": 8, "radius": (0.1, 0.2)}, "under one pixel"),
])
def test_bad_options(kwargs, match):
    options = {"n_train": 4, "n_val": 4, "n_test": 4, **kwargs}
    with pytest.raises(ConfigError, match=match):
        colour_shape(**options)
