"""QuadraticProbe and MLPProbe: tasks a linear probe cannot solve, the estimator API."""

from __future__ import annotations

import pytest
import torch
from sklearn.base import clone

from featurebias.errors import ConfigError
from featurebias.probes import LinearProbe, MLPProbe, QuadraticProbe

from .helpers import blobs, circles, xor

FAST_MLP = {"hidden": 32, "max_epochs": 60, "batch_size": 64, "lr": 1e-2, "patience": 8}


@pytest.mark.parametrize("task", [circles, xor])
def test_nonlinear_probes_solve_what_a_linear_probe_cannot(task):
    x, y = task(600)
    train, test = slice(0, 400), slice(400, None)
    linear = LinearProbe().fit(x[train], y[train]).score(x[test], y[test])
    quadratic = QuadraticProbe().fit(x[train], y[train]).score(x[test], y[test])
    mlp = MLPProbe(**FAST_MLP).fit(x[train], y[train]).score(x[test], y[test])
    assert linear < 0.7
    assert quadratic > 0.9
    assert mlp > 0.9


@pytest.mark.parametrize("standardize", [True, False])
def test_quadratic_probe_is_translation_invariant(standardize):
    # Centred before its principal axes, also unscaled: an offset changes nothing.
    x, y = circles(300, extra=3)
    probe = QuadraticProbe(max_dim=3, standardize=standardize, tol=1e-8,
                           dtype=torch.float64)
    moved = clone(probe).fit(x + 50.0, y)
    torch.testing.assert_close(moved.components_, clone(probe).fit(x, y).components_)
    torch.testing.assert_close(moved.predict_proba(x + 50.0),
                               clone(probe).fit(x, y).predict_proba(x), rtol=0, atol=1e-6)


def test_quadratic_features_after_pca():
    x, y = blobs(200, 10, 3)
    probe = QuadraticProbe(max_dim=4).fit(x, y)
    assert probe.components_.shape == (4, 10)
    assert probe.transform(x).shape == (200, 4 + 4 * 5 // 2)
    # the principal axes are orthonormal
    gram = probe.components_ @ probe.components_.T
    torch.testing.assert_close(gram, torch.eye(4, dtype=gram.dtype), atol=1e-6, rtol=0)
    narrow = QuadraticProbe(max_dim=32).fit(x[:, :3], y)
    assert narrow.components_.shape == (3, 3)


def test_mlp_early_stopping_and_full_training():
    x, y = blobs(300, 5, 3, signal=0.6)
    stopped = MLPProbe(**{**FAST_MLP, "max_epochs": 400, "patience": 3}).fit(x, y)
    assert stopped.n_epochs_ < 400
    assert stopped.best_epoch_ <= stopped.n_epochs_ - 3 or stopped.n_epochs_ == 400
    assert len(stopped.validation_loss_) == stopped.n_epochs_
    full = MLPProbe(**{**FAST_MLP, "max_epochs": 5}, validation_fraction=0.0).fit(x, y)
    assert full.n_epochs_ == 5 and full.validation_loss_ == []


def test_mlp_is_deterministic_with_a_seed():
    x, y = blobs(200, 4, 3)
    a = MLPProbe(**FAST_MLP, seed=5).fit(x, y)
    b = MLPProbe(**FAST_MLP, seed=5).fit(x, y)
    c = MLPProbe(**FAST_MLP, seed=6).fit(x, y)
    assert torch.equal(a.predict_proba(x), b.predict_proba(x))
    assert not torch.equal(a.predict_proba(x), c.predict_proba(x))


def test_mlp_weight_decay_by_cv():
    x, y = blobs(150, 4, 2, signal=0.7)
    grid = (1e-4, 1.0)
    probe = MLPProbe(**{**FAST_MLP, "max_epochs": 10}, weight_decay="cv",
                     weight_decays=grid, cv=3).fit(x, y)
    assert probe.weight_decay_ in grid and len(probe.cv_results_) == 6


@pytest.mark.parametrize("make", [lambda: QuadraticProbe(max_dim=3),
                                  lambda: MLPProbe(**FAST_MLP)])
def test_api_proba_params_clone(make):
    x, y = blobs(150, 4, 3)
    probe = make()
    params = probe.get_params()
    fitted = probe.fit(x.float(), y)
    proba = fitted.predict_proba(x.float())
    torch.testing.assert_close(proba.sum(1), torch.ones(150))
    assert fitted.predict(x.numpy()).shape == (150,)
    assert 0 <= fitted.score(x, y) <= 1
    copy = clone(fitted)
    assert copy.get_params() == params and not hasattr(copy, "classes_")


def test_bad_parameters():
    x, y = blobs(60, 3, 2)
    with pytest.raises(ConfigError, match="max_dim"):
        QuadraticProbe(max_dim=0).fit(x, y)
    with pytest.raises(ConfigError, match="validation_fraction"):
        MLPProbe(validation_fraction=1.0).fit(x, y)
    with pytest.raises(ConfigError, match="weight_decay"):
        MLPProbe(weight_decay=-1.0).fit(x, y)
