"""Fully connected models: a plain MLP and a pre-norm residual MLP (ResMLP)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from .. import _validate as check
from ..errors import ConfigError
from ._common import ACTIVATIONS, Dense, activation, flat_features, seeded


def _widths(hidden) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise ConfigError(f"hidden must be an int or a sequence of ints, got {hidden!r}")
    return tuple(check.positive_int(w, f"hidden[{i}]") for i, w in enumerate(hidden))


class MLP(HookedRootModule):
    """`in_dim → hidden[0] → … → out_dim` with an activation after every hidden layer.

    Hook points: `layers.{i}.hook_pre` (`[b, hidden[i]]`, before the activation),
    `layers.{i}.hook_post` (after it) and `hook_logits` (`[b, out_dim]`). Any input `[b, ...]`
    is flattened to `[b, in_dim]`. An empty `hidden` gives a linear model.
    """

    def __init__(self, in_dim: int, hidden: int | Sequence[int] = (64, 64), out_dim: int = 2,
                 *, activation: str = "relu", seed: int = 0):
        super().__init__()
        self.in_dim = check.positive_int(in_dim, "in_dim")
        self.hidden = _widths(hidden)
        self.out_dim = check.positive_int(out_dim, "out_dim")
        check.choice(activation, "activation", tuple(ACTIVATIONS))
        dims = (self.in_dim, *self.hidden)
        with seeded(seed):
            self.layers = nn.ModuleList(Dense(a, b, activation) for a, b in pairwise(dims))
            self.head = nn.Linear(dims[-1], self.out_dim)
        self.hook_logits = HookPoint()
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        x = flat_features(x, self.in_dim, self.head.weight)
        for layer in self.layers:
            x = layer(x)
        return self.hook_logits(self.head(x))


class ResidualBlock(nn.Module):
    """Pre-norm residual MLP block: `x + W₂ act(W₁ LayerNorm(x))`, hidden width = width."""

    def __init__(self, width: int, act: str = "relu"):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.norm = nn.LayerNorm(width)
        self.fc_in = nn.Linear(width, width)
        self.act = activation(act)
        self.hook_mlp_post = HookPoint()
        self.fc_out = nn.Linear(width, width)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_resid_pre(x)
        h = self.hook_mlp_post(self.act(self.fc_in(self.norm(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.fc_out(h)))


class ResMLP(HookedRootModule):
    """Linear embedding to `width`, `depth` pre-norm residual blocks, LayerNorm, linear head.

    Hook points: `hook_embed` (`[b, width]`); per block `blocks.{i}.hook_resid_pre`,
    `blocks.{i}.hook_mlp_post` (hidden activation of the block's MLP),
    `blocks.{i}.hook_mlp_out` (the MLP branch before the residual add) and
    `blocks.{i}.hook_resid_post`; `hook_logits` (`[b, out_dim]`). LayerNorm, not BatchNorm,
    so train and eval mode compute the same function.
    """

    def __init__(self, in_dim: int, width: int = 64, depth: int = 2, out_dim: int = 2, *,
                 activation: str = "relu", seed: int = 0):
        super().__init__()
        self.in_dim = check.positive_int(in_dim, "in_dim")
        self.width = check.positive_int(width, "width")
        self.depth = check.positive_int(depth, "depth")
        self.out_dim = check.positive_int(out_dim, "out_dim")
        check.choice(activation, "activation", tuple(ACTIVATIONS))
        with seeded(seed):
            self.embed = nn.Linear(self.in_dim, self.width)
            self.blocks = nn.ModuleList(ResidualBlock(self.width, activation)
                                        for _ in range(self.depth))
            self.ln_final = nn.LayerNorm(self.width)
            self.head = nn.Linear(self.width, self.out_dim)
        self.hook_embed = HookPoint()
        self.hook_logits = HookPoint()
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_embed(self.embed(flat_features(x, self.in_dim, self.head.weight)))
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.head(self.ln_final(x)))


def mlp(in_dim: int, hidden: int | Sequence[int] = (64, 64), out_dim: int = 2, *,
        activation: str = "relu", seed: int = 0) -> MLP:
    """A seeded `MLP` (see its docstring for the hook points).

    Args:
        activation: one of "relu", "gelu", "silu", "tanh", "sigmoid", "identity".
        seed: the same seed gives the same initial parameters; the global RNG is left as it was.
    """
    return MLP(in_dim, hidden, out_dim, activation=activation, seed=seed)


def resmlp(in_dim: int, width: int = 64, depth: int = 2, out_dim: int = 2, *,
           activation: str = "relu", seed: int = 0) -> ResMLP:
    """A seeded `ResMLP` with `depth` residual blocks of width `width`."""
    return ResMLP(in_dim, width, depth, out_dim, activation=activation, seed=seed)
