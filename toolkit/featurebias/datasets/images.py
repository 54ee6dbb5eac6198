"""Colour-vs-shape images: one procedurally drawn shape per image (SCIENCE §6.1).

Colour is a per-pixel property (the easy feature for a CNN), shape a spatial one (the hard
feature). Shapes are masks over coordinates relative to the object's centre, in units of its
radius r, so every shape fits the square |u|, |v| ≤ 1 and is drawn for all images at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError
from .base import SPLITS, TaskData, generator

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "magenta": (0.85, 0.1, 0.8),
    "cyan": (0.1, 0.85, 0.9),
    "orange": (1.0, 0.55, 0.05),
    "white": (0.95, 0.95, 0.95),
}


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.85


def _circle(u: Tensor, v: Tensor) -> Tensor:
    return u.square() + v.square() <= 1


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    # Apex up (image rows grow downwards), base at v = 0.75, as wide as the box.
    return (v <= 0.75) & (u.abs() <= (v + 1) / 1.75)


def _cross(u: Tensor, v: Tensor) -> Tensor:
    return ((u.abs() <= 0.3) & (v.abs() <= 1)) | ((v.abs() <= 0.3) & (u.abs() <= 1))


def _diamond(u: Tensor, v: Tensor) -> Tensor:
    return u.abs() + v.abs() <= 1


def _ring(u: Tensor, v: Tensor) -> Tensor:
    r2 = u.square() + v.square()
    return (r2 <= 1) & (r2 >= 0.55 ** 2)


SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "square": _square, "circle": _circle, "triangle": _triangle, "cross": _cross,
    "diamond": _diamond, "ring": _ring,
}


def colour_shape(n_train: int = 4096, n_val: int = 1024, n_test: int = 1024, *, size: int = 32,
                 colours: Sequence[str | tuple[float, float, float]] = ("red", "green"),
                 shapes: Sequence[str] = ("square", "circle"),
                 radius: tuple[float, float] = (0.2, 0.35), background: float = 0.0,
                 noise: float = 0.05, seed: int = 0) -> TaskData:
    """RGB images `[n, 3, size, size]` in [0, 1] of one coloured shape on a noisy background.

    Colour and shape are drawn independently and uniformly, so each is balanced and neither
    predicts the other. Defaults: two colours × two shapes, i.e. two binary targets (one
    sigmoid head each); pass more for multi-class heads (`TrainConfig(heads=num_classes)`).

    Args:
        colours: palette names (`PALETTE`) or RGB triples in [0, 1].
        shapes: names from `SHAPES` (square, circle, triangle, cross, diamond, ring).
        radius: range of the object's radius as a fraction of `size` (uniform); the centre is
            uniform over the positions where the object fits in the image.
        background: grey level of the background.
        noise: standard deviation of Gaussian pixel noise over the whole image (then clamped).

    Returns:
        `TaskData` with y `[n, 2]` int64 = (colour id, shape id), `num_classes =
        (len(colours), len(shapes))`, feature names `("colour", "shape")`, and `info` with the
        RGB `palette`, `shapes`, `size`, and `geometry` per split (`[n, 3]`: centre row,
        centre column, radius, in pixels).
    """
    sizes = [check.positive_int(v, name) for v, name in
             ((n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test"))]
    size = check.positive_int(size, "size", minimum=4)
    rgb = _palette(colours)
    shapes = tuple(shapes)
    unknown = [s for s in shapes if s not in SHAPES]
    if len(shapes) < 2 or unknown or len(set(shapes)) != len(shapes):
        raise ConfigError(f"shapes must be at least two distinct names from {tuple(SHAPES)}, "
                          f"got {shapes!r}")
    lo, hi = (float(r) for r in radius)
    if not 0 < lo <= hi <= 0.5:
        raise ConfigError(f"radius must be (low, high) with 0 < low <= high <= 0.5 (fractions "
                          f"of the image size), got {radius!r}")
    if not 0 <= background <= 1 or noise < 0:
        raise ConfigError(f"background must lie in [0, 1] and noise be >= 0, got "
                          f"background={background!r}, noise={noise!r}")
    if lo * size < 1:
        raise ConfigError(f"radius {lo} of size {size} is under one pixel; shapes would vanish")
    seed = check.positive_int(seed, "seed", minimum=0)
    splits, geometry = {}, {}
    for index, (name, n) in enumerate(zip(SPLITS, sizes, strict=True)):
        gen = generator(seed, index)
        colour = torch.randint(0, len(rgb), (n,), generator=gen)
        shape = torch.randint(0, len(shapes), (n,), generator=gen)
        r = size * (lo + (hi - lo) * torch.rand(n, generator=gen))
        centre = r[:, None] + (size - 2 * r[:, None]) * torch.rand(n, 2, generator=gen)
        masks = draw_masks(shape, centre, r, size, shapes)
        image = torch.where(masks[:, None], rgb[colour][:, :, None, None],
                            torch.tensor(float(background)))
        image = image + noise * torch.randn(image.shape, generator=gen)
        splits[name] = (image.clamp(0, 1), torch.stack([colour, shape], 1))
        geometry[name] = torch.cat([centre, r[:, None]], 1)
    info = {"palette": rgb, "colours": tuple(c if isinstance(c, str) else tuple(c)
                                             for c in colours),
            "shapes": shapes, "size": size, "geometry": geometry, "seed": seed}
    return TaskData(**splits, num_classes=(len(rgb), len(shapes)),
                    feature_names=("colour", "shape"), info=info)


def draw_masks(shape: Tensor, centre: Tensor, radius: Tensor, size: int,
               shapes: Sequence[str]) -> Tensor:
    """Boolean masks `[n, size, size]` of shapes `shape` (ids into `shapes`) at `centre`.

    Pixel (i, j) is inside when its centre (i + ½, j + ½), in coordinates relative to the
    object's centre and divided by its radius, satisfies the shape's inequality.
    """
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    v = (grid[None, :, None] - centre[:, 0, None, None]) / radius[:, None, None]
    u = (grid[None, None, :] - centre[:, 1, None, None]) / radius[:, None, None]
    masks = torch.zeros(shape.shape[0], size, size, dtype=torch.bool)
    for s, name in enumerate(shapes):  # a handful of shape classes, each drawn in one go
        rows = (shape == s).nonzero()[:, 0]
        masks[rows] = SHAPES[name](u[rows], v[rows])
    return masks


def _palette(colours) -> Tensor:
    rgb = []
    for c in colours:
        if isinstance(c, str):
            if c not in PALETTE:
                raise ConfigError(f"unknown colour {c!r}; expected one of {tuple(PALETTE)} or "
                                  "an RGB triple")
            rgb.append(PALETTE[c])
        else:
            triple = tuple(float(v) for v in c)
            if len(triple) != 3 or not all(0 <= v <= 1 for v in triple):
                raise ConfigError(f"a colour must be a name or an RGB triple in [0, 1], got {c!r}")
            rgb.append(triple)
    table = torch.tensor(rgb, dtype=torch.float32).reshape(-1, 3)
    if table.shape[0] < 2 or torch.unique(table, dim=0).shape[0] != table.shape[0]:
        raise ConfigError(f"colours must be at least two distinct colours, got {colours!r}")
    return table
