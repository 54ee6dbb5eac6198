"""Sample images before and after erasure, side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, DTypeError, ShapeError
from . import _style as st


@st.guarded
def erased_images(images: Mapping[str, Tensor | np.ndarray], n: int = 8, *,
                  image_shape: Sequence[int] | None = None, normalise: bool = True,
                  ax=None, title: str | None = None, path=None, dpi: float = st.DPI) -> Figure:
    """A grid with one row per method ("original", "LEACE", ...) and one column per example.

    Every method shows its first `min(n, rows)` images (the same examples when the tensors
    are aligned), drawn as one mosaic so that `ax=` can hold the whole grid.

    Args:
        images: `{name: images}`, each `[n, C, H, W]` (C = 1 or 3), `[n, H, W]` or flat
            `[n, D]`, on any device. Flat rows are `C·H·W` in channel-first order.
        image_shape: `(C, H, W)` or `(H, W)` for flat rows; a square grey image (`D = s²`,
            e.g. 8×8 digits) is inferred.
        normalise: scale each image to [0, 1] by its own minimum and maximum (over all its
            pixels and channels), since erasure moves pixels out of [0, 1]; a constant image
            is shown mid-grey. False: clip to [0, 1] instead (for images known to lie there).
    """
    what = "erased_images"
    check.positive_int(n, "n")
    if not isinstance(images, Mapping) or not images:
        raise ConfigError(f"{what} takes a non-empty dict {{method name: images}}, got "
                          f"{type(images).__name__}")
    blocks = {str(name): _as_images(x, f"images[{name!r}]", image_shape, n)
              for name, x in images.items()}
    shapes = {name: tuple(b.shape[1:]) for name, b in blocks.items()}
    if len(set(shapes.values())) > 1:
        raise ShapeError(f"every method needs images of one shape (C, H, W); got {shapes}")
    m = min(n, *(b.shape[0] for b in blocks.values()))
    grid = torch.stack([b[:m] for b in blocks.values()])  # [rows, m, C, H, W]
    grid = _normalise(grid) if normalise else grid.clamp(0.0, 1.0)
    mosaic, (h, w) = _mosaic(grid.numpy()), grid.shape[-2:]
    names = list(blocks)
    with sns.axes_style("white"):
        size = (0.9 * m + 1.4, 0.9 * len(names) + 0.3 + 0.3 * (title is not None))
        fig, axis = st.single(ax, what, size)
        axis.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0.0, vmax=1.0,
                    interpolation="nearest")
        axis.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(names))], names)
        axis.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(m)],
                        [str(c) for c in range(m)])
        axis.tick_params(length=0, labelsize="small")
        axis.tick_params(axis="y", labelsize="medium")
        axis.set_xlabel("example")
        for spine in axis.spines.values():
            spine.set_visible(False)
    return st.finish(fig, [axis], title, path, dpi)


def _as_images(x, name: str, image_shape: Sequence[int] | None, n: int) -> Tensor:
    """The first `n` rows of `x` as finite float images `[n, C, H, W]` in host memory."""
    x = check.as_tensor(x, name).detach()
    if x.is_complex() or x.dtype == torch.bool:
        raise DTypeError(f"{name} has dtype {x.dtype}; expected real pixel values")
    # Only the drawn rows leave the device: matplotlib needs them in host memory anyway.
    x = x[:n].cpu().to(torch.float32) if x.ndim else x
    check.check_finite(x, name)
    if x.ndim == 2:
        x = x.reshape(x.shape[0], *_shape(x.shape[1], image_shape, name))
    elif image_shape is not None:
        raise ConfigError(f"image_shape applies to flat rows [n, D]; {name} has shape "
                          f"{tuple(x.shape)}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ShapeError(f"{name} has shape {tuple(x.shape)}; expected [n, C, H, W] with C = 1 "
                         "or 3, [n, H, W] or [n, D], with n >= 1")
    return x


def _shape(d: int, image_shape: Sequence[int] | None, name: str) -> tuple[int, ...]:
    if image_shape is None:
        side = math.isqrt(d)
        if side * side != d:
            raise ShapeError(f"{name} has flat rows of {d} values, not a square grey image; pass "
                             "image_shape=(C, H, W) or (H, W)")
        return (1, side, side)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape) or math.prod(shape) != d:
        raise ShapeError(f"image_shape {tuple(image_shape)} does not fit {name}'s rows of {d} "
                         "values; expected (C, H, W) or (H, W) with that many values")
    return shape if len(shape) == 3 else (1, *shape)


def _normalise(grid: Tensor) -> Tensor:
    lo = grid.amin(dim=(-3, -2, -1), keepdim=True)
    span = grid.amax(dim=(-3, -2, -1), keepdim=True) - lo
    flat = span == 0
    return torch.where(flat, torch.full_like(grid, 0.5), (grid - lo) / torch.where(flat, 1, span))


def _mosaic(grid: np.ndarray) -> np.ndarray:
    """`[rows, cols, C, H, W]` as one white-separated image `[H', W']` or `[H', W', 3]`."""
    rows, cols, c, h, w = grid.shape
    cells = np.ones((rows, cols, h + 1, w + 1, c), dtype=grid.dtype)
    cells[:, :, :h, :w] = grid.transpose(0, 1, 3, 4, 2)
    out = cells.transpose(0, 2, 1, 3, 4).reshape(rows * (h + 1), cols * (w + 1), c)[:-1, :-1]
    return out[..., 0] if c == 1 else out
