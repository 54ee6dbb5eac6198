"""CCA family against direct whitened-data SVD and scikit-learn; Procrustes; mutual k-NN."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.cross_decomposition import CCA

from featurebias.errors import ConfigError, FeatureBiasError, RangeError, ShapeError
from featurebias.similarity import _inputs as inputs
from featurebias.similarity import (
    canonical_correlations,
    cca,
    mutual_knn,
    procrustes,
    pwcca,
    svcca,
)

F64 = torch.float64


def related(n: int, p: int, q: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=gen, dtype=F64) * torch.linspace(0.5, 3, p, dtype=F64) + 2
    y = x[:, :min(p, q)] @ torch.randn(min(p, q), q, generator=gen, dtype=F64) + torch.randn(
        n, q, generator=gen, dtype=F64)
    return x, y


def inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return v @ np.diag(w**-0.5) @ v.T


def whitened_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CCA the textbook way: singular values of Σxx^{-1/2} Σxy Σyy^{-1/2}."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    m = inv_sqrt(xc.T @ xc) @ (xc.T @ yc) @ inv_sqrt(yc.T @ yc)
    return np.linalg.svd(m, compute_uv=False)


def test_golden_values(golden_pair):
    x, y = golden_pair
    assert cca(x, y, squared=True) == pytest.approx(0.54540, abs=5e-6)
    assert procrustes(x, y) == pytest.approx(0.52749, abs=5e-6)
    assert procrustes(x, y, angular=True) == pytest.approx(0.74328, abs=5e-6)


def test_canonical_correlations_match_whitened_svd():
    x, y = related(200, 7, 5)
    expected = whitened_correlations(x.numpy(), y.numpy())
    assert np.abs(canonical_correlations(x, y).numpy() - expected).max() < 1e-10
    assert cca(x, y) == pytest.approx(expected.mean(), abs=1e-10)


def test_canonical_correlations_match_sklearn():
    x, y = related(300, 5, 4, seed=1)
    model = CCA(n_components=3, scale=False, max_iter=5000, tol=1e-14).fit(x.numpy(), y.numpy())
    sx, sy = model.transform(x.numpy(), y.numpy())
    theirs = [np.corrcoef(sx[:, i], sy[:, i])[0, 1] for i in range(3)]
    assert np.abs(canonical_correlations(x, y).numpy()[:3] - theirs).max() < 1e-6


def test_float32_collinear_columns_add_no_spurious_correlation():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(500, 2, generator=gen, dtype=F64)
    x = torch.cat([a, a[:, :1] + a[:, 1:]], 1)  # rank 2 in three columns
    y = a @ torch.randn(2, 3, generator=gen, dtype=F64) + 0.5 * torch.randn(
        500, 3, generator=gen, dtype=F64)
    want = canonical_correlations(x, y)
    got = canonical_correlations(x.float(), y.float())
    assert len(want) == len(got) == 2
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert cca(x.float(), y.float()) == pytest.approx(cca(x, y), abs=1e-5)
    assert pwcca(x.float(), y.float()) == pytest.approx(pwcca(x, y), abs=1e-4)


def test_svcca_keeps_top_directions():
    x, y = related(150, 8, 6, seed=2)
    u, s, _ = np.linalg.svd(x.numpy() - x.numpy().mean(0), full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    keep = float(share[3])  # exactly four directions reach this share
    k_y = np.linalg.svd(y.numpy() - y.numpy().mean(0), compute_uv=False)
    k_y = int(np.searchsorted(np.cumsum(k_y**2) / np.sum(k_y**2), keep - 1e-12)) + 1
    uy = np.linalg.svd(y.numpy() - y.numpy().mean(0), full_matrices=False)[0][:, :k_y]
    expected = np.linalg.svd(u[:, :4].T @ uy, compute_uv=False)
    assert svcca(x, y, keep=keep) == pytest.approx(expected.mean(), abs=1e-10)
    assert svcca(x, y, keep=1.0) == pytest.approx(cca(x, y), abs=1e-10)  # full rank: plain CCA
    top3 = (u[:, :3] * s[:3]) @ np.eye(3)
    assert svcca(x, y, keep=3) == pytest.approx(svcca(torch.tensor(top3), y, keep=3), abs=1e-10)


def test_svcca_ignores_constant_columns_where_cca_rejects_them():
    x, y = related(120, 5, 4, seed=3)
    padded = torch.cat([x, torch.full((120, 1), 7.0, dtype=F64)], dim=1)
    assert svcca(padded, y) == pytest.approx(svcca(x, y), abs=1e-12)
    for fn in (cca, pwcca):
        with pytest.raises(RangeError, match=r"constant column\(s\) \(5\)"):
            fn(padded, y)


def test_pwcca_matches_definition():
    x, y = related(250, 4, 6, seed=4)
    xn, yn = x.numpy(), y.numpy()
    xc, yc = xn - xn.mean(0), yn - yn.mean(0)
    wx, wy = inv_sqrt(xc.T @ xc), inv_sqrt(yc.T @ yc)
    u, rho, _ = np.linalg.svd(wx @ (xc.T @ yc) @ wy)
    h = xc @ wx @ u  # x has fewer units: its canonical variates, orthonormal by construction
    weights = np.abs(h.T @ xn).sum(1)  # uncentred units: h ⟂ 1, so the means do not matter
    expected = (weights / weights.sum() * rho).sum()
    assert pwcca(x, y) == pytest.approx(expected, abs=1e-10)
    assert min(rho) <= pwcca(x, y) <= max(rho)


def test_cca_warns_when_ranks_exceed_n():
    x, y = related(20, 12, 12, seed=5)
    with pytest.warns(UserWarning, match="exceeds n"):
        rho = canonical_correlations(x, y)
    assert int((rho > 1 - 1e-9).sum()) >= 12 + 12 - 20  # the column spaces must intersect
    x, y = related(50, 5, 5, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cca(x, y)


def test_procrustes_matches_scipy_orthogonal_procrustes():
    for n, p, q in ((60, 5, 8), (12, 40, 30)):  # narrow, and wide (p > n: compacted)
        x, y = related(n, p, q, seed=6)
        xc, yc = x.numpy() - x.numpy().mean(0), y.numpy() - y.numpy().mean(0)
        xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
        width = max(p, q)
        xp, yp = np.pad(xc, ((0, 0), (0, width - p))), np.pad(yc, ((0, 0), (0, width - q)))
        r, _ = scipy.linalg.orthogonal_procrustes(xp, yp)
        expected = np.linalg.norm(xp @ r - yp) ** 2
        assert procrustes(x, y) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8])
def test_partial_whitening_matches_the_explicit_map(alpha):
    x, y = related(80, 5, 7, seed=8)
    def whiten(t):  # X_c(αI + (1−α)C^{-1/2}) by eigh, then Procrustes by scipy
        tc = t.numpy() - t.numpy().mean(0)
        vals, vecs = np.linalg.eigh(tc.T @ tc / len(tc))
        root = vecs @ np.diag(vals ** -0.5) @ vecs.T
        out = tc @ (alpha * np.eye(len(vals)) + (1 - alpha) * root)
        return out / np.linalg.norm(out)

    xw, yw = whiten(x), whiten(y)
    xp = np.pad(xw, ((0, 0), (0, 2)))
    r, _ = scipy.linalg.orthogonal_procrustes(xp, yw)
    expected = np.linalg.norm(xp @ r - yw) ** 2
    assert procrustes(x, y, alpha=alpha) == pytest.approx(expected, abs=1e-10)


def test_full_whitening_is_mean_cca_and_linear_invariant():
    x, y = related(200, 4, 4, seed=9)
    assert 1 - procrustes(x, y, alpha=0.0) / 2 == pytest.approx(cca(x, y), abs=1e-10)
    mix = torch.randn(4, 4, generator=torch.Generator().manual_seed(1), dtype=F64) + 3 * torch.eye(
        4, dtype=F64)
    assert procrustes(x @ mix, y, alpha=0.0) == pytest.approx(procrustes(x, y, alpha=0.0),
                                                               abs=1e-10)
    assert procrustes(x @ mix, y) != pytest.approx(procrustes(x, y), abs=1e-3)
    assert procrustes(x, y, alpha=1.0) == procrustes(x, y)
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ConfigError, match="alpha"):
            procrustes(x, y, alpha=bad)


def test_angular_metric_triangle_inequality():
    gen = torch.Generator().manual_seed(7)
    a, b, c = (torch.randn(40, 6, generator=gen, dtype=F64) for _ in range(3))
    b = a + 0.5 * b
    d = lambda u, v: procrustes(u, v, angular=True)  # noqa: E731
    assert d(a, c) <= d(a, b) + d(b, c) + 1e-12
    assert 0 <= d(a, c) <= math.pi / 2


def brute_mutual_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    def neighbours(z):
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        s = z @ z.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1)[:, :k]
    nx, ny = neighbours(x), neighbours(y)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ny, strict=True)]))


def test_mutual_knn_matches_brute_force_in_blocks(monkeypatch):
    x, y = related(90, 6, 5, seed=8)
    expected = brute_mutual_knn(x.numpy(), y.numpy(), 7)
    assert mutual_knn(x, y, k=7) == pytest.approx(expected, abs=1e-15)
    monkeypatch.setattr(inputs, "CHUNK_ELEMENTS", 90 * 13)  # 13-row blocks
    assert mutual_knn(x, y, k=7) == pytest.approx(expected, abs=1e-15)


def test_mutual_knn_of_independent_data_is_near_chance():
    gen = torch.Generator().manual_seed(9)
    x, y = (torch.randn(400, 20, generator=gen, dtype=F64) for _ in range(2))
    assert mutual_knn(x, y, k=10) < 3 * 10 / 399
    assert mutual_knn(x, x, k=10) == 1.0


@pytest.mark.parametrize("call,error,words", [
    (lambda x, y: cca(x, y[:-1]), ShapeError, "rows"),
    (lambda x, y: svcca(x[:1], y[:1]), ShapeError, "at least 2"),
    (lambda x, y: svcca(x, y, keep=0.0), ConfigError, "keep"),
    (lambda x, y: svcca(x, y, keep=True), ConfigError, "keep"),
    (lambda x, y: pwcca(torch.ones_like(x), y), RangeError, "constant"),
    (lambda x, y: procrustes(x, torch.ones_like(y)), RangeError, "constant"),
    (lambda x, y: mutual_knn(x, y, k=30), ConfigError, "k"),
    (lambda x, y: mutual_knn(x, y, k=0), ConfigError, "k"),
    (lambda x, y: mutual_knn(x.index_fill(0, torch.tensor([2]), 0.0), y), RangeError, "zero"),
], ids=["n-mismatch", "n<2", "keep-0", "keep-bool", "constant-pwcca", "constant-procrustes",
        "k>n-1", "k=0", "zero-row"])
def test_bad_input(call, error, words):
    x, y = related(30, 4, 3)
    with pytest.raises(error, match=words) as info:
        call(x, y)
    assert isinstance(info.value, FeatureBiasError)
