"""Batched L-BFGS: minimisers of known problems, independence of the batched problems, stops."""

from __future__ import annotations

import torch

from featurebias.probes._lbfgs import minimize

F64 = torch.float64


def quadratics(problems: int, dim: int, seed: int = 0):
    """`f_p(x) = ½ (x − m_p)ᵀ A_p (x − m_p)` with condition numbers from 1 to ~1000."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(problems, dim, dim, generator=g, dtype=F64))
    spread = torch.logspace(0, 3, problems, dtype=F64)[:, None] ** torch.linspace(0, 1, dim,
                                                                                  dtype=F64)
    a = q @ torch.diag_embed(spread) @ q.mT
    m = torch.randn(problems, dim, generator=g, dtype=F64)
    return a, m


def quadratic_objective(a, m, tol, calls=None):
    def evaluate(x, rows):
        if calls is not None:
            calls.append(rows.tolist())
        r = x - m[rows]
        g = (a[rows] @ r[:, :, None])[:, :, 0]
        return 0.5 * (r * g).sum(1), g, g.abs().amax(1) <= tol
    return evaluate


def test_batched_quadratics_reach_their_minimisers():
    a, m = quadratics(6, 12)
    result = minimize(quadratic_objective(a, m, 1e-10), torch.zeros(6, 12, dtype=F64),
                      max_iter=500)
    assert result.converged.all()
    torch.testing.assert_close(result.x, m, rtol=0, atol=1e-7)
    # Harder problems (larger condition numbers) take more steps.
    assert result.n_iter[-1] > result.n_iter[0]


def test_each_problem_steps_as_if_alone():
    a, m = quadratics(5, 8, seed=1)
    together = minimize(quadratic_objective(a, m, 1e-9), torch.zeros(5, 8, dtype=F64),
                        max_iter=300)
    for p in range(5):
        alone = minimize(quadratic_objective(a[p:p + 1], m[p:p + 1], 1e-9),
                         torch.zeros(1, 8, dtype=F64), max_iter=300)
        assert int(alone.n_iter[0]) == int(together.n_iter[p])
        torch.testing.assert_close(alone.x[0], together.x[p], rtol=0, atol=1e-12)


def test_stopped_problems_are_not_evaluated_again():
    a, m = quadratics(4, 10, seed=2)
    calls = []
    result = minimize(quadratic_objective(a, m, 1e-8, calls), torch.zeros(4, 10, dtype=F64),
                      max_iter=300)
    assert calls[0] == [0, 1, 2, 3]
    evaluations = torch.zeros(4, dtype=torch.long)
    for rows in calls:
        evaluations[rows] += 1
    # The first problem (identity Hessian) stops first, and is not evaluated after that.
    assert result.converged.all() and evaluations[0] < evaluations[3]
    assert evaluations[0] == min(i for i, rows in enumerate(calls) if 0 not in rows)


def test_max_iter_stops_unconverged():
    a, m = quadratics(3, 20, seed=3)
    a, m = a[1:], m[1:]  # the first is the identity, solved exactly in one step
    result = minimize(quadratic_objective(a, m, 0.0), torch.zeros(2, 20, dtype=F64),
                      max_iter=3)
    assert not result.converged.any()
    assert result.n_iter.tolist() == [3, 3]


def rosenbrock(x, rows):
    u, v = x[:, 0], x[:, 1]
    f = (1 - u) ** 2 + 100 * (v - u**2) ** 2
    g = torch.stack([-2 * (1 - u) - 400 * u * (v - u**2), 200 * (v - u**2)], 1)
    return f, g, g.abs().amax(1) <= 1e-8


def test_backtracking_solves_rosenbrock_from_several_starts():
    starts = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0]], dtype=F64)
    result = minimize(rosenbrock, starts, max_iter=500)
    assert result.converged.all()
    torch.testing.assert_close(result.x, torch.ones(3, 2, dtype=F64), rtol=0, atol=1e-6)


def test_a_non_finite_trial_shrinks_the_step():
    # f = x²/2 − log(1 − x) is finite only for x < 1, least at (1 − √5)/2; from x = −3 the
    # first step (10 × the gradient) lands at 24.5, beyond the domain.
    def evaluate(x, rows):
        inside = x < 1
        f = torch.where(inside, x**2 / 2 - torch.log1p(-torch.where(inside, x, 0)), torch.inf)
        g = x + 1 / (1 - x)
        return f[:, 0], g, (g.abs() <= 1e-10)[:, 0] & inside[:, 0]

    result = minimize(evaluate, torch.tensor([[-3.0]], dtype=F64), max_iter=200, first_step=10)
    assert result.converged.all()
    torch.testing.assert_close(float(result.x), (1 - 5**0.5) / 2, rtol=0, atol=1e-9)


def test_converges_where_f_is_too_coarse_to_see_the_last_steps():
    # f carries an offset of 1e4 in float32 (rounding ~1e-3) while the gradient is exact:
    # the last steps' decreases (~1e-12) are invisible in f, and only the slope test can
    # accept them.
    a, m = quadratics(3, 6, seed=4)
    a, m = a.float(), m.float()

    def evaluate(x, rows):
        r = x - m[rows]
        g = (a[rows] @ r[:, :, None])[:, :, 0]
        f = (1e4 + 0.5 * (r * g).sum(1)).double()
        return f, g, g.abs().amax(1) <= 1e-5

    result = minimize(evaluate, torch.zeros(3, 6), max_iter=1000)
    assert result.converged.all()
    torch.testing.assert_close(result.x, m, rtol=0, atol=1e-3)
