"""Numerical primitives (SCIENCE §2, §3.3): PSD roots, OLSE shrinkage, Gaussian OT, barycenter."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from featurebias.erasure.linalg import (
    SymmetricSum,
    barycenter_maps,
    olse,
    ot_map,
    psd_roots,
    psd_sqrt,
    symmetric_product,
    w2_squared,
)
from featurebias.errors import ShapeError


def random_spd(d: int, rng: np.random.Generator, cond: float = 100.0) -> np.ndarray:
    """Random SPD matrix with log-uniform eigenvalues in [1, cond]."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.exp(rng.uniform(0, np.log(cond), d))
    return (q * lam) @ q.T


def random_psd(d: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    g = rng.standard_normal((d, rank))
    return g @ g.T


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.array(a), dtype=torch.float64)


def assert_close(actual, expected, rtol: float) -> None:
    """Entrywise agreement at `rtol` relative to the largest entry of `expected`."""
    actual, expected = t(np.asarray(actual)), t(np.asarray(expected))
    torch.testing.assert_close(actual, expected, rtol=rtol,
                               atol=rtol * float(expected.abs().max()))


def np_sqrt(a: np.ndarray) -> np.ndarray:
    """PSD square root by numpy eigh (independent of the library)."""
    lam, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(lam, 0, None))) @ v.T


# --------------------------------------------------------------------------- PSD roots


@pytest.mark.parametrize("d", [1, 5, 40])
def test_psd_roots_full_rank(d):
    """root² = A, root symmetric PSD, inv_root = A^{-1/2} (scipy sqrtm of A⁻¹)."""
    a = random_spd(d, np.random.default_rng(d), cond=1e4)
    root, inv_root = (r.numpy() for r in psd_roots(t(a)))
    assert_close(root @ root, a, 1e-10)
    assert_close(root, root.T, 1e-14)
    assert np.linalg.eigvalsh(root).min() > 0
    assert_close(inv_root, np.real(scipy.linalg.sqrtm(np.linalg.inv(a))), 1e-9)
    assert_close(inv_root @ a @ inv_root, np.eye(d), 1e-9)


@pytest.mark.parametrize(("d", "rank"), [(2, 1), (8, 3), (30, 29), (40, 10)])
def test_psd_roots_rank_deficient(d, rank):
    """On a singular A: root² = A, inv_root² = pinv(A), both vanish on the null space."""
    rng = np.random.default_rng(10 * d + rank)
    a = random_psd(d, rank, rng)
    root, inv_root = (r.numpy() for r in psd_roots(t(a)))
    assert_close(root @ root, a, 1e-10)
    assert_close(inv_root @ inv_root, np.linalg.pinv(a, hermitian=True), 1e-8)
    projector = a @ np.linalg.pinv(a, hermitian=True)  # onto range(A)
    assert_close(root @ inv_root, projector, 1e-8)
    null = scipy.linalg.null_space(a, rcond=1e-10)
    assert null.shape[1] == d - rank
    scale = np.abs(inv_root).max()
    assert np.abs(inv_root @ null).max() <= 1e-8 * scale
    assert np.abs(root @ null).max() <= 1e-8 * np.abs(root).max()


def test_psd_roots_of_zero_matrix_are_zero():
    """A zero matrix has an empty support: both roots are exactly zero (no NaN/Inf)."""
    root, inv_root = psd_roots(torch.zeros(4, 4, dtype=torch.float64))
    assert torch.equal(root, torch.zeros(4, 4, dtype=torch.float64))
    assert torch.equal(inv_root, torch.zeros(4, 4, dtype=torch.float64))


def test_psd_roots_tolerate_tiny_negative_eigenvalues():
    """Rounding-level negative eigenvalues are clamped: results stay finite, root² ≈ A."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = (q * np.array([-1e-15, 0.0, 1.0, 2.0, 3.0, 4.0])) @ q.T
    root, inv_root = psd_roots(t(a))
    assert torch.isfinite(root).all() and torch.isfinite(inv_root).all()
    assert_close(root @ root, (q * np.array([0, 0, 1.0, 2, 3, 4])) @ q.T, 1e-10)


def test_psd_roots_batched_and_sqrt_agree():
    """Batched roots equal the per-matrix ones; psd_sqrt equals the first root."""
    rng = np.random.default_rng(4)
    mats = np.stack([random_spd(5, rng), random_psd(5, 2, rng), random_spd(5, rng, 1e6)])
    root, inv_root = psd_roots(t(mats))
    for i, m in enumerate(mats):
        r, ir = psd_roots(t(m))
        assert_close(root[i], r, 1e-12)
        assert_close(inv_root[i], ir, 1e-12)
    assert_close(psd_sqrt(t(mats)), root, 1e-12)


def test_psd_roots_support_threshold_works_for_float32_large_d():
    """The support threshold is computed in float64: a float32 input with d = 256 is not
    masked away (root² ≈ A to float32 precision)."""
    a = random_spd(256, np.random.default_rng(5), cond=10.0)
    root, inv_root = psd_roots(t(a).float())
    assert_close(root.double() @ root.double(), a, 1e-4)
    assert_close(inv_root.double() @ t(a) @ inv_root.double(), np.eye(256), 1e-3)


# --------------------------------------------------------------------------- OLSE shrinkage


@pytest.mark.parametrize(("p", "n"), [(32, 16), (64, 32), (128, 64), (4, 64), (8, 128),
                                      (16, 256)])
def test_olse_beats_sample_covariance(p, n):
    """Over random Gaussian problems, the mean Frobenius error of OLSE ≤ that of S = M/n."""
    rng = np.random.default_rng(p * 1000 + n)
    err_s, err_olse = [], []
    for _ in range(20):
        sigma = random_spd(p, rng)
        x = rng.standard_normal((n, p)) @ np_sqrt(sigma)
        xc = x - x.mean(0)
        s = xc.T @ xc / n
        err_s.append(np.linalg.norm(s - sigma))
        err_olse.append(np.linalg.norm(olse(t(s), n).numpy() - sigma))
    assert np.mean(err_olse) <= np.mean(err_s)


def reference_olse(s: np.ndarray, n: float) -> tuple[np.ndarray, float]:
    """SCIENCE §2 formula with α clipped to [0, 1]; also returns the unclipped α."""
    p = s.shape[0]
    tr = np.trace(s)
    alpha = 1 - tr**2 / (n * (np.sum(s**2) - tr**2 / p))
    a = min(max(alpha, 0.0), 1.0)
    return a * s + (1 - a) * tr / p * np.eye(p), alpha


def test_olse_matches_formula_and_keeps_trace():
    """Generic S: the estimate is α S + (1 − α)(tr S/p) I with 0 < α < 1; trace unchanged."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 10)) @ rng.standard_normal((10, 10))
    s = np.cov(x.T, bias=True)
    expected, alpha = reference_olse(s, 40)
    assert 0 < alpha < 1
    shrunk = olse(t(s), 40).numpy()
    assert_close(shrunk, expected, 1e-12)
    assert np.isclose(np.trace(shrunk), np.trace(s), rtol=1e-12)


def test_olse_clips_negative_alpha_to_stay_psd():
    """A nearly isotropic S with small n gives α < 0; clipping to 0 keeps the result PSD."""
    s = np.diag([1.0, 1.0, 1.0, 1.1])
    n = 10
    _, alpha = reference_olse(s, n)
    assert alpha < 0
    tr = np.trace(s)
    unclipped = alpha * s + (1 - alpha) * tr / 4 * np.eye(4)
    assert np.linalg.eigvalsh(unclipped).min() < 0  # what no clipping would give
    shrunk = olse(t(s), n).numpy()
    assert np.linalg.eigvalsh(shrunk).min() >= 0
    assert_close(shrunk, tr / 4 * np.eye(4), 1e-12)


@pytest.mark.parametrize("scale", [0.0, 1e-3, 5.0])
def test_olse_returns_isotropic_input_unchanged(scale):
    """S = c·I (including c = 0) is returned exactly, without NaN."""
    s = scale * torch.eye(7, dtype=torch.float64)
    assert torch.equal(olse(s, 12), s)


def test_olse_batched_with_per_group_counts():
    """Batched S with a `[g, 1, 1]` count tensor equals per-matrix calls."""
    rng = np.random.default_rng(7)
    mats = np.stack([np.cov(rng.standard_normal((n, 6)).T, bias=True) for n in (8, 30, 200)])
    counts = torch.tensor([8.0, 30.0, 200.0], dtype=torch.float64)[:, None, None]
    batched = olse(t(mats), counts)
    for i, n in enumerate((8, 30, 200)):
        assert_close(batched[i], reference_olse(mats[i], n)[0], 1e-12)


# --------------------------------------------------------------------------- Gaussian OT


@pytest.mark.parametrize("d", [1, 4, 20])
@pytest.mark.parametrize("cond", [10.0, 1e4])
def test_ot_map_pushes_source_onto_target(d, cond):
    """A is symmetric, PD (Cholesky succeeds), A Σs A = Σt, and equals the sqrtm formula."""
    rng = np.random.default_rng(d)
    source, target = random_spd(d, rng, cond), random_spd(d, rng, cond)
    a = ot_map(t(source), t(target))
    assert_close(a, a.mT, 1e-12)
    torch.linalg.cholesky(a)  # raises unless PD
    assert_close(a @ t(source) @ a, target, 1e-9)
    rs = np.real(scipy.linalg.sqrtm(source))
    irs = np.linalg.inv(rs)
    expected = irs @ np.real(scipy.linalg.sqrtm(rs @ target @ rs)) @ irs
    assert_close(a, expected, 1e-7)


def test_ot_map_to_itself_is_identity_and_batches():
    """A_{Σ→Σ} = I; a batch of pairs equals the pairs one by one."""
    rng = np.random.default_rng(8)
    covs = np.stack([random_spd(5, rng) for _ in range(3)])
    assert_close(ot_map(t(covs), t(covs)), np.broadcast_to(np.eye(5), covs.shape), 1e-10)
    batched = ot_map(t(covs), t(covs[::-1]))
    for i in range(3):
        assert_close(batched[i], ot_map(t(covs[i]), t(covs[2 - i])), 1e-12)


def np_w2_squared(mean_a, cov_a, mean_b, cov_b) -> float:
    """W₂² between Gaussians with scipy's sqrtm."""
    ra = np.real(scipy.linalg.sqrtm(cov_a))
    cross = np.trace(np.real(scipy.linalg.sqrtm(ra @ cov_b @ ra)))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


@pytest.mark.parametrize("d", [1, 3, 16])
def test_w2_squared_matches_scipy(d):
    """w2_squared equals the sqrtm-based formula, is symmetric and non-negative."""
    rng = np.random.default_rng(20 + d)
    ma, mb = rng.standard_normal(d), rng.standard_normal(d)
    ca, cb = random_spd(d, rng), random_spd(d, rng)
    value = float(w2_squared(t(ma), t(ca), t(mb), t(cb)))
    expected = np_w2_squared(ma, ca, mb, cb)
    assert np.isclose(value, expected, rtol=1e-9)
    assert np.isclose(float(w2_squared(t(mb), t(cb), t(ma), t(ca))), value, rtol=1e-9)
    assert value > 0


def test_w2_squared_is_zero_for_equal_gaussians_and_batches():
    """W₂²(N, N) = 0; batched values equal the single ones."""
    rng = np.random.default_rng(9)
    mean, cov = rng.standard_normal(6), random_spd(6, rng)
    assert abs(float(w2_squared(t(mean), t(cov), t(mean), t(cov)))) <= 1e-10 * np.trace(cov)
    means = rng.standard_normal((3, 6))
    covs = np.stack([random_spd(6, rng) for _ in range(3)])
    batched = w2_squared(t(means), t(covs), t(means[::-1]), t(covs[::-1]))
    for i in range(3):
        assert np.isclose(float(batched[i]), np_w2_squared(means[i], covs[i], means[2 - i],
                                                           covs[2 - i]), rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w2_squared_of_equal_singular_gaussians_is_zero(seed):
    """W₂²(N(μ, A), N(μ, A)) = 0 for a rank-deficient A, to float64 accuracy."""
    rng = np.random.default_rng(seed)
    mean, cov = rng.standard_normal(6), random_psd(6, 2, rng)
    value = float(w2_squared(t(mean), t(cov), t(mean), t(cov)))
    assert abs(value) <= 1e-10 * np.trace(cov)


# --------------------------------------------------------------------------- barycenter


def class_covs(k: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([random_spd(d, rng, cond=50.0) for _ in range(k)])


def priors(k: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).uniform(0.2, 1.0, k) ** 2  # imbalanced
    return w / w.sum()


def fixed_point_residual(s: np.ndarray, covs: np.ndarray, w: np.ndarray) -> float:
    """‖Σ_c π_c (S^{1/2} Σ_c S^{1/2})^{1/2} − S‖_F / ‖S‖_F."""
    root = np_sqrt(s)
    mean_root = sum(wc * np_sqrt(root @ c @ root) for wc, c in zip(w, covs, strict=True))
    return float(np.linalg.norm(mean_root - s) / np.linalg.norm(s))


@pytest.mark.parametrize("w1", [0.5, 0.2, 0.9])
@pytest.mark.parametrize("d", [3, 12])
def test_k2_closed_form_equals_fixed_point(w1, d):
    """k = 2 closed form = the fixed point run on [Σ1, Σ2, Σ2] with weights [π1, π2/2, π2/2]."""
    covs = class_covs(2, d, seed=d)
    closed, closed_maps = barycenter_maps(t(covs), t(np.array([w1, 1 - w1])))
    triple = np.stack([covs[0], covs[1], covs[1]])
    iterated, iter_maps = barycenter_maps(t(triple), t(np.array([w1, (1 - w1) / 2,
                                                                   (1 - w1) / 2])))
    assert_close(closed, iterated, 1e-9)
    assert_close(closed_maps[0], iter_maps[0], 1e-8)
    assert_close(closed_maps[1], iter_maps[1], 1e-8)
    assert_close(closed_maps[1], iter_maps[2], 1e-8)


@pytest.mark.parametrize(("k", "d"), [(2, 4), (2, 16), (3, 4), (5, 8), (10, 16)])
def test_barycenter_satisfies_fixed_point_equation(k, d):
    """Σ_c π_c (S^{1/2} Σ_c S^{1/2})^{1/2} = S within 1e-8·‖S‖."""
    covs, w = class_covs(k, d, seed=k + d), priors(k, seed=k)
    bary, _ = barycenter_maps(t(covs), t(w))
    bary = bary.numpy()
    assert_close(bary, bary.T, 1e-14)
    assert fixed_point_residual(bary, covs, w) < 1e-8
    assert fixed_point_residual(np.einsum("c,cij->ij", w, covs), covs, w) > 1e-4  # non-trivial


def torch_sqrt(a: torch.Tensor) -> torch.Tensor:
    lam, v = torch.linalg.eigh(a)
    return (v * lam.clamp_min(0).sqrt()) @ v.mT


def barycenter_objective(s: torch.Tensor, covs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_c π_c W₂²(N(0, S), N(0, Σ_c)), differentiable through eigh."""
    root = torch_sqrt(s)
    cross = torch.linalg.eigvalsh(root @ covs @ root).clamp_min(0).sqrt().sum(-1)
    traces = torch.diagonal(covs, dim1=-2, dim2=-1).sum(-1)
    return (w * (torch.trace(s) + traces - 2 * cross)).sum()


def objective_gradient(s: np.ndarray, covs: np.ndarray, w: np.ndarray) -> np.ndarray:
    param = t(s).requires_grad_(True)
    barycenter_objective((param + param.mT) / 2, t(covs), t(w)).backward()
    return param.grad.numpy()


@pytest.mark.parametrize(("k", "d"), [(2, 5), (3, 5), (6, 10)])
def test_barycenter_is_stationary_point_of_w2_objective(k, d):
    """The autograd gradient of Σ π_c W₂² w.r.t. S vanishes at Σ̄ (and not at Σ π_c Σ_c)."""
    covs, w = class_covs(k, d, seed=100 + k), priors(k, seed=100 + k)
    bary, _ = barycenter_maps(t(covs), t(w))
    grad = objective_gradient(bary.numpy(), covs, w)  # dimensionless: I − Σ π_c T_c
    assert np.linalg.norm(grad) < 1e-7
    start = np.einsum("c,cij->ij", w, covs)
    assert np.linalg.norm(objective_gradient(start, covs, w)) > 1e-3


@pytest.mark.parametrize(("k", "d"), [(2, 6), (3, 6), (5, 12)])
def test_barycenter_maps_push_each_class_onto_barycenter(k, d):
    """Each A_c is symmetric PD, A_c Σ_c A_c = Σ̄, and A_c equals ot_map(Σ_c, Σ̄)."""
    covs, w = class_covs(k, d, seed=200 + k), priors(k, seed=200 + k)
    bary, maps = barycenter_maps(t(covs), t(w))
    for c in range(k):
        a = maps[c]
        assert_close(a, a.mT, 1e-12)
        torch.linalg.cholesky(a)
        assert_close(a @ t(covs[c]) @ a, bary, 1e-8)
        assert_close(a, ot_map(t(covs[c]), bary), 1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows", [False, True])
def test_symmetric_product_equals_the_general_product(dtype, rows):
    a = torch.randn(37, 11, generator=torch.Generator().manual_seed(0), dtype=dtype)
    expected = a @ a.T if rows else a.T @ a
    got = symmetric_product(a, rows=rows)
    assert got.dtype == dtype and got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    assert torch.equal(got, got.T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symmetric_sum_over_chunks_equals_one_product(dtype):
    a = torch.randn(101, 13, generator=torch.Generator().manual_seed(1), dtype=dtype)
    total = SymmetricSum(13)
    for chunk in torch.split(a, 17):  # uneven chunks, the last one short
        total.add(chunk)
    got = total.total()
    assert got.dtype == torch.float64 and torch.equal(got, got.T)
    assert_close(got, a.double().T @ a.double(), 1e-12)
    assert_close(total.add(a[:3]).total(), got + a[:3].double().T @ a[:3].double(), 1e-12)


def test_symmetric_sum_rejects_rows_of_another_width_and_keeps_its_total():
    total = SymmetricSum(4).add(torch.ones(3, 4))
    with pytest.raises(ShapeError, match="width 4"):
        total.add(torch.ones(3, 5))
    assert torch.equal(total.total(), torch.full((4, 4), 3.0, dtype=torch.float64))
