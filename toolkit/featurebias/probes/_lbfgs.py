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
    solution = x0.clone()
    n_iter = torch.zeros(problems, dtype=torch.long, device=x0.device)
    converged = torch.zeros(problems, dtype=torch.bool, device=x0.device)
    eps = torch.finfo(x0.dtype).eps
    # The state of the problems still running, one row each (`ids`: which problem).
    ids = torch.arange(problems, device=x0.device)
    x = x0.clone()
    f, g, stopped = evaluate(x, ids)
    memory = _Memory(problems, dim, history, x)
    direction = -first_step * g
    slope = (g * direction).sum(1)
    step = torch.ones_like(f)
    iters = torch.zeros_like(n_iter)
    backtracks = torch.zeros_like(n_iter)
    done = stopped
    while True:
        if bool(done.any()):
            solution[ids[done]], converged[ids[done]] = x[done], stopped[done]
            n_iter[ids[done]] = iters[done]
            keep = ~done
            if not bool(keep.any()):
                return Result(solution, n_iter, converged)
            ids, x, f, g, direction, slope, step, iters, backtracks = (
                t[keep] for t in (ids, x, f, g, direction, slope, step, iters, backtracks))
            memory.keep(keep)
        trial = x + step[:, None].to(x.dtype) * direction
        f_t, g_t, stopped = evaluate(trial, ids)
        # Sufficient decrease (Armijo), or, where f changes by no more than its rounding,
        # a slope along the direction that has shrunk (Hager & Zhang's approximate Wolfe
        # test): near a minimum f stops telling better from worse, but the gradient does not.
        armijo = f_t <= f + ARMIJO * step * slope
        flat = (f_t <= f + 64 * eps * f.abs()) & (
            (g_t * direction).sum(1).abs() <= FLAT_SLOPE * slope.abs())
        accept = (armijo | flat) & f_t.isfinite()
        moved = trial - x
        stuck = accept & (moved == 0).all(1)  # the step no longer moves x: no progress left
        memory.add(accept, moved, g_t - g)
        shrunk = _backtrack(step, slope, f, f_t)
        # A trial that meets the stopping test is where its problem ends, accepted or not.
        x = torch.where((accept | stopped)[:, None], trial, x)
        f = torch.where(accept, f_t, f)
        g = torch.where(accept[:, None], g_t, g)
        iters += accept
        fresh = memory.direction(g, first_step)
        uphill = accept & ((g * fresh).sum(1) >= 0)  # curvature information gone bad
        memory.clear(uphill)
        fresh = torch.where(uphill[:, None], -first_step * g, fresh)
        direction = torch.where(accept[:, None], fresh, direction)
        slope = (g * direction).sum(1)
        step = torch.where(accept, 1.0, shrunk)
        backtracks = torch.where(accept, 0, backtracks + 1)
        done = stopped | stuck | (backtracks >= MAX_BACKTRACKS) | (iters >= max_iter)


def _backtrack(step: Tensor, slope: Tensor, f0: Tensor, f_t: Tensor) -> Tensor:
    """The minimiser of the quadratic through `f(0)`, `f'(0)` and `f(step)`, kept within
    `SHRINK` of `step` (a non-finite trial just shrinks)."""
    curvature = 2 * (f_t - f0 - slope * step)
    guess = -slope * step.square() / curvature
    guess = torch.where(f_t.isfinite() & (curvature > 0), guess, SHRINK[0] * step)
    return guess.clamp(SHRINK[0] * step, SHRINK[1] * step)


class _Memory:
    """Each problem's last `size` curvature pairs `(s, y)` in order, oldest first; an empty
    slot holds zeros and is marked invalid."""

    def __init__(self, problems: int, dim: int, size: int, like: Tensor):
        self.s = like.new_zeros(problems, size, dim)
        self.y = like.new_zeros(problems, size, dim)
        self.valid = torch.zeros(problems, size, dtype=torch.bool, device=like.device)

    def keep(self, mask: Tensor) -> None:
        """Drop the problems outside `mask`."""
        self.s, self.y, self.valid = self.s[mask], self.y[mask], self.valid[mask]

    def add(self, mask: Tensor, s: Tensor, y: Tensor) -> None:
        """Append the pairs of the problems in `mask` whose curvature `sᵀy` is positive
        (others would break the update's positive definiteness: skipped, as is usual),
        dropping their oldest."""
        ok = mask & ((s * y).sum(1) > torch.finfo(s.dtype).eps * (y * y).sum(1))
        self.s, self.y, self.valid = (
            torch.where(ok.view(-1, *[1] * (old.ndim - 1)),
                        torch.cat([old[:, 1:], new[:, None]], 1), old)
            for old, new in ((self.s, s), (self.y, y), (self.valid, torch.ones_like(ok))))

    def clear(self, mask: Tensor) -> None:
        self.s[mask], self.y[mask], self.valid[mask] = 0, 0, False

    def direction(self, g: Tensor, first_step: float) -> Tensor:
        """`-H g` for every problem, in the compact form of Byrd, Nocedal & Schnabel:
        `H = γI + [S γY] [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]] [S γY]ᵀ` with the pairs as the
        columns of S and Y (oldest first), `R` the upper triangle of `SᵀY` and `D` its
        diagonal: a few batched products instead of the two-loop recursion's 4·size steps."""
        s, y = self.s, self.y
        sy = s @ y.mT
        yy = y @ y.mT
        gamma = torch.where(self.valid[:, -1], sy[:, -1, -1] / yy[:, -1, -1].clamp_min(
            torch.finfo(g.dtype).tiny), first_step)[:, None]
        # An empty slot gets an identity row in R: its terms then vanish.
        r = sy.triu() + torch.diag_embed((~self.valid).to(g.dtype))
        sg = (s @ g[:, :, None])[:, :, 0]
        yg = (y @ g[:, :, None])[:, :, 0]
        r_sg = torch.linalg.solve_triangular(r, sg[:, :, None], upper=True)[:, :, 0]
        inner = (sy.diagonal(dim1=1, dim2=2) * r_sg + gamma * (yy @ r_sg[:, :, None])[:, :, 0]
                 - gamma * yg)
        top = torch.linalg.solve_triangular(r.mT, inner[:, :, None], upper=False)[:, :, 0]
        return -(gamma * g + (top[:, None, :] @ s)[:, 0] - gamma * (r_sg[:, None, :] @ y)[:, 0])
