"""The streamed cross-entropy objective against autograd through `F.cross_entropy`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from featurebias.probes import _logistic
from featurebias.probes._logistic import CrossEntropy


def reference(x, ids, row_weight, w, b):
    """`Σ_i s_i CE_i` and its gradients by autograd, in float64."""
    w = w.double().requires_grad_()
    b = b.double().requires_grad_()
    z = x.double() @ w.T + b
    if w.shape[0] == 1:  # one logit for two classes: class 1 against class 0
        z = torch.cat([torch.zeros_like(z), z], 1)
    loss = (row_weight.double() * F.cross_entropy(z, ids, reduction="none")).sum()
    loss.backward()
    return loss.detach(), w.grad, b.grad


@pytest.mark.parametrize("k", [2, 3, 7])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_bytes", [None, 1000])  # one chunk; many, the last one short
def test_loss_and_gradient_match_autograd(k, weighted, chunk_bytes, monkeypatch):
    if chunk_bytes:
        monkeypatch.setattr(_logistic, "CHUNK_BYTES", chunk_bytes)
    g = torch.Generator().manual_seed(k)
    n, d, problems = 301, 9, 3 if weighted else 1
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    ids = torch.randint(0, k, (n,), generator=g)
    raw = (torch.rand(problems, n, generator=g, dtype=torch.float64) + 0.5
           if weighted else torch.ones(1, n, dtype=torch.float64))
    if weighted:  # some rows left out of some problems, as cross-validation folds are
        raw[1, ::3] = 0
    s = raw / raw.sum(1, keepdim=True)
    outputs = 1 if k == 2 else k
    w = torch.randn(problems, outputs, d, generator=g, dtype=torch.float64)
    b = torch.randn(problems, outputs, generator=g, dtype=torch.float64)
    objective = CrossEntropy(x, ids, outputs, s)
    if chunk_bytes:
        assert objective.chunk < n and n % objective.chunk
    loss, grad_w, grad_b = objective(w, b)
    assert loss.dtype == torch.float64 and loss.shape == (problems,)
    for p in range(problems):
        want_loss, want_w, want_b = reference(x, ids, s[p], w[p], b[p])
        torch.testing.assert_close(loss[p], want_loss, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_w[p], want_w, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad_b[p], want_b, rtol=1e-10, atol=1e-12)
    # A subset of the problems gives those problems' values.
    some = torch.tensor([problems - 1])
    for got, want in zip(objective(w[some], b[some], some), (loss, grad_w, grad_b),
                         strict=True):
        torch.testing.assert_close(got[0], want[-1], rtol=1e-12, atol=1e-14)


def test_confident_logits_give_no_denormal_probabilities():
    # Classes ~95 and ~190 nats below the best one: in float32 e^-95 is a denormal, which
    # would slow the gradient product down ~100x; it must come out as a normal float or 0.
    x = torch.tensor([[1.0], [-1.0]])
    ids = torch.tensor([2, 1])
    w = torch.tensor([[0.0], [-95.0], [95.0]])
    objective = CrossEntropy(x, ids, 3, torch.full((1, 2), 0.5))
    loss, grad_w, grad_b = objective(w[None], torch.zeros(1, 3))
    tiny = torch.finfo(torch.float32).tiny
    for g in (grad_w, grad_b):
        assert torch.isfinite(g).all()
        assert not ((g != 0) & (g.abs() < tiny)).any()
    assert 0 <= float(loss[0]) < 1e-6


@pytest.mark.parametrize("k", [2, 4])
def test_rows_grouped_by_the_problems_that_use_them_are_skipped_by_the_others(k, monkeypatch):
    # Four problems leaving out one block each (cross-validation folds, rows ordered by fold):
    # every problem streams only its own rows, and the values still match autograd.
    monkeypatch.setattr(_logistic, "CHUNK_BYTES", 800)  # chunks that straddle the blocks
    g = torch.Generator().manual_seed(k)
    n, d, problems = 200, 5, 4
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    ids = torch.randint(0, k, (n,), generator=g)
    s = torch.rand(problems, n, generator=g, dtype=torch.float64) + 0.5
    for p in range(problems):
        s[p, 50 * p:50 * p + 50] = 0
    outputs = 1 if k == 2 else k
    w = torch.randn(problems, outputs, d, generator=g, dtype=torch.float64)
    b = torch.randn(problems, outputs, generator=g, dtype=torch.float64)
    objective = CrossEntropy(x, ids, outputs, s)
    assert [(first, last) for first, last, _ in objective.runs] == [
        (0, 50), (50, 100), (100, 150), (150, 200)]
    for subset in (None, torch.tensor([0, 2]), torch.tensor([3])):
        rows = torch.arange(problems) if subset is None else subset
        w_a, b_a = w[rows], b[rows]
        loss, grad_w, grad_b = objective(w_a, b_a, subset)
        for i, p in enumerate(rows.tolist()):
            want_loss, want_w, want_b = reference(x, ids, s[p], w_a[i], b_a[i])
            torch.testing.assert_close(loss[i], want_loss, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad_w[i], want_w, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(grad_b[i], want_b, rtol=1e-10, atol=1e-12)


def test_runs_only_where_they_skip_enough():
    used = torch.ones(4, 100, dtype=torch.float64)
    assert _logistic._runs(used) == [(0, 100, None)]
    used[0, :5] = 0  # 5 of 400 row-problems skipped: not worth splitting the products
    assert _logistic._runs(used) == [(0, 100, None)]
    many = 2 * _logistic.MAX_RUNS
    alternating = torch.ones(2, many)
    alternating[1, ::2] = 0  # a quarter of the work skippable, but in too many runs
    assert _logistic._runs(alternating) == [(0, many, None)]
    used = torch.ones(2, 100)
    used[0, 60:] = 0
    runs = _logistic._runs(used)
    assert [(a, b) for a, b, _ in runs] == [(0, 60), (60, 100)]
    assert runs[1][2].tolist() == [False, True]
