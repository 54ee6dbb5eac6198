"""Small synthetic classification data for the probe tests."""

from __future__ import annotations

import torch


def blobs(n: int, d: int, k: int, *, signal: float = 2.0, seed: int = 0,
          offset: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes: float64 `x [n, d]` (means of scale `signal`, unit noise, shifted by
    `offset`) and balanced int64 labels `y [n]`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    y = y[torch.randperm(n, generator=g)]
    means = signal * torch.randn(k, d, generator=g, dtype=torch.float64)
    x = means[y] + torch.randn(n, d, generator=g, dtype=torch.float64) + offset
    return x, y


def circles(n: int, seed: int = 0, extra: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric rings in the first two coordinates (radius 1 vs 2) plus noise columns."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    angle = 2 * torch.pi * torch.rand(n, generator=g, dtype=torch.float64)
    radius = 1.0 + y + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    ring = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
    return torch.cat([ring, torch.randn(n, extra, generator=g, dtype=torch.float64)], 1), y


def xor(n: int, seed: int = 0, extra: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Label = sign(x0) XOR sign(x1), with a margin, plus noise columns."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2 + extra, generator=g, dtype=torch.float64)
    x[:, :2] += 0.5 * torch.sign(x[:, :2])
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
