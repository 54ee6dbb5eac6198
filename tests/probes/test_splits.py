"""`fit_splits`: many probes on one set of rows, fitted together, equal the probes fitted alone."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from featurebias.errors import ConfigError, RangeError, ShapeError
from featurebias.probes import LinearProbe, MLPProbe, probe_sites
from featurebias.probes.base import Probe

from .helpers import blobs


def folds(y, n_splits=4, seed=0):
    return [torch.as_tensor(train) for train, _ in StratifiedKFold(
        n_splits, shuffle=True, random_state=seed).split(y, y)]


def assert_same_fit(got, want):
    assert type(got) is type(want) and got.get_params() == want.get_params()
    torch.testing.assert_close(got.classes_, want.classes_)
    for name in ("mean_", "scale_", "coef_", "intercept_"):
        a, b = getattr(got, name), getattr(want, name)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()) + 1e-7)


@pytest.mark.parametrize(("k", "class_weight", "standardize"),
                         [(2, None, True), (3, None, True), (4, "balanced", True),
                          (3, None, False)])
def test_batched_splits_equal_separate_fits(k, class_weight, standardize):
    x, y = blobs(240, 7, k, signal=0.8)
    x[:, 2] *= 50  # uneven scales: every fold's own standardisation matters
    trains = folds(y)
    Cs = [0.05, 1.0, 20.0, 1.0]
    probe = LinearProbe(tol=1e-10, max_iter=5000, dtype=torch.float64,
                        class_weight=class_weight, standardize=standardize)
    together = probe.fit_splits(x, y, trains, [{"C": C} for C in Cs])
    for train, C, got in zip(trains, Cs, together, strict=True):
        want = clone(probe).set_params(C=C).fit(x[train], y[train])
        assert got.C_ == C
        assert_same_fit(got, want)
        torch.testing.assert_close(got.predict_proba(x), want.predict_proba(x), rtol=0,
                                   atol=1e-7)


def test_a_column_constant_within_one_fold_is_handled_as_its_fit_would():
    x, y = blobs(200, 5, 3)
    trains = folds(y, n_splits=2)
    x[trains[0], 3] = 7.0  # constant on the first fold's training rows only
    probe = LinearProbe(tol=1e-10, max_iter=5000, dtype=torch.float64)
    together = probe.fit_splits(x, y, trains)
    for train, got in zip(trains, together, strict=True):
        assert_same_fit(got, clone(probe).fit(x[train], y[train]))
    # Unscaled, as StandardScaler leaves it, and (to within tol) unused.
    assert float(together[0].scale_[3]) == 1.0
    assert float(together[0].coef_[:, 3].abs().max()) < 1e-6


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_a_split_that_repeats_rows_weighs_them_as_its_own_fit_would(class_weight):
    x, y = blobs(150, 4, 3, signal=0.7)
    bootstrap = torch.randint(0, 150, (150,), generator=torch.Generator().manual_seed(1))
    assert len(torch.unique(bootstrap)) < 150
    probe = LinearProbe(tol=1e-10, max_iter=5000, dtype=torch.float64, class_weight=class_weight)
    for train, got in zip([bootstrap, torch.arange(150)],
                          probe.fit_splits(x, y, [bootstrap, torch.arange(150)]), strict=True):
        assert_same_fit(got, clone(probe).fit(x[train], y[train]))


@pytest.mark.parametrize("precondition", [True, False])
def test_a_column_constant_on_a_split_but_not_off_it_is_left_out_of_its_fit(precondition):
    # A sparse unit silent on the training fold: unscaled and unused, as in its own fit,
    # though whitening with every row's covariance would couple it to the others.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 4, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(4000, generator=g) > 0).long()
    x[:, 3] = 0.0
    x[-50:, 3] = 5 * torch.rand(50, generator=g)
    train, test = torch.arange(3950), torch.arange(3950, 4000)
    probe = LinearProbe(tol=1e-6, precondition=precondition)
    [got] = probe.fit_splits(x, y, [train])
    want = clone(probe).fit(x[train], y[train])
    assert float(got.scale_[3]) == 1.0 and float(got.coef_[:, 3].abs().max()) == 0.0
    torch.testing.assert_close(got.coef_, want.coef_, rtol=0, atol=2e-3)
    assert got.score(x[test], y[test]) == pytest.approx(want.score(x[test], y[test]), abs=0.02)


def test_each_split_probe_holds_only_its_own_values():
    x, y = blobs(200, 6, 3)
    probe = LinearProbe()
    together = probe.fit_splits(x, y, folds(y, n_splits=4) * 5)
    alone = len(pickle.dumps(clone(probe).fit(x, y)))
    assert len(pickle.dumps(together[0])) < 1.2 * alone  # no views of all 20 splits' values
    w = torch.ones(200, dtype=torch.float64)
    assert together[0].score(x, y, sample_weight=w) == together[0].score(x, y)


def test_a_tiny_spread_far_from_the_held_out_rows_is_no_constant_column():
    # Spread 1e-6 on the split, held-out rows at 10: within the one-pass cut-off about the
    # overall mean, so the column is checked again about the split's own mean.
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (500,), generator=gen)
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    x[:, 0] = (2 * y - 1) * 1e-6 + 5e-7 * torch.randn(500, generator=gen, dtype=torch.float64)
    x[400:, 0] = 10.0
    train = torch.arange(400)
    probe = LinearProbe(tol=1e-8, max_iter=2000, dtype=torch.float64)
    [got] = probe.fit_splits(x, y, [train])
    assert_same_fit(got, clone(probe).fit(x[train], y[train]))
    assert got.score(x[train], y[train]) > 0.9


def test_float32_fits_are_within_the_tolerance_of_separate_ones():
    x, y = blobs(600, 16, 5, signal=0.3)
    trains = folds(y, n_splits=3)
    probe = LinearProbe(tol=1e-5)
    for train, got in zip(trains, probe.fit_splits(x, y, trains), strict=True):
        want = clone(probe).fit(x[train], y[train])
        assert got.coef_.dtype == torch.float32
        torch.testing.assert_close(got.predict_proba(x), want.predict_proba(x), rtol=0,
                                   atol=2e-3)


def test_splits_lacking_a_class_or_other_parameters_fall_back_to_separate_fits():
    x, y = blobs(90, 4, 3)
    no_class_2 = torch.nonzero(y != 2)[:, 0]
    every = torch.arange(90)
    probe = LinearProbe(tol=1e-8, dtype=torch.float64)
    got, whole = probe.fit_splits(x, y, [no_class_2, every], [{"C": 0.5}, {}])
    assert got.classes_.tolist() == [0, 1] and got.C_ == 0.5
    assert_same_fit(got, clone(probe).set_params(C=0.5).fit(x[no_class_2], y[no_class_2]))
    assert whole.classes_.tolist() == [0, 1, 2]
    assert_same_fit(whole, clone(probe).fit(x, y))
    [other] = probe.fit_splits(x, y, [every], [{"class_weight": "balanced"}])
    assert other.class_weight == "balanced"
    assert_same_fit(other, clone(probe).set_params(class_weight="balanced").fit(x, y))


def test_bad_C_in_a_split_raises_and_changes_nothing():
    x, y = blobs(60, 3, 2)
    probe = LinearProbe()
    with pytest.raises(ConfigError, match="C"):
        probe.fit_splits(x, y, [torch.arange(60)], [{"C": -1.0}])
    assert not hasattr(probe, "coef_")


def test_the_default_fits_one_split_at_a_time():
    x, y = blobs(120, 4, 2)
    trains = folds(y, n_splits=2)
    probe = MLPProbe(hidden=8, max_epochs=5, seed=1)
    assert type(probe).fit_splits is Probe.fit_splits
    for train, got in zip(trains, probe.fit_splits(x, y, trains), strict=True):
        want = clone(probe).fit(x[train], y[train])
        np.testing.assert_allclose(got.predict_proba(x.numpy()), want.predict_proba(x.numpy()))


def test_cv_search_and_probe_sites_match_fold_by_fold_fits():
    x, y = blobs(300, 6, 3, signal=0.5)
    grid = (0.01, 1.0, 100.0)
    probe = LinearProbe("cv", Cs=grid, cv=3, tol=1e-10, max_iter=5000,
                        dtype=torch.float64).fit(x, y)
    # The same search, fold by fold.
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))
    for row in probe.cv_results_.itertuples():
        train, test = splits[row.fold]
        alone = LinearProbe(row.C, tol=1e-10, max_iter=5000, dtype=torch.float64).fit(
            x[train], y[train])
        logp = alone.predict_log_proba(x[test]).gather(1, y[test][:, None])
        assert row.log_loss_bits == pytest.approx(float(-logp.mean() / np.log(2)), rel=1e-6)

    table = probe_sites({"a": x}, y, LinearProbe(tol=1e-10, dtype=torch.float64), cv=3,
                        progress=False)
    for row in table.itertuples():
        train, test = splits[row.fold]
        alone = LinearProbe(tol=1e-10, dtype=torch.float64).fit(x[train], y[train])
        assert row.accuracy == alone.score(x[test], y[test])


@pytest.mark.parametrize("probe", [LinearProbe(), MLPProbe(hidden=4, max_epochs=1)])
def test_bad_splits_raise_clear_errors_and_change_nothing(probe):
    x, y = blobs(40, 3, 2)
    bad = [([torch.arange(40), torch.arange(3)], [{}], ConfigError, "one dict per"),
           ([torch.arange(0)], None, ShapeError, "no rows"),
           ([torch.tensor([0, 40])], None, RangeError, r"outside \[0, 40\)"),
           ([torch.tensor([0.0, 1.0])], None, ShapeError, "integer row indices"),
           ([torch.ones(39, dtype=torch.bool)], None, ShapeError, "boolean mask")]
    for trains, params, error, message in bad:
        with pytest.raises(error, match=message):
            probe.fit_splits(x, y, trains, params)
    assert not hasattr(probe, "classes_")


def test_boolean_masks_and_numpy_inputs_select_the_same_rows():
    x, y = blobs(80, 3, 2)
    mask = torch.arange(80) % 3 != 0
    probe = LinearProbe(tol=1e-8, dtype=torch.float64)
    [by_mask] = probe.fit_splits(x.numpy(), y.numpy(), [mask.numpy()])
    assert_same_fit(by_mask, clone(probe).fit(x[mask], y[mask]))
    mlp = MLPProbe(hidden=4, max_epochs=2, seed=0)
    [fitted] = mlp.fit_splits(x.numpy(), y.numpy(), [np.nonzero(mask.numpy())[0]])
    np.testing.assert_allclose(fitted.predict_proba(x.numpy()),
                               clone(mlp).fit(x[mask], y[mask]).predict_proba(x.numpy()))
