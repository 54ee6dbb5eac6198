"""AdamW on stacked parameters: many models stepped together, each with its own weight decay
and step count, and only the models a mask names move.

The update is `torch.optim.AdamW`'s (Loshchilov & Hutter; amsgrad off): decay the weights by
`lr · decay`, then the bias-corrected Adam step. Written here because constructing a
`torch.optim` optimiser imports `torch._dynamo` (1.5 s on a process's first probe fit) and
because it has no per-model masks.
"""

from __future__ import annotations

import torch
from torch import Tensor


class AdamW:
    """For parameters `[models, size]`, all of a model's in one row (one update for all of
    them); the weight decay `decay [models]` applies where `decayed [size]` is True (weights,
    not biases)."""

    def __init__(self, like: Tensor, *, lr: float, decay: Tensor, decayed: Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.decay, self.decayed = decay.to(torch.float64), decayed
        self.first = torch.zeros_like(like)
        self.second = torch.zeros_like(like)
        self.steps = torch.zeros(len(like), dtype=torch.float64, device=like.device)

    def keep(self, mask: Tensor) -> None:
        """Drop the models outside `mask`."""
        self.decay, self.steps = self.decay[mask], self.steps[mask]
        self.first, self.second = self.first[mask], self.second[mask]

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, active: Tensor) -> None:
        """Update `param` in place from `grad`, for the models in `active [models]` only: the
        others' parameters and moments are left exactly as they were."""
        beta1, beta2 = self.betas
        self.steps += active
        t = self.steps.clamp_min(1)  # a model not yet stepped: finite factors, multiplied by 0
        on = active.to(torch.float64)
        # Per-model factors in float64 (torch computes them in Python floats), one column each.
        shrink, lerp, keep2, add2, step_size, root_correction = torch.stack([
            1 - on * self.lr * self.decay, on * (1 - beta1), 1 - on * (1 - beta2),
            on * (1 - beta2), -on * self.lr / (1 - beta1 ** t), (1 - beta2 ** t).sqrt(),
        ]).to(param.dtype)[:, :, None]
        param.mul_(torch.where(self.decayed, shrink, 1))
        self.first.lerp_(grad, lerp)
        self.second.mul_(keep2).addcmul_(grad, grad * add2)
        param.addcdiv_(self.first * step_size,
                       self.second.sqrt().div_(root_correction).add_(self.eps))
