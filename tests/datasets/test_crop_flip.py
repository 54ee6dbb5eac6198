"""Batch augmentation: every output is a crop (and maybe mirror) of the padded input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from featurebias.datasets import CropFlip, crop_flip
from featurebias.datasets.augment import make_augment
from featurebias.errors import ConfigError, ShapeError


def candidates(image: np.ndarray, p: int, flip: bool) -> list[np.ndarray]:
    """Every crop of the zero-padded image (and its mirror): a per-image numpy reference."""
    c, h, w = image.shape
    padded = np.pad(image, ((0, 0), (p, p), (p, p)))
    out = []
    for dy, dx in itertools.product(range(2 * p + 1), repeat=2):
        crop = padded[:, dy:dy + h, dx:dx + w]
        out += [crop, crop[:, :, ::-1]] if flip else [crop]
    return out


@pytest.mark.parametrize("p, flip", [(2, True), (1, False), (3, True)])
def test_each_image_is_one_of_its_crops(p, flip):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 6, 7, generator=g)
    out = crop_flip(x, p, flip=flip, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    mirrored = 0
    for src, dst in zip(x.numpy(), out.numpy(), strict=True):
        options = candidates(src, p, flip)
        hits = [i for i, cand in enumerate(options) if np.array_equal(cand, dst)]
        assert hits, "output is not a crop/flip of its input"
        mirrored += flip and hits[0] % 2 == 1
    assert (mirrored > 0) == flip


def test_offsets_and_flips_cover_their_range():
    x = torch.zeros(400, 1, 5, 5)
    x[:, 0, 2, 2] = 1  # a single bright pixel shows the shift
    out = crop_flip(x, 2, generator=torch.Generator().manual_seed(2))
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 5, where % 5
    assert set(rows.tolist()) == set(range(5)) and set(cols.tolist()) == set(range(5))
    asym = torch.zeros(400, 1, 4, 4)
    asym[:, 0, :, 0] = 1  # the left column: a flip moves it to the right
    flipped = crop_flip(asym, 0, generator=torch.Generator().manual_seed(3))[:, 0, 0, 3] == 1
    assert 150 < int(flipped.sum()) < 250


def test_no_padding_no_flip_is_identity_and_labels_pass_through():
    x, y = torch.rand(5, 2, 4, 4), torch.arange(5)
    assert torch.equal(crop_flip(x, 0, flip=False), x)
    out, labels = CropFlip(0, flip=False)(x, y)
    assert torch.equal(out, x) and labels is y


def test_cropflip_is_seeded_and_resettable():
    x, y = torch.rand(16, 3, 8, 8), torch.zeros(16)
    a = CropFlip(seed=4)
    first, second = a(x, y)[0], a(x, y)[0]
    assert not torch.equal(first, second)  # the stream moves on between batches
    a.reset()
    assert torch.equal(a(x, y)[0], first)
    assert torch.equal(CropFlip(seed=4)(x, y)[0], first)
    assert not torch.equal(CropFlip(seed=5)(x, y)[0], first)
    state = torch.get_rng_state()
    CropFlip(seed=4)(x, y)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("side, want", [(32, 4), (8, 1), (16, 2)])
def test_default_padding_is_an_eighth_of_the_side(side, want):
    x = torch.zeros(64, 1, side, side)
    x[:, 0, side // 2, side // 2] = 1
    out = CropFlip(flip=False, seed=0)(x, None)[0]
    where = out[:, 0].flatten(1).argmax(1)
    assert int((where // side - side // 2).abs().max()) == want


def test_named_augments_and_bad_input():
    assert make_augment(None, 0) is None
    assert isinstance(make_augment("translate", 0), CropFlip)
    assert make_augment("translate", 0).padding == 1 and not make_augment("crop", 0).flip
    with pytest.raises(ConfigError, match="augment"):
        make_augment("mixup", 0)
    with pytest.raises(ShapeError, match="images"):
        crop_flip(torch.zeros(4, 16), 1)
    with pytest.raises(ConfigError, match="padding"):
        CropFlip(-1)
