"""Cross-check LEACE and Oracle LEACE against the reference package `concept_erasure` 0.2.4.

Both are fed the same batches; the reference runs with shrinkage and the covariance-trace
fallback off (SCIENCE §3.1), float64, svd_tol = 0.01.
"""

from __future__ import annotations

import concept_erasure
import pytest
import torch

from featurebias.erasure.leace import LeaceFitter
from featurebias.erasure.oracle import OracleFitter

# (label kind, k, seed): class ids (one-hot for the reference) or one binary float column
CASES = [("ids", 2, 0), ("ids", 3, 1), ("ids", 5, 2), ("column", 2, 3)]
BATCHES = 4


def make_problem(class_data, kind: str, k: int, seed: int):
    """x [600, 24], our labels, the reference's float label matrix, and the batch splits."""
    x, y = class_data(seed, 600, 24, k, imbalance=0.5)
    if kind == "ids":
        return x, y, torch.nn.functional.one_hot(y, k).double(), k
    return x, y.double(), y.double()[:, None], 1


def feed(fitter, x, z):
    for part in torch.tensor_split(torch.arange(len(x)), BATCHES):
        fitter.update(x[part], z[part])
    return fitter


def assert_close(actual, expected, atol):
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}")
@pytest.mark.parametrize("method", ["leace", "orth"])
@pytest.mark.parametrize("affine", [True, False])
def test_leace_matches_reference(class_data, case, method, affine):
    """Same projection P (1e-8), same bias, same erased outputs as concept_erasure."""
    x, z, z_ref, m = make_problem(class_data, *case)
    ours = feed(LeaceFitter(x.shape[1], m, method=method, affine=affine), x, z)
    ref = feed(concept_erasure.LeaceFitter(
        x.shape[1], m, method=method, affine=affine, shrinkage=False, dtype=torch.float64,
        svd_tol=0.01, constrain_cov_trace=False), x, z_ref)
    assert ours.eraser.rank > 0
    assert_close(ours.eraser.P, ref.eraser.P, 1e-8)
    scale = float(x.abs().max())
    assert_close(ours.eraser(x), ref.eraser(x), 1e-8 * scale)
    if affine:
        assert_close(ours.eraser.bias, ref.eraser.bias, 1e-10 * scale)
    else:
        assert ours.eraser.bias is None and ref.eraser.bias is None


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}")
def test_leace_statistics_match_reference(class_data, case):
    """Streaming means and co-moments equal the reference's running statistics."""
    x, z, z_ref, m = make_problem(class_data, *case)
    ours = feed(LeaceFitter(x.shape[1], m), x, z)
    ref = feed(concept_erasure.LeaceFitter(x.shape[1], m, shrinkage=False,
                                           dtype=torch.float64), x, z_ref)
    scale = float(x.abs().max())
    assert int(ours.stats.n.sum()) == int(ref.n)
    assert_close(ours.stats.mean_x[0], ref.mean_x, 1e-12 * scale)
    assert_close(ours.stats.covariance("xx")[0], ref.sigma_xx, 1e-10 * scale**2)
    assert_close(ours.stats.covariance("xz")[0], ref.sigma_xz, 1e-10 * scale)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}")
def test_oracle_matches_reference(class_data, case):
    """Same coefficients Σ_xz Σ_zz⁺, label mean and erased outputs as concept_erasure."""
    x, z, z_ref, m = make_problem(class_data, *case)
    ours = feed(OracleFitter(x.shape[1], m), x, z)
    ref = feed(concept_erasure.OracleFitter(x.shape[1], m, shrinkage=False,
                                            dtype=torch.float64, svd_tol=0.01), x, z_ref)
    scale = float(x.abs().max())
    assert_close(ours.eraser.coef, ref.eraser.coef, 1e-8 * scale)
    assert_close(ours.eraser.mean_z, ref.eraser.mean_z, 1e-12)
    assert_close(ours.eraser(x, z), ref.eraser(x, z_ref), 1e-8 * scale)
