"""Batched L-BFGS: independent smooth problems stepped together, one evaluation each per pass.

Fitting many probes on the same rows (a grid of `C` × cross-validation folds) costs one pass
over the data per step for all of them: the logits of every problem come from one wider
matrix product, which on a CPU runs several times faster per column than a product with
ten columns. Each problem keeps its own history, step and stopping state; problems that
stop drop out of the evaluations.

The line search backtracks from the unit step (Armijo's sufficient decrease, quadratic
interpolation): L-BFGS steps are accepted at once nearly always, so every pass moves every
problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

# Armijo's sufficient-decrease constant and the bounds on a backtracking step's shrinkage.
ARMIJO = 1e-4
SHRINK = (0.1, 0.5)
MAX_BACKTRACKS = 30
FLAT_SLOPE = 0.9

Evaluate = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


@dataclasses.dataclass
class Result:
    x: Tensor  # [problems, dim]: where each problem stopped
    n_iter: Tensor  # [problems]: accepted steps
    converged: Tensor  # [problems] bool: stopped by the caller's test (not max_iter, a stall)


def minimize(evaluate: Evaluate, x0: Tensor, *, max_iter: int, history: int = 10,
             first_step: float = 1.0) -> Result:
    """Minimise problems `x0 [problems, dim]` from their rows of `x0`.

    `evaluate(x [a, dim], rows [a])` returns, for the problems `rows` at points `x`, the
    objectives `[a]` (float64), the gradients `[a, dim]` and whether each point meets the
    caller's stopping test `[a]`; a problem stops at the first point that does. The first
    step is `-first_step · gradient` (the inverse curvature guessed at the start); later
    ones use the curvature pairs, scaled as usual by `sᵀy / yᵀy`.
    """
    problems, dim = x0.shape
    every = torch.arange(problems, device=x0.device)
    x = x0.clone()
    f, g, stop = evaluate(x, every)
    solution = x.clone()
    converged = stop.clone()
    n_iter = torch.zeros(problems, dtype=torch.long, device=x.device)
    memory = _Memory(problems, dim, history, x)
    direction = -first_step * g
    slope = (g * direction).sum(1)
    step = torch.ones(problems, dtype=torch.float64, device=x.device)
    backtracks = torch.zeros_like(n_iter)
    stuck = torch.zeros_like(converged)  # a step that no longer moves x: no progress possible
    active = ~converged
    while bool(active.any()):
        rows = active.nonzero()[:, 0]
        trial = x[rows] + step[rows, None].to(x.dtype) * direction[rows]
        f_t, g_t, stop_t = evaluate(trial, rows)
        # Sufficient decrease (Armijo), or, where f changes by no more than its rounding,
        # a slope along the direction that has shrunk (Hager & Zhang's approximate Wolfe
        # test): near a minimum f stops telling better from worse, but the gradient does not.
        rounding = 64 * torch.finfo(x.dtype).eps * f[rows].abs()
        armijo = f_t <= f[rows] + ARMIJO * step[rows] * slope[rows]
        slope_t = (g_t * direction[rows]).sum(1)
        flat = (f_t <= f[rows] + rounding) & (slope_t.abs() <= FLAT_SLOPE * slope[rows].abs())
        accept = (armijo | flat) & f_t.isfinite()
        solution[rows[stop_t]] = trial[stop_t]
        converged[rows[stop_t]] = True

        taken = rows[accept]
        moved = trial[accept] - x[taken]
        stuck[taken[(moved == 0).all(1)]] = True
        memory.add(taken, moved, g_t[accept] - g[taken])
        x[taken], f[taken], g[taken] = trial[accept], f_t[accept], g_t[accept]
        n_iter[taken] += 1
        direction[taken] = memory.direction(taken, g[taken], first_step)
        slope[taken] = (g[taken] * direction[taken]).sum(1)
        uphill = taken[slope[taken] >= 0]  # lost curvature information: restart from -g
        if len(uphill):
            memory.clear(uphill)
            direction[uphill] = -first_step * g[uphill]
            slope[uphill] = (g[uphill] * direction[uphill]).sum(1)
        step[taken] = 1.0
        backtracks[taken] = 0

        back = rows[~accept]
        if len(back):
            step[back] = _backtrack(step[back], slope[back], f[back], f_t[~accept])
            backtracks[back] += 1
        solution[~converged] = x[~converged]
        active = ~converged & ~stuck & (backtracks < MAX_BACKTRACKS) & (n_iter < max_iter)
    return Result(solution, n_iter, converged)


def _backtrack(step: Tensor, slope: Tensor, f0: Tensor, f_t: Tensor) -> Tensor:
    """The minimiser of the quadratic through `f(0)`, `f'(0)` and `f(step)`, kept within
    `SHRINK` of `step` (a non-finite trial just shrinks)."""
    curvature = 2 * (f_t - f0 - slope * step)
    guess = -slope * step.square() / curvature
    guess = torch.where(f_t.isfinite() & (curvature > 0), guess, SHRINK[0] * step)
    return guess.clamp(SHRINK[0] * step, SHRINK[1] * step)


class _Memory:
    """Each problem's last `size` curvature pairs `(s, y)`, newest last, in a ring."""

    def __init__(self, problems: int, dim: int, size: int, like: Tensor):
        self.s = like.new_zeros(problems, size, dim)
        self.y = like.new_zeros(problems, size, dim)
        self.rho = like.new_zeros(problems, size)  # 1 / sᵀy; 0 marks an empty slot
        self.head = torch.zeros(problems, dtype=torch.long, device=like.device)
        self.size = size

    def add(self, rows: Tensor, s: Tensor, y: Tensor) -> None:
        """Store the pairs whose curvature `sᵀy` is positive (others would break the
        update's positive definiteness: skipped, as is usual)."""
        sy = (s * y).sum(1)
        keep = sy > torch.finfo(s.dtype).eps * (y * y).sum(1)
        rows, s, y, sy = rows[keep], s[keep], y[keep], sy[keep]
        slot = self.head[rows]
        self.s[rows, slot], self.y[rows, slot], self.rho[rows, slot] = s, y, 1 / sy
        self.head[rows] = (slot + 1) % self.size

    def clear(self, rows: Tensor) -> None:
        self.rho[rows] = 0

    def direction(self, rows: Tensor, g: Tensor, first_step: float) -> Tensor:
        """`-H g` by the two-loop recursion, batched over `rows`."""
        # Each problem's pairs newest first, gathered once (empty slots have rho = 0).
        order = (self.head[rows, None] - 1 - torch.arange(self.size, device=g.device)) % self.size
        s = self.s[rows[:, None], order]  # [a, size, dim]
        y = self.y[rows[:, None], order]
        rho = self.rho[rows[:, None], order]
        q = g.clone()
        alphas = []
        for j in range(self.size):
            a = rho[:, j] * (s[:, j] * q).sum(1)
            q -= a[:, None] * y[:, j]
            alphas.append(a)
        tiny = torch.finfo(g.dtype).tiny
        gamma = torch.where(rho[:, 0] > 0, (s[:, 0] * y[:, 0]).sum(1) / (y[:, 0] * y[:, 0]).sum(
            1).clamp_min(tiny), first_step)
        q *= gamma[:, None]
        for j in reversed(range(self.size)):
            beta = rho[:, j] * (y[:, j] * q).sum(1)
            q += (alphas[j] - beta)[:, None] * s[:, j]
        return -q
