"""Pieces shared by the model zoo: seeded construction, activations, input reshaping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from .. import _validate as check
from ..errors import ConfigError, ShapeError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of `ACTIVATIONS`)."""
    return ACTIVATIONS[check.choice(name, "activation", tuple(ACTIVATIONS))]()


class Dense(nn.Module):
    """Linear map then activation: `hook_pre` sees the pre-activation, `hook_post` the output."""

    def __init__(self, d_in: int, d_out: int, act: str = "relu"):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.hook_pre = HookPoint()
        self.act = activation(act)
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(self.act(self.hook_pre(self.linear(x))))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the global CPU RNG seeded by `seed`, leaving the caller's as it was.

    nn.Module constructors draw their initial weights from the global RNG, so seeding it is the
    one way to make them reproducible; fork_rng restores it afterwards. Only the CPU generator
    is seeded (the weights are created on the CPU): `torch.manual_seed` would also reseed every
    CUDA device, which `devices=[]` would not restore.
    """
    seed = check.positive_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def parse_image_size(size, name: str = "image_size", multiple: int = 1) -> tuple[int, int]:
    """`(h, w)` from an int or a pair of positive ints, each divisible by `multiple`."""
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"{name} must be an int or a pair (h, w) of ints, got {size!r}")
    h, w = (check.positive_int(v, name) for v in pair)
    if h % multiple or w % multiple:
        raise ConfigError(f"{name} must be divisible by {multiple} (the net pools {multiple}× "
                          f"in total), got {h}×{w}")
    return h, w


def as_float(x: Tensor, like: Tensor) -> Tensor:
    """Integer or bool inputs (e.g. uint8 pixels) as `like`'s float dtype; floats untouched."""
    if not isinstance(x, Tensor):
        raise ShapeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    return x if x.is_floating_point() else x.to(like.dtype)


def flat_features(x: Tensor, in_dim: int, like: Tensor) -> Tensor:
    """A batch `[b, ...]` flattened to `[b, in_dim]`."""
    x = as_float(x, like)
    if x.ndim < 2:
        raise ShapeError(f"input must be a batch [b, {in_dim}] (or [b, ...] with {in_dim} "
                         f"values per row), got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != in_dim:
        raise ShapeError(f"input has {x.shape[1]} values per row, expected in_dim={in_dim}")
    return x


def image_batch(x: Tensor, channels: int, size: tuple[int, int], like: Tensor, *,
                fixed_size: bool) -> Tensor:
    """A batch as `[b, c, h, w]`; a flat `[b, c·h·w]` batch is reshaped with the configured size.

    Args:
        fixed_size: whether a 4-D input must also match `size` (nets with a flattening head).
    """
    x = as_float(x, like)
    h, w = size
    if x.ndim == 2:
        if x.shape[1] != channels * h * w:
            raise ShapeError(f"flat input has {x.shape[1]} values per row, expected "
                             f"{channels}·{h}·{w} = {channels * h * w} (channels·height·width)")
        return x.reshape(x.shape[0], channels, h, w)
    if x.ndim != 4:
        raise ShapeError(f"input must be [b, c, h, w] or flat [b, c·h·w], got shape "
                         f"{tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ShapeError(f"input has {x.shape[1]} channels, expected {channels}")
    if fixed_size and tuple(x.shape[2:]) != (h, w):
        raise ShapeError(f"input images are {x.shape[2]}×{x.shape[3]}, expected {h}×{w} "
                         "(the configured image_size)")
    return x


class ImageClassifier(HookedRootModule):
    """Frame shared by the image models: input geometry, flat-input reshaping, output hooks.

    Subclasses build their layers (in `seeded(seed)`), a `head` linear layer, then call
    `self.setup()`.
    """

    fixed_size = False  # whether 4-D inputs must match image_size (nets that flatten maps)

    def __init__(self, in_channels: int, num_classes: int, image_size, multiple: int = 1):
        super().__init__()
        self.in_channels = check.positive_int(in_channels, "in_channels")
        self.num_classes = check.positive_int(num_classes, "num_classes")
        self.image_size = parse_image_size(image_size, multiple=multiple)
        self.hook_pooled = HookPoint()
        self.hook_logits = HookPoint()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """`(c, h, w)` of one input image."""
        return (self.in_channels, *self.image_size)

    def images(self, x: Tensor) -> Tensor:
        """The input as `[b, c, h, w]` (flat `[b, c·h·w]` rows are reshaped)."""
        return image_batch(x, self.in_channels, self.image_size, self.head.weight,
                           fixed_size=self.fixed_size)
