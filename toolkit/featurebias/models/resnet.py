"""A small pre-activation ResNet with GroupNorm (no BatchNorm)."""

from __future__ import annotations

import math

from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from .. import _validate as check
from ._common import ImageClassifier, seeded
from .conv import ConvStage


def _norm(width: int) -> nn.GroupNorm:
    # GroupNorm keeps no running statistics, so train and eval mode compute the same function
    # and torch.func transforms see a pure function of the parameters.
    return nn.GroupNorm(math.gcd(width, 8), width)


class ResidualConvBlock(nn.Module):
    """Pre-activation block: `x + conv(relu(norm(conv(relu(norm(x))))))`, 3×3 convs, same width.

    Hook points: `hook_resid_pre`, `hook_conv_post` (the branch's hidden activation, after
    the second norm and ReLU), `hook_conv_out` (the branch before the add), `hook_resid_post`.
    """

    def __init__(self, width: int):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.norm1 = _norm(width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = _norm(width)
        self.act = nn.ReLU()
        self.hook_conv_post = HookPoint()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.hook_conv_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_resid_pre(x)
        h = self.conv1(self.act(self.norm1(x)))
        h = self.hook_conv_post(self.act(self.norm2(h)))
        return self.hook_resid_post(x + self.hook_conv_out(self.conv2(h)))


class SmallResNet(ImageClassifier):
    """Conv stem to `width` channels, `blocks` residual blocks, norm + ReLU, global average pool.

    Every layer keeps the spatial size, so it takes images of any size. Hook points:
    `stem.hook_pre`/`hook_post` (`[b, width, h, w]`), per block `blocks.{i}.hook_resid_pre`,
    `blocks.{i}.hook_conv_post`, `blocks.{i}.hook_conv_out`, `blocks.{i}.hook_resid_post`
    (all `[b, width, h, w]`), `hook_pooled` (`[b, width]`), `hook_logits`. A flat
    `[b, c·h·w]` input is reshaped with `image_size`.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16,
                 blocks: int = 2, *, image_size: int | tuple[int, int] = 16, seed: int = 0):
        super().__init__(in_channels, num_classes, image_size)
        self.width = check.positive_int(width, "width")
        self.num_blocks = check.positive_int(blocks, "blocks")
        with seeded(seed):
            self.stem = ConvStage(self.in_channels, self.width, pool=False)
            self.blocks = nn.ModuleList(ResidualConvBlock(self.width)
                                        for _ in range(self.num_blocks))
            self.norm_final = _norm(self.width)
            self.act = nn.ReLU()
            self.head = nn.Linear(self.width, self.num_classes)
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        x = self.images(x)
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.act(self.norm_final(x)).mean(dim=(2, 3))
        return self.hook_logits(self.head(self.hook_pooled(x)))


def small_resnet(in_channels: int = 3, num_classes: int = 10, width: int = 16, blocks: int = 2,
                 *, image_size: int | tuple[int, int] = 16, seed: int = 0) -> SmallResNet:
    """A seeded `SmallResNet`; `image_size` is used only to reshape flat inputs."""
    return SmallResNet(in_channels, num_classes, width, blocks, image_size=image_size, seed=seed)
