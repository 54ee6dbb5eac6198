"""LinearProbe: scikit-learn's solution at the same C, the estimator API, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    LabelError,
    NonFiniteError,
    NotFittedError,
    ShapeError,
)
from featurebias.probes import LinearProbe, MLPProbe, _logistic
from featurebias.probes._logistic import worth_preconditioning

from .helpers import blobs


@pytest.mark.parametrize(("k", "C", "class_weight"),
                         [(2, 0.1, None), (3, 1.0, None), (4, 10.0, "balanced")])
def test_coef_matches_sklearn_on_standardized_data(k, C, class_weight):
    x, y = blobs(400, 6, k, signal=0.7)
    xs = StandardScaler().fit_transform(x.numpy())
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000,
                             class_weight=class_weight).fit(xs, y.numpy())
    for standardize in (True, False):  # on standardized data both give the same fit
        probe = LinearProbe(C, tol=1e-10, max_iter=10_000, dtype=torch.float64,
                            standardize=standardize, class_weight=class_weight).fit(xs, y)
        assert probe.coef_.shape == ref.coef_.shape  # [1, d] for two classes, as sklearn
        np.testing.assert_allclose(probe.coef_, ref.coef_, rtol=1e-3,
                                   atol=1e-3 * np.abs(ref.coef_).max())
        np.testing.assert_allclose(probe.intercept_, ref.intercept_, atol=1e-4)
        np.testing.assert_allclose(probe.predict_proba(xs), ref.predict_proba(xs), atol=1e-5)


def test_preconditioning_keeps_the_minimiser_and_saves_iterations():
    # Correlated features (a rank-4 signal mixed into 40 columns plus weak noise): the
    # ill-conditioned case the whitening preconditioner is for.
    g = torch.Generator().manual_seed(3)
    y = torch.arange(600) % 3
    latent = torch.randn(3, 4, generator=g, dtype=torch.float64)[y] + torch.randn(
        600, 4, generator=g, dtype=torch.float64)
    x = latent @ torch.randn(4, 40, generator=g, dtype=torch.float64) + 0.05 * torch.randn(
        600, 40, generator=g, dtype=torch.float64)
    fits = {p: LinearProbe(1.0, tol=1e-9, max_iter=20_000, dtype=torch.float64,
                           precondition=p).fit(x, y) for p in (True, False)}
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=50_000).fit(
        StandardScaler().fit_transform(x.numpy()), y.numpy())
    scale = fits[True].scale_.numpy()
    for probe in fits.values():
        np.testing.assert_allclose(probe.coef_.numpy() * scale, ref.coef_, rtol=1e-3,
                                   atol=1e-3 * np.abs(ref.coef_).max())
    assert fits[True].n_iter_ < 0.5 * fits[False].n_iter_


@pytest.mark.parametrize("C", [1e3, 1e8])
def test_collinear_features_and_a_large_C_still_precondition(C):
    # Float32 rounding had left the preconditioner's Gram indefinite (Cholesky failed).
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(20_000, 32, generator=gen)
    x = torch.cat([base, 2 * base + 1], 1)
    y = (base[:, 0] + 0.3 * torch.randn(20_000, generator=gen) > 0).long()
    whitened = LinearProbe(C, precondition=True).fit(x, y)
    plain = LinearProbe(C, precondition=False, max_iter=5000).fit(x, y)
    assert whitened.score(x, y) == pytest.approx(plain.score(x, y), abs=2e-3)
    assert _logistic.preconditioner(torch.cat([base, 2 * base], 1), 1e-12) is not None


def test_the_preconditioner_ridge_follows_each_columns_scale():
    # Unstandardised columns spanning five decades: a ridge set by the mean diagonal swamped
    # the small columns (114 and 564 iterations where 13 and 16 do).
    gen = torch.Generator().manual_seed(0)
    scales = torch.logspace(-2, 3, 64)
    x = torch.randn(4000, 64, generator=gen) * scales
    y = ((x[:, :8] / scales[:8]).sum(1) + torch.randn(4000, generator=gen) > 0).long()
    for C in (1.0, 1e3):
        assert LinearProbe(C, standardize=False, precondition=True).fit(x, y).n_iter_ < 40


def test_standardizes_inside_like_a_scaler_pipeline():
    x, y = blobs(300, 5, 3, signal=0.8, offset=10.0)
    x = x * torch.tensor([1.0, 10.0, 0.1, 5.0, 1.0], dtype=torch.float64)
    scaler = StandardScaler().fit(x.numpy())
    ref = LogisticRegression(tol=1e-10, max_iter=10_000).fit(scaler.transform(x.numpy()), y)
    probe = LinearProbe(tol=1e-10, max_iter=10_000, dtype=torch.float64).fit(x, y)
    np.testing.assert_allclose(probe.predict_proba(x.numpy()),
                               ref.predict_proba(scaler.transform(x.numpy())), atol=1e-5)
    # coef_ and intercept_ act on the raw input: the logits are x @ coef_.T + intercept_
    logits = x @ probe.coef_.T + probe.intercept_
    np.testing.assert_allclose(torch.log_softmax(logits, 1), probe.predict_log_proba(x),
                               atol=1e-8)


def test_accuracy_within_one_point_of_sklearn_float32():
    x, y = blobs(3000, 40, 5, signal=0.35, seed=1)
    train, test = slice(0, 2000), slice(2000, None)
    scaler = StandardScaler().fit(x[train].numpy())
    ref = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(x[train].numpy()),
                                                       y[train].numpy())
    ref_acc = ref.score(scaler.transform(x[test].numpy()), y[test].numpy())
    probe = LinearProbe(C=1.0).fit(x[train].float(), y[train])
    acc = probe.score(x[test].float(), y[test])
    assert 0.5 < ref_acc < 0.99  # a task with room for disagreement
    assert abs(acc - ref_acc) <= 0.01


def test_predict_proba_rows_sum_to_one_and_outputs_follow_the_input():
    x, y = blobs(200, 4, 3)
    probe = LinearProbe().fit(x, y)
    proba = probe.predict_proba(x)
    assert isinstance(proba, torch.Tensor) and proba.dtype == torch.float64
    torch.testing.assert_close(proba.sum(1), torch.ones(200, dtype=torch.float64))
    as_numpy = probe.predict_proba(x.numpy())
    assert isinstance(as_numpy, np.ndarray)
    np.testing.assert_allclose(as_numpy.sum(1), 1, atol=1e-6)
    assert probe.predict(x.float()).dtype == torch.int64
    assert probe.decision_function(x).shape == (200, 3)


def test_any_integer_labels_map_through_classes():
    x, y = blobs(240, 4, 3, signal=3.0)
    values = torch.tensor([-5, 7, 100])[y]
    probe = LinearProbe().fit(x, values)
    torch.testing.assert_close(probe.classes_, torch.tensor([-5, 7, 100]))
    assert set(probe.predict(x).tolist()) <= {-5, 7, 100}
    assert probe.score(x, values) > 0.9
    binary = LinearProbe().fit(x, values == 7)  # bool labels are classes 0 and 1
    assert binary.decision_function(x).shape == (240,)


def test_get_params_and_clone():
    probe = LinearProbe(0.5, max_iter=50, class_weight="balanced", dtype=torch.float64, seed=3)
    params = probe.get_params()
    assert params["C"] == 0.5 and params["dtype"] is torch.float64 and params["seed"] == 3
    x, y = blobs(100, 3, 2)
    probe.fit(x, y)
    copy = clone(probe)
    assert copy.get_params() == params and not hasattr(copy, "coef_")
    assert copy.set_params(C=2.0).C == 2.0 and probe.C == 0.5


def test_float32_and_float64_data_give_the_same_fit():
    x, y = blobs(300, 5, 3, signal=0.8)
    p64 = LinearProbe(dtype=torch.float64, tol=1e-8).fit(x, y)
    p32 = LinearProbe(tol=1e-5).fit(x.float(), y)
    assert p32.coef_.dtype == torch.float32 and p64.coef_.dtype == torch.float64
    assert p32.predict_proba(x.float()).dtype == torch.float32
    torch.testing.assert_close(p32.coef_.double(), p64.coef_, rtol=1e-3, atol=1e-3)
    assert (p32.predict(x) == p64.predict(x)).float().mean() > 0.99
    # float32 compute on float64 data returns float64 probabilities (the input's dtype)
    assert p32.predict_proba(x).dtype == torch.float64


def test_deterministic_and_flattens_trailing_dimensions():
    x, y = blobs(120, 6, 3)
    a = LinearProbe(seed=1).fit(x.reshape(120, 2, 3), y)
    b = LinearProbe(seed=1).fit(x.reshape(120, 2, 3), y)
    assert torch.equal(a.coef_, b.coef_) and a.n_features_in_ == 6
    torch.testing.assert_close(a.predict_proba(x.reshape(120, 2, 3)), a.predict_proba(x))


def test_cv_picks_C_from_the_grid():
    x, y = blobs(300, 8, 3, signal=0.5)
    grid = (0.001, 0.1, 10.0)
    probe = LinearProbe("cv", Cs=grid, cv=3).fit(x, y)
    assert probe.C_ in grid
    table = probe.cv_results_
    assert len(table) == 3 * 3 and set(table["C"]) == set(grid)
    means = table.groupby("C")["log_loss_bits"].mean()
    assert probe.C_ == means.idxmin()
    again = LinearProbe("cv", Cs=grid, cv=3).fit(x, y)
    assert again.C_ == probe.C_
    refit = probe.set_params(C=1.0).fit(x, y)  # no stale results of the earlier search
    assert refit.C_ == 1.0 and not hasattr(refit, "cv_results_")


def test_bad_input_raises_clear_errors():
    x, y = blobs(60, 3, 2)
    probe = LinearProbe()
    with pytest.raises(ShapeError, match="labels for the .* rows of x"):
        probe.fit(x, y[:-1])
    with pytest.raises(LabelError, match="one class"):
        probe.fit(x, torch.zeros(60, dtype=torch.long))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        probe.fit(bad, y)
    with pytest.raises(FeatureBiasError, match="constant"):
        probe.fit(torch.ones(60, 3), y)
    with pytest.raises(ShapeError, match=r"\[n, d\]"):
        probe.fit(x[:, 0], y)
    with pytest.raises(LabelError, match="integer"):
        probe.fit(x, y.double())
    with pytest.raises(NotFittedError):
        probe.predict(x)
    with pytest.raises(ConfigError, match="C"):
        LinearProbe(C=-1.0).fit(x, y)
    with pytest.raises(ConfigError, match="class_weight"):
        LinearProbe(class_weight="auto").fit(x, y)
    for half in (torch.float16, torch.bfloat16):
        with pytest.raises(ConfigError, match="float32 or torch.float64"):
            LinearProbe(dtype=half).fit(x, y)
    assert MLPProbe(dtype=torch.bfloat16, max_epochs=2).fit(x, y).score(x, y) > 0  # trains


def test_rejected_fit_leaves_the_probe_unchanged():
    x, y = blobs(60, 3, 2)
    probe = LinearProbe().fit(x, y)
    coef = probe.coef_.clone()
    with pytest.raises(ShapeError):
        probe.fit(torch.randn(10, 5), y)
    with pytest.raises(ShapeError, match="fitted on 3"):
        probe.predict(torch.randn(4, 5))
    assert torch.equal(probe.coef_, coef) and probe.n_features_in_ == 3


def test_auto_preconditioning_only_where_it_pays_for_itself():
    # Shapes where whitening was measured to pay (the benchmark's; a binary probe on d = 1024)
    # and not to (fewer rows of width 2048 and two classes; d = 4096).
    assert worth_preconditioning(16_000, 512, 10)
    assert worth_preconditioning(16_000, 1024, 1)
    assert not worth_preconditioning(8_000, 2048, 1)
    assert not worth_preconditioning(16_000, 4096, 10)
    x, y = blobs(200, 6, 3, signal=0.8)
    with pytest.raises(ConfigError, match="precondition"):
        LinearProbe(precondition="always").fit(x, y)
    auto, on = (LinearProbe(precondition=p, dtype=torch.float64, tol=1e-8).fit(x, y)
                for p in ("auto", True))
    assert worth_preconditioning(200, 6, 3) and auto.n_iter_ == on.n_iter_
    np.testing.assert_array_equal(auto.coef_.numpy(), on.coef_.numpy())


def test_a_fit_that_stops_short_of_tol_warns_and_says_why():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 20, generator=gen) * torch.logspace(-2, 2, 20)
    y = (x @ torch.randn(20, generator=gen) + torch.randn(2000, generator=gen) > 0).long()
    # Unscaled float32 features 1e4 apart: rounding hides progress long before tol = 1e-6.
    with pytest.warns(ConvergenceWarning, match="stalled in the line search"):
        stalled = LinearProbe(C=100, tol=1e-6, standardize=False).fit(x, y)
    assert stalled.n_iter_ < 500
    with pytest.warns(ConvergenceWarning, match="1 reached max_iter=3"):
        LinearProbe(max_iter=3).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        LinearProbe(C=100, tol=1e-6, standardize=False, dtype=torch.float64).fit(x, y)
