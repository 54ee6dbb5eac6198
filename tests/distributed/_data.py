"""Seeded test problems, built alike on every rank and in the parent process."""

from __future__ import annotations

import torch
from torch import nn

SHARDS = (1000, 10, 517)  # rows per rank: unequal, one tiny
D, K = 12, 3
F64 = torch.float64


def problem(n: int = sum(SHARDS), d: int = D, k: int = K, seed: int = 0):
    """`(x [n, d] float64, z [n] class ids)`: classes differ in mean and covariance."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, k, (n,), generator=g)
    scale = 1 + torch.rand(k, d, generator=g, dtype=F64)
    shift = torch.randn(k, d, generator=g, dtype=F64)
    mix = torch.randn(d, d, generator=g, dtype=F64) / d ** 0.5 + torch.eye(d, dtype=F64)
    x = (torch.randn(n, d, generator=g, dtype=F64) * scale[z] + shift[z]) @ mix
    return x + 5.0, z  # an offset from 0, so that the means matter


def shard(t, rank: int, sizes=SHARDS):
    """Rank `rank`'s consecutive rows of `t` (a tensor, or a dict of them)."""
    start, stop = sum(sizes[:rank]), sum(sizes[:rank + 1])
    if isinstance(t, dict):
        return {k: v[start:stop] for k, v in t.items()}
    return t[start:stop]


def representation(n: int = sum(SHARDS), seed: int = 2):
    """`(acts {site: [n, p]}, features {name: [n]})`: int, string and float features."""
    g = torch.Generator().manual_seed(seed)
    colour = torch.randint(0, 3, (n,), generator=g)
    shape = torch.randint(0, 2, (n,), generator=g)
    size = torch.rand(n, generator=g, dtype=F64)
    basis = torch.randn(3, 6, generator=g, dtype=F64)
    h = (torch.nn.functional.one_hot(colour, 3).to(F64) @ basis * 2 + shape[:, None] * basis[1]
         + size[:, None] * basis[2] + 0.5 * torch.randn(n, 6, generator=g, dtype=F64))
    dead = torch.full((n, 2), 3.0, dtype=F64)  # constant columns: exactly 0 after centring
    names = ["round", "square"]
    # Levels -1 and 7 only on odd rows, which split_of keeps for testing: levels no fit row
    # has, -1 the level one-process coding drops (the smallest), 7 one it keeps.
    shade = torch.randint(0, 3, (n,), generator=g)
    shade[1:40:2], shade[41:80:2] = -1, 7
    return ({"a": h, "b": torch.cat([h[:, :3] ** 2, dead], 1)},
            {"colour": colour, "shape": [names[i] for i in shape.tolist()], "size": size,
             "shade": shade})


def split_of(n: int):
    """This rank's explicit split: even rows fit, odd rows test."""
    return torch.arange(0, n, 2), torch.arange(1, n, 2)


def cka_batches(widths=(5, 7, 4), sizes=(16, 16, 12, 16, 9, 16, 16, 20, 16), seed: int = 3):
    """Minibatches `{name: [m, p]}` of three related representations."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in sizes:
        base = torch.randn(m, 4, generator=g, dtype=F64)
        out.append({f"r{i}": base @ torch.randn(4, w, generator=g, dtype=F64)
                    + 0.3 * torch.randn(m, w, generator=g, dtype=F64)
                    for i, w in enumerate(widths)})
    return out


CKA_OWNER = (0, 0, 0, 0, 0, 2, 2, 2, 2)  # rank 1 sees no batch at all

BATCH_SIZES = (40, 3, 25, 40, 17, 40, 9)  # model batches: uneven, one tiny


def model_batches(in_dim: int = 8, seed: int = 4):
    """`(batches [list of [b, in_dim]], labels [N])` for fit_erasers and collect."""
    g = torch.Generator().manual_seed(seed)
    n = sum(BATCH_SIZES)
    z = torch.randint(0, K, (n,), generator=g)
    x = torch.randn(n, in_dim, generator=g, dtype=F64) + torch.randn(K, in_dim, generator=g,
                                                                     dtype=F64)[z]
    return list(x.split(list(BATCH_SIZES))), z


def _seeded_mlp(*widths: int) -> nn.Sequential:
    """A float64 ReLU MLP, seeded (plain torch: no model zoo to import in every rank)."""
    g = torch.Generator().manual_seed(0)
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b, dtype=F64), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / p.shape[-1] ** 0.5)
    return model


def small_mlp() -> nn.Sequential:
    return _seeded_mlp(8, 16, 12, K)


SITES = ["1", "2"]  # the first ReLU's output and the second layer's pre-activation


class TokenModel(nn.Module):
    """`[b, T]` tokens → `[b, T, V]` logits: the smallest sequence model."""

    def __init__(self, vocab: int = 7, width: int = 6):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = nn.Embedding(vocab, width, dtype=F64)
        self.out = nn.Linear(width, vocab, dtype=F64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)

    def forward(self, x):
        return self.out(torch.tanh(self.embed(x)))


def classification(n: int = 96, seed: int = 5):
    """`(x [n, 6], y [n])` float64, 3 classes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 6, generator=g, dtype=F64) + 1.5 * torch.randn(3, 6, generator=g,
                                                                       dtype=F64)[y]
    return x, y


def sequences(n: int = 64, length: int = 5, vocab: int = 7, seed: int = 6):
    """`(x [n, T], y [n, T])`: next-token targets with −100 at random positions."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = (x * 3 + 1) % vocab
    y[torch.rand(n, length, generator=g) < 0.4] = -100
    return x, y


def tiny_mlp() -> nn.Sequential:
    return _seeded_mlp(6, 10, 3)
