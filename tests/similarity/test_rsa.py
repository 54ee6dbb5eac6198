"""RDMs and RSA against rsatoolbox (a dev-only peer), rank statistics and the permutation test."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    LabelError,
    NonFiniteError,
    RangeError,
    ShapeError,
)
from featurebias.similarity import RSAResult, compare_rdms, kendall_tau_a, noise_precision, rdm, rsa
from featurebias.similarity.rsa import _inversions, average_ranks

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.data.noise import prec_from_residuals  # noqa: E402
from rsatoolbox.rdm import calc_rdm, compare  # noqa: E402

F64 = torch.float64
TOOLBOX_COMPARE = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine",
                   "kendall_tau_a": "tau-a"}


def patterns(c: int = 25, p: int = 18, q: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, p))
    y = x[:, :q] @ rng.standard_normal((q, q)) + rng.standard_normal((c, q))
    return x, y


def toolbox_rdm(x: np.ndarray, method: str, **kw):
    return calc_rdm(Dataset(x, obs_descriptors=kw.pop("obs", None)), method=method, **kw)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rdm_matches_rsatoolbox(metric):
    x, _ = patterns()
    ours = rdm(torch.tensor(x), metric).numpy()
    assert np.abs(ours - toolbox_rdm(x, metric).get_matrices()[0]).max() < 1e-10


def test_rdm_averages_rows_by_condition_like_rsatoolbox():
    rng = np.random.default_rng(1)
    conds = np.repeat(np.array(["b", "a", "d", "c"]), 3)
    x = rng.standard_normal((12, 6))
    theirs = toolbox_rdm(x, "correlation", obs={"cond": conds}, descriptor="cond")
    ours = rdm(torch.tensor(x), conditions=conds).numpy()  # sorted labels, like rsatoolbox
    assert np.abs(ours - theirs.get_matrices()[0]).max() < 1e-10


def test_cosine_rdm_matches_scipy_and_keeps_dtype():
    x, _ = patterns(seed=2)
    ours = rdm(torch.tensor(x, dtype=torch.float32), "cosine")
    assert ours.dtype == torch.float32 and torch.equal(ours, ours.T)
    assert torch.equal(ours.diagonal(), torch.zeros(len(x)))
    expected = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x, "cosine"))
    assert np.abs(rdm(torch.tensor(x), "cosine").numpy() - expected).max() < 1e-12


@pytest.mark.parametrize("method", sorted(TOOLBOX_COMPARE))
def test_rsa_matches_rsatoolbox(method):
    x, y = patterns(seed=3)
    theirs = compare(toolbox_rdm(x, "correlation"), toolbox_rdm(y, "correlation"),
                     method=TOOLBOX_COMPARE[method])[0, 0]
    assert rsa(torch.tensor(x), torch.tensor(y), compare=method) == pytest.approx(theirs,
                                                                                 abs=1e-12)


@pytest.mark.parametrize("method", ["spearman", "kendall_tau_a"])
def test_rank_comparisons_with_tied_model_rdm_match_rsatoolbox(method):
    rng = np.random.default_rng(4)
    c = 30
    data = toolbox_rdm(rng.standard_normal((c, 10)), "euclidean")
    category = rng.integers(0, 3, c)
    model = (category[:, None] != category[None, :]).astype(float)  # a 0/1 model: many ties
    iu = np.triu_indices(c, 1)
    theirs = compare(data, rsatoolbox.rdm.RDMs(model[iu][None]),
                     method=TOOLBOX_COMPARE[method])[0, 0]
    ours = compare_rdms(torch.tensor(data.get_matrices()[0]), torch.tensor(model[iu]), method)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_kendall_tau_a_definition():
    a, b = torch.tensor([1.0, 2, 2, 3, 5]), torch.tensor([2.0, 1, 3, 3, 4])
    assert kendall_tau_a(a, b) == pytest.approx(0.6, abs=1e-15)  # SCIENCE.md §8.2 check
    rng = np.random.default_rng(5)
    u, v = rng.standard_normal(501), rng.standard_normal(501)
    tau_b = scipy.stats.kendalltau(u, v).statistic  # no ties: tau-a equals tau-b
    assert kendall_tau_a(torch.tensor(u), torch.tensor(v)) == pytest.approx(tau_b, abs=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 7, 64, 100])
def test_inversion_count_matches_brute_force(m):
    seq = torch.randint(0, 5, (m,), generator=torch.Generator().manual_seed(m))
    brute = int((seq[:, None] > seq[None, :]).triu(1).sum())
    assert _inversions(seq) == brute


def test_average_ranks_match_scipy():
    v = torch.tensor([3.0, 1, 2, 3, 3, 0, 2, 5])
    assert np.array_equal(average_ranks(v).numpy(), scipy.stats.rankdata(v.numpy()))


def crossnobis_data(c: int = 6, folds: int = 3, reps: int = 4, p: int = 5, seed: int = 6):
    rng = np.random.default_rng(seed)
    conds = np.tile(np.repeat(np.arange(c), reps), folds)
    runs = np.repeat(np.arange(folds), c * reps)
    data = rng.standard_normal((c, p))[conds] + rng.standard_normal((len(conds), p))
    return data, conds, runs


def cell_residuals(data, conds, runs):
    means = np.zeros_like(data)
    for key in set(zip(conds, runs, strict=True)):
        rows = (conds == key[0]) & (runs == key[1])
        means[rows] = data[rows].mean(0)
    return data - means


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # rsatoolbox's own NaN casts
@pytest.mark.parametrize("noise", [None, "shrinkage_diag", "shrinkage_eye", "diag", "full"])
def test_crossnobis_matches_rsatoolbox(noise):
    data, conds, runs = crossnobis_data()
    dof = len(conds) - 6 * 3
    prec = None if noise is None else prec_from_residuals(cell_residuals(data, conds, runs),
                                                          dof=dof, method=noise)
    ds = Dataset(data, obs_descriptors={"conds": conds, "runs": runs})
    theirs = calc_rdm(ds, method="crossnobis", descriptor="conds", cv_descriptor="runs",
                      noise=prec).get_matrices()[0]
    ours = rdm(torch.tensor(data), "crossnobis", conditions=conds, folds=runs, noise=noise)
    assert np.abs(ours.numpy() - theirs).max() < 1e-10
    if noise is not None:
        mine = noise_precision(torch.tensor(cell_residuals(data, conds, runs)), noise, dof=dof)
        assert np.abs(mine.numpy() - prec).max() < 1e-10


def test_crossnobis_is_unbiased_where_euclidean_is_not():
    rng = np.random.default_rng(7)
    conds, runs = np.tile(np.arange(20), 4), np.repeat(np.arange(4), 20)
    data = torch.tensor(rng.standard_normal((80, 200)))  # pure noise: true distances are 0
    cross = rdm(data, "crossnobis", conditions=conds, folds=runs)
    eucl = rdm(data, "euclidean", conditions=conds)
    iu = torch.triu_indices(20, 20, 1)
    assert abs(float(cross[iu[0], iu[1]].mean())) < 0.05  # its sd over seeds is about 0.012
    assert float(eucl[iu[0], iu[1]].mean()) > 0.4  # 2σ² / 4 repeats = 0.5


def test_permutation_test():
    x, y = patterns(c=20, seed=8)
    res = rsa(torch.tensor(x), torch.tensor(y), permutations=99, seed=1)
    assert isinstance(res, RSAResult) and res.n_permutations == 99
    assert float(res) == res.value == rsa(torch.tensor(x), torch.tensor(y))
    assert res.p_value == pytest.approx(0.01)  # nothing in the null beats a real relation
    assert rsa(torch.tensor(x), torch.tensor(y), permutations=99, seed=1) == res
    unrelated = np.random.default_rng(9).standard_normal(y.shape)
    assert rsa(torch.tensor(x), torch.tensor(unrelated), permutations=99).p_value > 0.05


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall_tau_a"])
def test_permutation_null_equals_recomputed_comparisons(method):
    rng = np.random.default_rng(10)
    a = rdm(torch.tensor(rng.standard_normal((12, 5))), "euclidean")
    b = rdm(torch.tensor(rng.standard_normal((12, 5))), "euclidean")
    res = compare_rdms(a, b, method, permutations=30, seed=3)
    gen = torch.Generator().manual_seed(3)
    null = []
    for _ in range(30):
        perm = torch.randperm(12, generator=gen)
        null.append(compare_rdms(a, b[perm][:, perm], method))
    hits = sum(v >= res.value - 1e-12 for v in null)
    assert res.p_value == pytest.approx((1 + hits) / 31)


def test_compare_rdms_accepts_vectors():
    x, y = patterns(c=9, seed=11)
    a, b = rdm(torch.tensor(x)), rdm(torch.tensor(y))
    iu = torch.triu_indices(9, 9, 1)
    assert compare_rdms(a[iu[0], iu[1]], b) == compare_rdms(a, b)


CONST_ROW = torch.cat([torch.ones(1, 4, dtype=F64), torch.randn(5, 4, dtype=F64)])
CONDS, FOLDS = np.tile(np.arange(3), 2), np.repeat(np.arange(2), 3)
X6 = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("call,error,words", [
    (lambda: rdm(CONST_ROW), RangeError, "constant"),
    (lambda: rdm(torch.zeros(3, 4).index_fill(0, torch.tensor([1, 2]), 1.0), "cosine"),
     RangeError, "all-zero"),
    (lambda: rdm(X6, "crossnobis"), ConfigError, "folds"),
    (lambda: rdm(X6, "crossnobis", conditions=CONDS, folds=np.zeros(6)), LabelError,
     "2 folds"),
    (lambda: rdm(X6[:5], "crossnobis", conditions=CONDS[:5], folds=FOLDS[:5]), LabelError,
     "every condition in every fold"),
    (lambda: rdm(X6, "crossnobis", conditions=CONDS, folds=FOLDS, noise="diag"), ConfigError,
     "one row"),
    (lambda: rdm(X6, "crossnobis", conditions=CONDS, folds=FOLDS, noise=torch.eye(3)),
     ShapeError, "precision"),
    (lambda: rdm(X6, folds=FOLDS), ConfigError, "crossnobis"),
    (lambda: rdm(X6, conditions=CONDS[:4]), ShapeError, "labels"),
    (lambda: rdm(X6, "manhattan"), ConfigError, "metric"),
    (lambda: rsa(X6[:2], X6[:2]), ShapeError, "at least 3"),
    (lambda: rsa(X6, X6[:5]), ShapeError, "rows"),
    (lambda: rsa(X6, X6, compare="tau-b"), ConfigError, "compare"),
    (lambda: rsa(X6, X6, permutations=-1), ConfigError, "permutations"),
    (lambda: compare_rdms(torch.ones(4, 4), torch.ones(3, 3)), ShapeError, "conditions"),
    (lambda: compare_rdms(torch.ones(5), torch.ones(5)), ShapeError, "C"),
    (lambda: compare_rdms(torch.full((4, 4), float("nan")), torch.ones(4, 4)), NonFiniteError,
     "NaN"),
    (lambda: compare_rdms(torch.ones(4, 4), torch.rand(4, 4)), RangeError, "not symmetric"),
    (lambda: compare_rdms(torch.ones(4, 4), torch.rand(4, 4, dtype=torch.float64)), RangeError,
     "tolerance"),
    (lambda: compare_rdms(torch.ones(4, 4), rdm(X6[:4])), RangeError, "equal"),
    (lambda: rsa(X6, X6.clone().fill_(2.0), rdm_metric="euclidean"), RangeError, "constant"),
    (lambda: noise_precision(torch.ones(5, 3)), RangeError, "zero variance"),
    (lambda: kendall_tau_a(torch.ones(3), torch.ones(4)), ShapeError, "same length"),
    (lambda: kendall_tau_a(torch.tensor([1.0, float("nan")]), torch.ones(2)), NonFiniteError,
     "NaN"),
], ids=["constant-row", "zero-row", "no-folds", "one-fold", "missing-cell", "noise-no-dof",
        "noise-shape", "folds-not-crossnobis", "labels-length", "metric", "c<3", "n-mismatch",
        "comparator", "permutations", "rdm-sizes", "vector-length", "nan-rdm", "asymmetric",
        "asymmetric-tolerance", "flat-rdm",
        "constant-x", "residuals-constant", "tau-lengths", "tau-nan"])
def test_bad_input(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert isinstance(info.value, FeatureBiasError)


def test_float32_rdms_symmetric_to_their_rounding_are_accepted():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 50, generator=gen), torch.randn(300, 40, generator=gen)
    a, b = torch.cdist(x, x), torch.cdist(y, y)
    assert not torch.equal(a, a.T)  # float32 cdist is symmetric only to its rounding
    def exact(r):  # the float64 RDM, symmetric by construction
        return ((r + r.T) / 2).double()

    assert compare_rdms(a, b) == pytest.approx(compare_rdms(exact(a), exact(b)), abs=1e-6)
    c = 1 - torch.corrcoef(x)
    assert compare_rdms(c, b) == pytest.approx(compare_rdms(exact(c), exact(b)), abs=1e-6)
