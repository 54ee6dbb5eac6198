"""CKA: golden values, feature-space vs Gram formulas, the unbiased HSIC, minibatch CKA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    NonFiniteError,
    NotFittedError,
    RangeError,
    ShapeError,
)
from featurebias.similarity import MinibatchCKA, cka
from featurebias.similarity import _inputs as inputs

F64 = torch.float64


def related(n: int, p: int, q: int, seed: int = 0, noise: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=gen, dtype=F64)
    y = x @ torch.randn(p, q, generator=gen, dtype=F64) + noise * torch.randn(
        n, q, generator=gen, dtype=F64)
    return x, y


def gram_cka(k: torch.Tensor, ell: torch.Tensor) -> float:
    """Kornblith et al.'s Gram formula with an explicit centring matrix H."""
    n = k.shape[0]
    h = torch.eye(n, dtype=F64) - 1.0 / n
    kc, lc = h @ k @ h, h @ ell @ h
    return float((kc * lc).sum() / (kc.norm() * lc.norm()))


def song_hsic(k: torch.Tensor, ell: torch.Tensor) -> float:
    """Song et al. (2007)'s unbiased HSIC, written out term by term."""
    n = k.shape[0]
    kt, lt = k.clone().fill_diagonal_(0), ell.clone().fill_diagonal_(0)
    one = torch.ones(n, dtype=F64)
    value = (torch.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
             - 2 / (n - 2) * (one @ kt @ lt @ one))
    return float(value / (n * (n - 3)))


def song_cka(k: torch.Tensor, ell: torch.Tensor) -> float:
    return song_hsic(k, ell) / math.sqrt(song_hsic(k, k) * song_hsic(ell, ell))


def with_nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[1, 0] = float("nan")
    return x


def rbf_gram(x: torch.Tensor, theta: float) -> torch.Tensor:
    d = torch.cdist(x, x).square()
    return torch.exp(-d / (2 * theta**2 * float(np.median(d.numpy()))))


def test_golden_values(golden_pair):
    x, y = golden_pair
    assert cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert cka(x, y, "rbf", theta=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


@pytest.mark.parametrize("n,p,q", [(300, 20, 30), (40, 60, 25)], ids=["feature", "gram"])
def test_linear_matches_gram_formula(n, p, q):
    x, y = related(n, p, q)
    assert cka(x, y) == pytest.approx(gram_cka(x @ x.T, y @ y.T), abs=1e-10)


def test_feature_space_streams_chunks(monkeypatch):
    x, y = related(500, 12, 7, seed=1)
    whole = cka(x, y), cka(x, y, debiased=True)
    monkeypatch.setattr(inputs, "CHUNK_ELEMENTS", 12 * 37)  # 37-row chunks, a ragged last one
    chunked = cka(x, y), cka(x, y, debiased=True)
    assert chunked == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize("rows", [True, False])
def test_self_product_matches_matmul(rows):
    a = torch.randn(37, 11, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    got, a64 = inputs.self_product(a, rows=rows), a.double()
    expected = a64 @ a64.T if rows else a64.T @ a64
    assert got.dtype == F64 and got.is_contiguous() and torch.equal(got, got.T)
    assert torch.allclose(got, expected, rtol=1e-13, atol=1e-12)


def test_float32_input_accumulates_in_float64():
    x, y = related(2000, 16, 8, seed=2)
    x = x + 100.0  # a large offset: centring in float32 would lose digits
    assert cka(x.float(), y.float()) == pytest.approx(cka(x.float().double(), y.float().double()),
                                                      abs=1e-9)


@pytest.mark.parametrize("n,p,q", [(200, 15, 10), (30, 50, 40)], ids=["feature", "gram"])
def test_debiased_equals_explicit_unbiased_hsic(n, p, q):
    x, y = related(n, p, q, seed=3)
    assert cka(x, y, debiased=True) == pytest.approx(song_cka(x @ x.T, y @ y.T), abs=1e-10)


def test_debiased_rbf_equals_explicit_unbiased_hsic():
    x, y = related(60, 5, 4, seed=4)
    expected = song_cka(rbf_gram(x, 0.8), rbf_gram(y, 0.8))
    assert cka(x, y, "rbf", debiased=True, theta=0.8) == pytest.approx(expected, abs=1e-10)


def test_rbf_matches_gram_formula_and_explicit_sigma():
    x, y = related(80, 6, 5, seed=5)
    expected = gram_cka(rbf_gram(x, 0.5), rbf_gram(y, 0.5))
    assert cka(x, y, "rbf", theta=0.5) == pytest.approx(expected, abs=1e-10)
    sx = 0.5 * math.sqrt(float(np.median(torch.cdist(x, x).square().numpy())))
    sy = 0.5 * math.sqrt(float(np.median(torch.cdist(y, y).square().numpy())))
    assert cka(x, y, "rbf", sigma=(sx, sy)) == pytest.approx(expected, abs=1e-10)


def test_debiased_is_near_zero_for_independent_representations():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(200, 100, generator=gen, dtype=F64)
    y = torch.randn(200, 100, generator=gen, dtype=F64)
    assert cka(x, y) > 0.3  # the biased estimator is inflated by p/n
    assert abs(cka(x, y, debiased=True)) < 0.03


def test_constant_columns_are_fine():
    x, y = related(100, 5, 4, seed=7)
    padded = torch.cat([x, torch.full((100, 2), 3.0, dtype=F64)], dim=1)
    assert cka(padded, y) == pytest.approx(cka(x, y), abs=1e-12)


def test_minibatch_single_batch_equals_debiased_cka():
    for n, p in ((120, 6), (40, 64)):  # feature-space and Gram paths per batch
        x, y = related(n, p, 5, seed=8)
        assert MinibatchCKA().update(x, y).value == pytest.approx(cka(x, y, debiased=True),
                                                                  abs=1e-12)


def test_minibatch_converges_to_full_cka():
    x, y = related(16000, 8, 6, seed=9, noise=3.0)
    full = cka(x, y)
    mb = MinibatchCKA()
    for start in range(0, 16000, 200):
        mb.update(x[start:start + 200], y[start:start + 200])
    assert mb.n_batches_ == 80 and mb.n_samples_ == 16000
    assert mb.value == pytest.approx(full, abs=0.01)
    assert mb.value == pytest.approx(cka(x, y, debiased=True), abs=0.01)
    few = MinibatchCKA().update(x[:200], y[:200]).update(x[200:400], y[200:400])
    assert abs(mb.value - full) < abs(few.value - full) + 0.01


def test_minibatch_dict_mode_matrix():
    x, y = related(300, 6, 5, seed=10)
    z = torch.randn(300, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    acts = {"a": x, "b": y, "c": z}
    mb, pair = MinibatchCKA(), MinibatchCKA()
    for s in range(0, 300, 100):
        mb.update({k: v[s:s + 100] for k, v in acts.items()})
        pair.update(x[s:s + 100], y[s:s + 100])
    m = mb.matrix()
    assert mb.names == ["a", "b", "c"]
    assert torch.allclose(m, m.T) and torch.equal(m.diagonal(), torch.ones(3, dtype=F64))
    assert float(m[0, 1]) == pytest.approx(pair.value, abs=1e-12)
    frame = mb.to_frame()
    assert list(frame.columns) == ["x", "y", "measure", "value"] and len(frame) == 9
    with pytest.raises(ConfigError, match="matrix"):
        _ = mb.value


def test_minibatch_rejects_bad_batches_without_changing_state():
    x, y = related(40, 4, 3, seed=11)
    mb = MinibatchCKA()
    with pytest.raises(NotFittedError):
        mb.matrix()
    mb.update(x[:20], y[:20])
    before = mb.value
    cases = [
        (lambda: mb.update(x[:3], y[:3]), ShapeError, "at least 4"),
        (lambda: mb.update(x[:10, :2], y[:10]), ShapeError, "columns"),
        (lambda: mb.update(x[:10], y[:9]), ShapeError, "rows"),
        (lambda: mb.update({"x": x[:10], "y": y[:10]}), ConfigError, "same form"),
        (lambda: mb.update(x[:10]), ConfigError, "x and y"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words):
            call()
    assert mb.value == before and mb.n_batches_ == 1


@pytest.mark.parametrize("call,error,words", [
    (lambda x, y: cka(x, y[:-1]), ShapeError, "rows"),
    (lambda x, y: cka(x[:1], y[:1]), ShapeError, "at least 2"),
    (lambda x, y: cka(x[:3], y[:3], debiased=True), ShapeError, "at least 4"),
    (lambda x, y: cka(with_nan(x), y), NonFiniteError, "NaN"),
    (lambda x, y: cka(torch.ones_like(x), y), RangeError, "constant"),
    (lambda x, y: cka(x, y, "poly"), ConfigError, "kernel"),
    (lambda x, y: cka(x, y, sigma=1.0), ConfigError, "rbf"),
    (lambda x, y: cka(x, y, "rbf", sigma=-1.0), ConfigError, "positive"),
    (lambda x, y: cka(x[0], y), ShapeError, "expected"),
], ids=["n-mismatch", "n<2", "debiased-n<4", "nan", "constant", "kernel", "sigma-linear",
        "sigma-negative", "1-d"])
def test_bad_input(call, error, words):
    x, y = related(20, 4, 3)
    with pytest.raises(error, match=words) as info:
        call(x, y)
    assert isinstance(info.value, FeatureBiasError)
