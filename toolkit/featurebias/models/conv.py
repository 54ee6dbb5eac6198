"""Plain convolutional nets: LeNet-small and a conv stack with global average pooling."""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from .. import _validate as check
from ._common import Dense, ImageClassifier, seeded


class ConvStage(nn.Module):
    """3×3 convolution (padding 1) → ReLU → optional 2× max-pool.

    `hook_pre` sees the convolution's output, `hook_post` the stage's output `[b, c, h, w]`.
    """

    def __init__(self, c_in: int, c_out: int, *, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.hook_pre = HookPoint()
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(self.pool(self.act(self.hook_pre(self.conv(x)))))


class LeNet(ImageClassifier):
    """LeNet-small: conv 3×3 → 6 → pool 2 → conv 3×3 → 16 → pool 2 → FC 120 → 84 → classes.

    Hook points: `conv.{0,1}.hook_pre`/`hook_post` (`[b, c, h, w]`; post is after ReLU and
    pooling), `hook_pooled` (the flattened `[b, 16·h/4·w/4]` features), `fc.{0,1}.hook_pre`/
    `hook_post` (`[b, 120]`, `[b, 84]`), `hook_logits`. Takes `[b, c, h, w]` at the configured
    size, or flat `[b, c·h·w]`.
    """

    fixed_size = True  # the flattening head needs the configured image size

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *,
                 image_size: int | tuple[int, int] = 8, seed: int = 0):
        super().__init__(in_channels, num_classes, image_size, multiple=4)
        h, w = self.image_size
        with seeded(seed):
            self.conv = nn.ModuleList([ConvStage(self.in_channels, 6, pool=True),
                                       ConvStage(6, 16, pool=True)])
            self.fc = nn.ModuleList([Dense(16 * (h // 4) * (w // 4), 120), Dense(120, 84)])
            self.head = nn.Linear(84, self.num_classes)
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        x = self.images(x)
        for stage in self.conv:
            x = stage(x)
        x = self.hook_pooled(x.flatten(1))
        for layer in self.fc:
            x = layer(x)
        return self.hook_logits(self.head(x))


class SmallCNN(ImageClassifier):
    """`depth` 3×3 conv + ReLU layers of `width` channels, global average pooling, linear head.

    No pooling inside the stack, so it takes images of any size. Hook points:
    `conv.{i}.hook_pre`/`hook_post` (`[b, width, h, w]`), `hook_pooled` (`[b, width]`),
    `hook_logits`. A flat `[b, c·h·w]` input is reshaped with `image_size`.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16,
                 depth: int = 2, *, image_size: int | tuple[int, int] = 16, seed: int = 0):
        super().__init__(in_channels, num_classes, image_size)
        self.width = check.positive_int(width, "width")
        self.depth = check.positive_int(depth, "depth")
        chans = (self.in_channels,) + (self.width,) * self.depth
        with seeded(seed):
            self.conv = nn.ModuleList(ConvStage(a, b, pool=False)
                                      for a, b in pairwise(chans))
            self.head = nn.Linear(self.width, self.num_classes)
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        x = self.images(x)
        for stage in self.conv:
            x = stage(x)
        return self.hook_logits(self.head(self.hook_pooled(x.mean(dim=(2, 3)))))


def lenet(in_channels: int = 1, num_classes: int = 10, *,
          image_size: int | tuple[int, int] = 8, seed: int = 0) -> LeNet:
    """A seeded `LeNet` (LeNet-small of SCIENCE.md §5).

    Args:
        image_size: `h` or `(h, w)`, each divisible by 4 (two 2× pools); 8 fits the digits
            dataset, 28 MNIST, 32 CIFAR-10/SVHN.
        seed: the same seed gives the same initial parameters; the global RNG is left as it was.
    """
    return LeNet(in_channels, num_classes, image_size=image_size, seed=seed)


def small_cnn(in_channels: int = 3, num_classes: int = 10, width: int = 16, depth: int = 2, *,
              image_size: int | tuple[int, int] = 16, seed: int = 0) -> SmallCNN:
    """A seeded `SmallCNN`; `image_size` is used only to reshape flat inputs."""
    return SmallCNN(in_channels, num_classes, width, depth, image_size=image_size, seed=seed)
