"""LEACE and Oracle LEACE: the guarantees of SCIENCE.md §3.1, §3.2 and §3.7.

Deterministic part: §3.7 data (make_classification, n = 2048, d = 128, k ∈ {2, 3, 5, 10}, plus
a single binary float column z). Property part: hypothesis over random n, d, k, imbalanced
classes and rank-deficient data.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.svm import LinearSVC

from featurebias.erasure.leace import LeaceEraser, LeaceFitter
from featurebias.erasure.oracle import OracleEraser

METHODS = ["leace", "orth"]
SVD_TOL = 0.01  # the library default
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers


def labels(y: torch.Tensor, kind: str) -> torch.Tensor:
    """z as class ids, or (kind "column") as one binary float column."""
    return y if kind == "ids" else y.to(torch.float64)


def label_matrix(z: torch.Tensor) -> np.ndarray:
    """The matrix Z the eraser decorrelates from: one-hot for ids, the column otherwise."""
    if z.is_floating_point():
        return z.numpy().reshape(len(z), -1)
    return np.eye(int(z.max()) + 1)[z.numpy()]


def cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sample cross-covariance (n − 1 normaliser)."""
    return (a - a.mean(0)).T @ (b - b.mean(0)) / (len(a) - 1)


def assert_guarded(x_erased: np.ndarray, zmat: np.ndarray, x: np.ndarray, rtol: float = 1e-9):
    """Cov(x', z) = 0 relative to the scale of Cov(x, z)'s factors (std x · std z)."""
    scale = x.std(0).max() * zmat.std(0).max()
    assert np.abs(cov(x_erased, zmat)).max() <= rtol * scale


def class_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x[y == c].mean(0) for c in np.unique(y)])


def numerical_rank(a: np.ndarray, scale: float) -> int:
    """Rank with singular values above 1e-10 · scale counted (scale: size of the data)."""
    return int((np.linalg.svd(a, compute_uv=False) > 1e-10 * scale).sum())


def whitened_singular_values(x: np.ndarray, zmat: np.ndarray, method: str) -> np.ndarray:
    """Singular values of WΣ_xz (W = Σ_xx^{+1/2}, or I for orth), computed with numpy."""
    sigma_xz = cov(x, zmat)
    if method == "orth":
        return np.linalg.svd(sigma_xz, compute_uv=False)
    lam, v = np.linalg.eigh(np.cov(x.T).reshape(x.shape[1], x.shape[1]))
    keep = lam > x.shape[1] * np.finfo(float).eps * lam.max()
    w = (v[:, keep] / np.sqrt(lam[keep])) @ v[:, keep].T
    return np.linalg.svd(w @ sigma_xz, compute_uv=False)


def support_condition(x: np.ndarray) -> float:
    """Condition number of Σ_xx on its support (the eigenvalues LEACE whitens with)."""
    lam = np.linalg.eigvalsh(np.atleast_2d(np.cov(x.T)))
    lam = lam[lam > x.shape[1] * np.finfo(float).eps * lam.max()]
    return float(lam.max() / lam.min())


def clear_gap(singular_values: np.ndarray) -> bool:
    """Every singular value is either far above svd_tol or numerically zero, so the eraser
    removes exactly the cross-covariance (the §3.7 precondition)."""
    s = singular_values
    return bool(np.all((s > 2 * SVD_TOL) | (s < 1e-8 * max(s.max(), 1.0))))


def edit_cost(p: np.ndarray, sigma_xx: np.ndarray, m: np.ndarray) -> float:
    """E‖x' − x‖²_M for x' = x − (I − P)(x − μ): tr((I − P) Σ_xx (I − P)ᵀ M)."""
    b = np.eye(len(p)) - p
    return float(np.trace(b @ sigma_xx @ b.T @ m))


def probe_coefficients(x: np.ndarray, y: np.ndarray, *, exact: bool):
    """max|coef| of an unpenalised logistic regression and a LinearSVC on centred x, and the
    logistic probe's log-loss (nats). `exact` uses tiny tolerances and many iterations."""
    xc = x - x.mean(0)
    tol, iters = (1e-12, 10_000) if exact else (1e-4, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic = LogisticRegression(C=np.inf, tol=tol, max_iter=iters).fit(xc, y)
        svm = LinearSVC(dual=False, intercept_scaling=1e4, tol=tol,
                        max_iter=10 * iters).fit(xc, y)
    loss = log_loss(y, logistic.predict_proba(xc))
    return np.abs(logistic.coef_).max(), np.abs(svm.coef_).max(), loss


def prior_log_loss(y: np.ndarray) -> float:
    pi = np.bincount(y) / len(y)
    pi = pi[pi > 0]
    return float(-(pi * np.log(pi)).sum())


# --------------------------------------------------------------------------- §3.7 data

CASES = [("ids", 2), ("ids", 3), ("ids", 5), ("ids", 10), ("column", 2)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-k{c[1]}")
def problem(request, leace_problem):
    """(x, y, z, Z, probes before erasure) for one §3.7 case."""
    kind, k = request.param
    x, y = leace_problem(k)
    z = labels(y, kind)
    before = probe_coefficients(x.numpy(), y.numpy(), exact=False)
    return x, y, z, label_matrix(z), before


@pytest.mark.parametrize("method", METHODS)
def test_linear_probes_learn_nothing_after_erasure(problem, method):
    """Logistic regression and LinearSVC: max|coef| > 0.05 before, < 1e-6 after, and the
    logistic log-loss is no better than the prior's."""
    x, y, z, _, before = problem
    assert before[0] > 0.05 and before[1] > 0.05
    erased = LeaceEraser.fit(x, z, method=method)(x).numpy()
    coef_lr, coef_svm, loss = probe_coefficients(erased, y.numpy(), exact=True)
    assert coef_lr < 1e-6
    assert coef_svm < 1e-6
    assert loss >= prior_log_loss(y.numpy()) - 1e-9


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("affine", [True, False])
def test_cross_covariance_vanishes(problem, method, affine):
    """Cov(x', z) = 0 with and without `affine`; P Σ_xz = 0."""
    x, _, z, zmat, _ = problem
    assert clear_gap(whitened_singular_values(x.numpy(), zmat, method))
    eraser = LeaceEraser.fit(x, z, method=method, affine=affine)
    assert_guarded(eraser(x).numpy(), zmat, x.numpy())
    p_sigma = eraser.P.numpy() @ cov(x.numpy(), zmat)
    assert np.abs(p_sigma).max() <= 1e-9 * np.abs(cov(x.numpy(), zmat)).max()


@pytest.mark.parametrize("method", METHODS)
def test_class_means_coincide_and_mean_is_preserved(problem, method):
    """With affine: every class mean equals the global mean, which is unchanged."""
    x, y, z, _, _ = problem
    erased = LeaceEraser.fit(x, z, method=method)(x).numpy()
    xn, yn = x.numpy(), y.numpy()
    scale = np.abs(xn).max()
    gap_before = np.abs(class_means(xn, yn) - xn.mean(0)).max()
    gap_after = np.abs(class_means(erased, yn) - erased.mean(0)).max()
    assert gap_before > 1e-2 * scale
    assert gap_after < 1e-8 * scale
    assert np.abs(erased.mean(0) - xn.mean(0)).max() < 1e-10 * scale


@pytest.mark.parametrize("method", METHODS)
def test_idempotent_and_low_rank_edit(problem, method):
    """E(E(x)) = E(x), P² = P, rank(X − X') ≤ k − 1 (≤ 1 for one column), eraser.rank too."""
    x, _, z, zmat, _ = problem
    eraser = LeaceEraser.fit(x, z, method=method)
    erased = eraser(x)
    scale = float(x.abs().max())
    assert float((eraser(erased) - erased).abs().max()) < 1e-10 * scale
    p = eraser.P.numpy()
    assert np.abs(p @ p - p).max() < 1e-10 * np.abs(p).max()
    max_rank = np.linalg.matrix_rank(zmat - zmat.mean(0))  # k − 1 for one-hot, 1 for a column
    assert numerical_rank((x - erased).numpy(), scale) <= max_rank
    assert eraser.rank == max_rank


def random_weightings(d: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((d, d))
    return {"identity": np.eye(d), "spd": g @ g.T / d + 0.1 * np.eye(d),
            "diagonal": np.diag(rng.uniform(0.01, 10.0, d))}


@pytest.mark.parametrize("weighting", ["spd", "diagonal"])
def test_leace_is_least_squares_optimal_for_every_weighting(problem, weighting):
    """For M SPD or diagonal, R random, ε ∈ {1e-4, 1e-2, 1, 10} and Δ = R(I − Σ_xz Σ_xz⁺):
    cost(P + εΔ) ≥ cost(P)(1 − 1e-9)."""
    x, _, z, zmat, _ = problem
    xn = x.numpy()
    d = xn.shape[1]
    p = LeaceEraser.fit(x, z, method="leace").P.numpy()
    sigma_xx, sigma_xz = np.cov(xn.T), cov(xn, zmat)
    rng = np.random.default_rng(d + zmat.shape[1])
    m = random_weightings(d, seed=zmat.shape[1])[weighting]
    base = edit_cost(p, sigma_xx, m)
    for _ in range(3):
        delta = rng.standard_normal((d, d)) @ (np.eye(d) - sigma_xz @ np.linalg.pinv(sigma_xz))
        assert np.abs(delta @ sigma_xz).max() < 1e-10 * np.abs(delta).max()  # still guarded
        for eps in (1e-4, 1e-2, 1.0, 10.0):
            assert edit_cost(p + eps * delta, sigma_xx, m) >= base * (1 - 1e-9)


def test_orth_costs_at_least_leace(problem):
    """cost(orth) ≥ cost(leace) for M = I, a random SPD and a random diagonal M; strictly
    for M = I here, since Σ_xx is not isotropic (orth is not optimal)."""
    x, _, z, _, _ = problem
    sigma_xx = np.cov(x.numpy().T)
    p_leace = LeaceEraser.fit(x, z, method="leace").P.numpy()
    p_orth = LeaceEraser.fit(x, z, method="orth").P.numpy()
    costs = {}
    for name, m in random_weightings(x.shape[1], seed=1).items():
        costs[name] = edit_cost(p_leace, sigma_xx, m), edit_cost(p_orth, sigma_xx, m)
        assert costs[name][1] >= costs[name][0] * (1 - 1e-9), name
    assert costs["identity"][1] > costs["identity"][0] * (1 + 1e-6)


def test_oracle_guards_and_edits_least(problem):
    """Oracle: Cov(x', z) = 0, class means coincide, mean squared edit ≤ LEACE's."""
    x, y, z, zmat, _ = problem
    oracle = OracleEraser.fit(x, z)
    erased = oracle(x, z).numpy()
    xn = x.numpy()
    assert_guarded(erased, zmat, xn)
    scale = np.abs(xn).max()
    assert np.abs(class_means(erased, y.numpy()) - erased.mean(0)).max() < 1e-8 * scale
    assert np.abs(erased.mean(0) - xn.mean(0)).max() < 1e-10 * scale
    leace = LeaceEraser.fit(x, z)(x).numpy()
    oracle_edit = np.mean(np.sum((erased - xn) ** 2, 1))
    leace_edit = np.mean(np.sum((leace - xn) ** 2, 1))
    assert oracle_edit <= leace_edit * (1 + 1e-9)
    assert numerical_rank(erased - xn, scale) <= np.linalg.matrix_rank(np.cov(zmat.T))


# --------------------------------------------------------------------------- hypothesis


@st.composite
def datasets(draw):
    """Random (seed, n, d, k, rank, imbalance, label kind): imbalanced, sometimes singular."""
    k = draw(st.integers(2, 6))
    d = draw(st.integers(1, 24))
    n = draw(st.integers(4 * k, 160))
    rank = draw(st.one_of(st.none(), st.integers(1, d)))
    imbalance = draw(st.floats(0.0, 1.5))
    kind = draw(st.sampled_from(["ids", "onehot", "column"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(seed=seed, n=n, d=d, k=k, rank=rank, imbalance=imbalance, kind=kind)


def draw_problem(class_data, spec: dict, method: str):
    """x, the labels to fit on, Z and y; skips draws without a clear svd_tol gap."""
    x, y = class_data(spec["seed"], spec["n"], spec["d"], spec["k"], rank=spec["rank"],
                      imbalance=spec["imbalance"])
    if spec["kind"] == "column":
        y = (y == 0).long()
    z = {"ids": y, "onehot": torch.nn.functional.one_hot(y).double(),
         "column": y.double()}[spec["kind"]]
    zmat = label_matrix(y.double() if spec["kind"] == "column" else y)
    assume(clear_gap(whitened_singular_values(x.numpy(), zmat, method)))
    return x, z, zmat, y


@PROPERTY
@given(spec=datasets(), method=st.sampled_from(METHODS), affine=st.booleans())
def test_property_guardedness(class_data, spec, method, affine):
    """Cov(x', z) = 0 for any data, method and affine setting."""
    x, z, zmat, _ = draw_problem(class_data, spec, method)
    erased = LeaceEraser.fit(x, z, method=method, affine=affine)(x).numpy()
    assert_guarded(erased, zmat, x.numpy(), rtol=1e-8)


@PROPERTY
@given(spec=datasets(), method=st.sampled_from(METHODS))
def test_property_class_means_mean_and_rank(class_data, spec, method):
    """Class means coincide, the mean is kept, rank(X − X') ≤ min(k − 1, rank X)."""
    x, z, zmat, y = draw_problem(class_data, spec, method)
    eraser = LeaceEraser.fit(x, z, method=method)
    erased = eraser(x).numpy()
    xn = x.numpy()
    scale = np.abs(xn).max()
    assert np.abs(class_means(erased, y.numpy()) - erased.mean(0)).max() < 1e-8 * scale
    assert np.abs(erased.mean(0) - xn.mean(0)).max() < 1e-10 * scale
    bound = min(zmat.shape[1] - (zmat.shape[1] > 1), numerical_rank(xn - xn.mean(0), scale))
    assert numerical_rank(xn - erased, scale) <= bound
    assert eraser.rank <= zmat.shape[1] - (zmat.shape[1] > 1)


@PROPERTY
@given(spec=datasets(), method=st.sampled_from(METHODS), affine=st.booleans())
def test_property_idempotent(class_data, spec, method, affine):
    """E(E(x)) = E(x)."""
    x, z, _, _ = draw_problem(class_data, spec, method)
    eraser = LeaceEraser.fit(x, z, method=method, affine=affine)
    once = eraser(x)
    assert float((eraser(once) - once).abs().max()) < 1e-9 * float(x.abs().max())


@PROPERTY
@given(spec=datasets(), method=st.sampled_from(METHODS), cuts=st.lists(
    st.integers(1, 10_000), min_size=1, max_size=12))
def test_property_streaming_equals_one_shot(class_data, spec, method, cuts):
    """Many update calls (random chunk sizes) give the eraser of one LeaceEraser.fit."""
    x, z, zmat, _ = draw_problem(class_data, spec, method)
    one_shot = LeaceEraser.fit(x, z, method=method)
    fitter = LeaceFitter(x.shape[1], zmat.shape[1], method=method)
    bounds = sorted({c % len(x) for c in cuts} - {0})
    for part in np.split(np.arange(len(x)), bounds):
        fitter.update(x[part], z[part])
    # rounding differences of the statistics are amplified by the whitening's conditioning
    cond = 1.0 if method == "orth" else support_condition(x.numpy())
    tol = max(1e-10, 1e-13 * cond) * max(1.0, float(one_shot.P.abs().max()))
    torch.testing.assert_close(fitter.eraser.P, one_shot.P, rtol=0, atol=tol)
    scale = float(x.abs().max())
    torch.testing.assert_close(fitter.eraser(x), one_shot(x), rtol=0, atol=tol * scale)


@PROPERTY
@given(spec=datasets(), method=st.sampled_from(METHODS))
def test_property_refit_on_erased_data_is_identity(class_data, spec, method):
    """LEACE refitted on erased data finds nothing to erase: rank 0 and P = I."""
    x, z, _, _ = draw_problem(class_data, spec, method)
    eraser = LeaceEraser.fit(x, z, method=method)
    xn = x.numpy()
    # x' keeps some variance (the fully erased case is test_refit_on_constant_erased_data)
    assume(eraser.rank < numerical_rank(xn - xn.mean(0), np.abs(xn).max()))
    again = LeaceEraser.fit(eraser(x), z, method=method)
    assert again.rank == 0
    assert torch.equal(again.P, torch.eye(x.shape[1], dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_refit_on_constant_erased_data_is_identity(class_data, method, seed):
    """When erasure removes all variance (d = 1, binary concept), x' is constant up to
    rounding; refitting must still find nothing to erase (rank 0, P = I)."""
    x, y = class_data(seed, 50, 1, 2)
    erased = LeaceEraser.fit(x, y, method=method)(x)
    assert float(erased.std()) < 1e-12 * float(x.std())  # everything was erased
    again = LeaceEraser.fit(erased, y, method=method)
    assert again.rank == 0
    assert torch.equal(again.P, torch.eye(1, dtype=torch.float64))


@PROPERTY
@given(spec=datasets())
def test_property_oracle_guards_and_beats_leace(class_data, spec):
    """Oracle: Cov(x', z) = 0 and mean squared edit ≤ LEACE's, on any data."""
    x, z, zmat, _ = draw_problem(class_data, spec, "leace")
    sigma_zz = np.atleast_2d(np.cov(zmat.T))
    eig = np.linalg.eigvalsh(sigma_zz)
    assume(np.all((eig > 2 * SVD_TOL) | (eig < 1e-10)))  # pinv(atol=svd_tol) keeps all of Σ_zz
    erased = OracleEraser.fit(x, z)(x, z).numpy()
    xn = x.numpy()
    assert_guarded(erased, zmat, xn, rtol=1e-8)
    leace = LeaceEraser.fit(x, z)(x).numpy()
    assert np.sum((erased - xn) ** 2) <= np.sum((leace - xn) ** 2) * (1 + 1e-9)


# --------------------------------------------------------------------------- dtypes and shapes


def test_leading_dimensions_and_dtype_are_kept(class_data):
    """[b, t, d] input gives [b, t, d] output of the same dtype, equal to the flat result;
    a single vector [d] works too."""
    x, y = class_data(11, 300, 8, 3)
    eraser = LeaceEraser.fit(x, y)
    flat = eraser(x)
    shaped = eraser(x.reshape(30, 10, 8))
    assert shaped.shape == (30, 10, 8) and shaped.dtype == torch.float64
    torch.testing.assert_close(shaped.reshape(300, 8), flat, rtol=0, atol=1e-12)
    single = eraser(x[7])
    assert single.shape == (8,)
    torch.testing.assert_close(single, flat[7], rtol=0, atol=1e-12)


def test_oracle_keeps_leading_dimensions(class_data):
    """Oracle on [b, t, d] with ids [b, t] returns [b, t, d], equal to the flat result."""
    x, y = class_data(12, 300, 8, 3)
    oracle = OracleEraser.fit(x, y)
    shaped = oracle(x.reshape(30, 10, 8), y.reshape(30, 10))
    assert shaped.shape == (30, 10, 8)
    torch.testing.assert_close(shaped.reshape(300, 8), oracle(x, y), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_low_precision_input_is_erased_in_its_dtype(class_data, dtype, rtol):
    """A float64 eraser applied to float32/bf16 input returns that dtype, close to the float64
    result on the same (upcast) input."""
    x, y = class_data(13, 400, 8, 3)
    eraser = LeaceEraser.fit(x, y)
    low = x.to(dtype)
    out = eraser(low.reshape(40, 10, 8))
    assert out.dtype == dtype and out.shape == (40, 10, 8)
    expected = eraser(low.double()).reshape(40, 10, 8)
    scale = float(x.abs().max())
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=rtol * scale)


def test_float32_far_from_the_origin_is_centred_before_the_projection(monkeypatch):
    # R x − R b cancels ~1e3 x float32's eps per coordinate; R (x − b) does not.
    from featurebias.erasure import leace

    gen = torch.Generator().manual_seed(0)
    n, d = 4000, 64
    z = torch.randint(0, 2, (n,), generator=gen)
    x = (torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.randn(
        d, d, generator=gen, dtype=torch.float64) / d**0.5 + 0.5 * z[:, None] + 1000.0)
    eraser = LeaceEraser.fit(x, z)
    out = eraser(x.float()).double()
    gap = (out[z == 1].mean(0) - out[z == 0].mean(0)).abs().max()
    assert gap < 5e-6  # the mean gap of the float32 input itself, erased: 0.5
    monkeypatch.setattr(leace, "CENTRED_CHUNK", 1000)  # rows in chunks of 15, a short last one
    torch.testing.assert_close(eraser(x.float()), out.float(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("method", METHODS)
def test_fit_on_low_precision_input(class_data, dtype, method):
    """Fitting on float32/bf16 activations gives the float64 fit of the upcast values."""
    x, y = class_data(14, 400, 8, 3)
    low = x.to(dtype)
    eraser = LeaceEraser.fit(low, y, method=method)
    reference = LeaceEraser.fit(low.double(), y, method=method)
    assert eraser.P.dtype == torch.float64
    torch.testing.assert_close(eraser.P, reference.P, rtol=0, atol=1e-10)
    erased = eraser(low).double().numpy()
    assert np.abs(cov(erased, np.eye(3)[y.numpy()])).max() < 0.05 * np.abs(
        cov(low.double().numpy(), np.eye(3)[y.numpy()])).max()


@pytest.mark.parametrize("method", METHODS)
def test_shrinkage_still_guards(class_data, method):
    """With OLSE shrinkage (here n < d, singular Σ_xx) the eraser still gives Cov(x', z) = 0,
    and differs from the unshrunk one for method leace."""
    x, y = class_data(15, 30, 40, 3)
    eraser = LeaceEraser.fit(x, y, method=method, shrinkage=True)
    assert_guarded(eraser(x).numpy(), np.eye(3)[y.numpy()], x.numpy())
    plain = LeaceEraser.fit(x, y, method=method)
    if method == "leace":
        assert float((eraser.P - plain.P).abs().max()) > 1e-3


@pytest.mark.parametrize("method", ["leace", "orth"])
def test_dead_units_are_left_exactly_untouched(method):
    # ReLU layers have units that never fire. An edit there is pure rounding noise that
    # tracks the label; a probe standardising each unit turns it into a perfect predictor.
    g = torch.Generator().manual_seed(0)
    z = torch.randint(0, 2, (2000,), generator=g)
    x = torch.randn(2000, 8, generator=g, dtype=torch.float64) + 2 * z[:, None]
    x = torch.relu(x @ torch.randn(8, 16, generator=g, dtype=torch.float64))
    x[:, [3, 7]] = 0.0
    erased = LeaceEraser.fit(x, z, method=method)(x)
    assert torch.equal(erased[:, [3, 7]], x[:, [3, 7]])
    scaled = (erased - erased.mean(0)) / erased.std(0).clamp_min(1e-300)
    probe = LogisticRegression(max_iter=2000).fit(scaled[:1000].numpy(), z[:1000].numpy())
    assert probe.score(scaled[1000:].numpy(), z[1000:].numpy()) < 0.6


@pytest.mark.parametrize("t", [3, 4])  # t == k was read as a [b, k] label matrix
def test_token_labels_b_t_are_class_ids(t):
    gen = torch.Generator().manual_seed(t)
    b, d, k = 40, 5, 3
    x = torch.randn(b, t, d, generator=gen, dtype=torch.float64)
    z = torch.randint(0, k, (b, t), generator=gen)
    flat_x, flat_z = x.reshape(-1, d), z.reshape(-1)
    want = LeaceEraser.fit(flat_x, flat_z)
    torch.testing.assert_close(LeaceEraser.fit(x, z).P, want.P)
    torch.testing.assert_close(LeaceFitter(d, k).update(x, z).eraser.P, want.P)
    oracle = OracleEraser.fit(flat_x, flat_z)
    torch.testing.assert_close(oracle(x, z).reshape(-1, d), oracle(flat_x, flat_z))


def test_an_integer_column_is_one_concept_not_class_ids():
    # z [n, 1] of ±1 (scikit-learn's column shape) is one concept's values: a rank-1 erasure.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    z = torch.where(torch.rand(200, generator=gen) < 0.5, -1, 1)[:, None]
    eraser = LeaceEraser.fit(x + z, z)
    assert eraser.rank == 1
    torch.testing.assert_close(eraser.P, LeaceEraser.fit(x + z, z.double()).P)


def test_oracle_warns_when_svd_tol_leaves_a_rare_class_unerased():
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    z = (torch.rand(n, generator=gen) < 0.004).long()  # variance 2p(1 − p) < svd_tol = 0.01
    x = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    x[:, 0] += 3.0 * z

    def gap(eraser):
        out = eraser(x, z)
        return float((out[z == 1].mean(0) - out[z == 0].mean(0)).abs().max())

    with pytest.warns(UserWarning, match="1 label direction"):
        assert gap(OracleEraser.fit(x, z)) > 2.5  # nothing erased, as the spec's tol implies
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gap(OracleEraser.fit(x, z, svd_tol=1e-5)) < 1e-10
        OracleEraser.fit(x, torch.arange(n) % 3)  # balanced: only the constant direction
