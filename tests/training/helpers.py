"""Small inline tasks and models for the training tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def blobs(n: int, d: int = 4, k: int = 3, *, seed: int = 0, scale: float = 3.0):
    """Gaussian classes: well separated when `scale` is large."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    centres = scale * torch.randn(k, d, generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def linear(d_in: int, d_out: int, *, seed: int = 0, dtype=torch.float32) -> nn.Linear:
    """A seeded linear model: output row j only feeds head j (disjoint heads)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(d_in, d_out, dtype=dtype)


class TokenModel(nn.Module):
    """Logits `[b, T, V]` from tokens `[b, T]`, position t seeing the tokens up to t.

    Each token's embedding gets its own map per position before a causal running sum, so the
    prefix is readable position by position (as a decoder's would be).
    """

    def __init__(self, vocab: int, length: int, width: int = 16, *, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab, width)
            self.mix = nn.Parameter(torch.randn(length, width, width) / width**0.5)
            self.hidden = nn.Linear(width, 2 * width)
            self.out = nn.Linear(2 * width, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[1]
        h = torch.einsum("btw,twv->btv", self.embed(tokens), self.mix[:t]).cumsum(1)
        return self.out(torch.relu(self.hidden(h)))


def sequence_task(n: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Tokens `[n, 6]`: 3 input bits, SEP (2), then the answers; targets -100 except 2 slots.

    Position 3 (SEP) predicts the first bit, position 4 predicts the XOR of bits 0 and 1.
    """
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 2, (n, 3), generator=g)
    first, xor = b[:, 0], b[:, 0] ^ b[:, 1]
    tokens = torch.cat([b, torch.full((n, 1), 2), first[:, None], xor[:, None]], 1)
    y = torch.full_like(tokens, -100)
    y[:, 3], y[:, 4] = first, xor
    return tokens, y
