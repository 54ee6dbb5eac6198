"""ALF-QLEACE: LEACE plus greedy deletion of class-covariance disagreement (SCIENCE §3.4)."""

from __future__ import annotations

import pytest
import torch

from featurebias.erasure import AlfQleaceEraser, AlfQleaceFitter, LeaceEraser, _alf_greedy


def class_covs(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([torch.cov(x[y == c].T) for c in range(k)])


def max_disagreement(covs: torch.Tensor) -> float:
    return float((covs - covs.mean(0)).flatten(1).norm(dim=1).max())


def unequal_covariances(class_data):
    x, y = class_data(3, 1200, 12, 4, imbalance=1.0)
    # Give the classes different covariances so that there is something beyond LEACE to erase.
    scale = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)[y][:, None]
    return x * torch.where(torch.arange(12) < 4, scale, 1.0), y


@pytest.fixture(params=[("leace", "eigh"), ("orth", "eigh"), ("leace", "subspace iteration")],
                ids=lambda p: "-".join(p))
def fitted(request, class_data, monkeypatch):
    method, solver = request.param
    if solver != "eigh":  # the large-d solver, on this small d
        monkeypatch.setattr(_alf_greedy, "EXACT_MAX_DIM", 0)
    x, y = unequal_covariances(class_data)
    fitter = AlfQleaceFitter(12, 4, method=method).update(x, y)
    return x, y, fitter, fitter.eraser


def test_subspace_iteration_finds_the_directions_eigh_finds(monkeypatch):
    # d = 48 > the 16 Ritz vectors kept per class: the iteration has to converge.
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 48, 48, generator=gen, dtype=torch.float64)
    covs = a @ a.mT / 48
    weights = torch.full((3,), 1 / 3, dtype=torch.float64)
    exact = _alf_greedy.greedy_directions(covs, weights, 0.5, 48)
    monkeypatch.setattr(_alf_greedy, "EXACT_MAX_DIM", 0)
    iterated = _alf_greedy.greedy_directions(covs, weights, 0.5, 48)
    assert iterated.shape == exact.shape and len(exact) > 5
    torch.testing.assert_close(iterated.T @ iterated, exact.T @ exact, rtol=0, atol=1e-5)


def test_subspace_iteration_deletes_the_subspace_eigh_does(class_data, monkeypatch):
    x, y = unequal_covariances(class_data)
    exact = AlfQleaceFitter(12, 4).update(x, y).eraser.directions
    monkeypatch.setattr(_alf_greedy, "EXACT_MAX_DIM", 0)
    iterated = AlfQleaceFitter(12, 4).update(x, y).eraser.directions
    assert iterated.shape == exact.shape
    torch.testing.assert_close(iterated.T @ iterated, exact.T @ exact, rtol=0, atol=1e-6)


def test_linear_guardedness_and_class_means(fitted):
    x, y, _, eraser = fitted
    erased = eraser(x)
    onehot = torch.nn.functional.one_hot(y).double()
    cross = (erased - erased.mean(0)).T @ (onehot - onehot.mean(0)) / len(x)
    assert cross.abs().max() < 1e-10
    means = torch.stack([erased[y == c].mean(0) for c in range(4)])
    assert (means - erased.mean(0)).abs().max() < 1e-9


def test_idempotent_mean_preserving_and_label_free(fitted):
    x, _, _, eraser = fitted
    erased = eraser(x)
    assert torch.allclose(eraser(erased), erased, atol=1e-10)
    assert torch.allclose(erased.mean(0), x.mean(0), atol=1e-10)


def test_removed_rank_is_leace_plus_alf(fitted):
    x, _, fitter, eraser = fitted
    leace_rank = fitter.leace.eraser.rank
    assert eraser.rank >= 1
    assert torch.linalg.matrix_rank(x - eraser(x)) <= leace_rank + eraser.rank


def test_directions_orthonormal_and_inside_leace_range(fitted):
    _, _, fitter, eraser = fitted
    v = eraser.directions
    assert torch.allclose(v @ v.T, torch.eye(v.shape[0], dtype=v.dtype), atol=1e-10)
    p = fitter.leace.eraser.P
    assert torch.allclose(v @ p.T, v, atol=1e-9)  # P v = v: every v lies in range(P)


def test_residual_disagreement_below_target(fitted):
    """Tracked covariances are the true class covariances of x' (both reference fixes)."""
    x, y, fitter, eraser = fitted
    after_leace = max_disagreement(class_covs(fitter.leace.eraser(x), y, 4))
    after = max_disagreement(class_covs(eraser(x), y, 4))
    assert after < (1 - fitter.target_erasure) * after_leace


def test_trace_diagnostics_match_the_data(fitted):
    x, _, fitter, eraser = fitted
    assert eraser.trace_before >= eraser.trace_leace >= eraser.trace_after
    assert eraser.trace_before == pytest.approx(float(torch.cov(x.T).trace()), rel=1e-10)
    leace_only = fitter.leace.eraser(x)
    assert eraser.trace_leace == pytest.approx(float(torch.cov(leace_only.T).trace()), rel=1e-10)
    assert eraser.trace_after == pytest.approx(float(torch.cov(eraser(x).T).trace()), rel=1e-10)


def test_max_rank_and_zero_target(class_data):
    x, y = class_data(4, 600, 10, 3)
    x = x * (1 + y[:, None].double())
    assert AlfQleaceEraser.fit(x, y, max_rank=2).rank <= 2
    none = AlfQleaceEraser.fit(x, y, target_erasure=0.0)
    assert none.rank == 0
    assert torch.allclose(none(x), LeaceEraser.fit(x, y)(x), atol=1e-10)


def test_streaming_equals_one_shot(class_data):
    x, y = class_data(5, 900, 8, 3, imbalance=1.0)
    x = x * (1 + y[:, None].double())
    fitter = AlfQleaceFitter(8, 3)
    for chunk in torch.split(torch.arange(900), 97):
        fitter.update(x[chunk], y[chunk])
    whole = AlfQleaceEraser.fit(x, y)
    assert torch.allclose(fitter.eraser(x), whole(x), atol=1e-9)
    assert fitter.eraser.rank == whole.rank


def test_rejected_update_leaves_both_statistics(class_data):
    x, y = class_data(6, 200, 6, 3)
    fitter = AlfQleaceFitter(6, 3).update(x, y)
    before = [t.clone() for t in (fitter.stats.m_xx, fitter.leace.stats.m_xz)]
    with pytest.raises(ValueError):
        fitter.update(x, torch.full_like(y, 7))
    assert torch.equal(before[0], fitter.stats.m_xx)
    assert torch.equal(before[1], fitter.leace.stats.m_xz)
