"""Batch augmentation for training transforms: random crop with zero padding, horizontal flip."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ShapeError
from .base import generator


def crop_flip(x: Tensor, padding: int, *, flip: bool = True,
              generator: torch.Generator | None = None) -> Tensor:
    """Each image of `x [n, c, h, w]` zero-padded by `padding`, cropped back to h×w at a random
    offset and, with `flip`, mirrored left-right with probability ½; one gather for the batch.

    Random numbers come from `generator` (a CPU generator) so results do not depend on the
    device x lives on.
    """
    if x.ndim != 4:
        raise ShapeError(f"crop_flip needs images [n, c, h, w], got shape {tuple(x.shape)}")
    padding = check.positive_int(padding, "padding", minimum=0)
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    mirror = (torch.rand(n, generator=generator) < 0.5) & flip
    offsets, mirror = offsets.to(x.device), mirror.to(x.device)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = offsets[0, :, None] + ar_h
    cols = offsets[1, :, None] + torch.where(mirror[:, None], w - 1 - ar_w, ar_w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


class CropFlip:
    """Training-batch augmentation `(x, y) -> (x, y)`: `crop_flip` with a seeded stream.

    Args:
        padding: pixels of zero padding (the crop's largest shift); None: ⌊0.125·side⌉, at
            least 1 (the paper's CIFAR setting; one pixel on 8×8 digits).
        flip: also mirror left-right (off for digits, whose mirror images are not digits).
        seed: the stream of offsets and flips; `reset()` restarts it, so a second training
            run with the same transform sees the same augmentations.
    """

    def __init__(self, padding: int | None = None, *, flip: bool = True, seed: int = 0):
        if padding is not None:
            check.positive_int(padding, "padding", minimum=0)
        self.padding, self.flip, self.seed = padding, bool(flip), seed
        self.reset()

    def reset(self) -> None:
        """Restart the random stream from `seed`."""
        self.generator = generator(self.seed, 0xA06)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        padding = self.padding
        if padding is None:
            padding = max(1, round(0.125 * min(x.shape[-2:]))) if x.ndim == 4 else 0
        return crop_flip(x, padding, flip=self.flip, generator=self.generator), y

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip}, seed={self.seed})"


def make_augment(augment, seed: int):
    """An augmentation `(x, y) -> (x, y)` from a name, a callable, or None.

    Names: `"crop_flip"` (paper 1: pad ⌊0.125·side⌉, crop, flip), `"crop"` (the same without
    the flip), `"translate"` (±1 pixel shifts, SCIENCE §5's small default for digits).
    """
    if augment is None or callable(augment):
        return augment
    options = {"crop_flip": {}, "crop": {"flip": False}, "translate": {"padding": 1, "flip": False}}
    return CropFlip(**options[check.choice(augment, "augment", tuple(options))], seed=seed)
