"""variance_explained: sklearn reference, planted structure, null data, checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.preprocessing import OneHotEncoder

from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    LabelError,
    NonFiniteError,
    ShapeError,
)
from featurebias.features import variance_explained
from featurebias.store import ActivationStore


def value(df: pd.DataFrame, feature: str, measure: str = "r2", **where) -> float:
    mask = (df.feature == feature) & (df.measure == measure)
    for col, v in where.items():
        mask &= df[col] == v
    (out,) = df.loc[mask, "value"]
    return out


def design(features: dict, names: list[str]) -> np.ndarray:
    """The reference encoding: floats as they are, ints/bools one-hot without the first level."""
    cols = []
    for name in names:
        v = np.asarray(features[name])[:, None]
        cols.append(v if v.dtype.kind == "f" else
                    OneHotEncoder(drop="first", sparse_output=False).fit_transform(v))
    return np.hstack(cols) if cols else np.zeros((len(v), 0))


def reference_r2(h, features, names, fit, test) -> float:
    """sklearn LinearRegression per output; residuals over Σ_T ‖h − mean_fit(h)‖² (SCIENCE 6.2)."""
    h = h.numpy()
    if names:
        x = design(features, names)
        pred = LinearRegression().fit(x[fit], h[fit]).predict(x[test])
    else:
        pred = np.broadcast_to(h[fit].mean(0), h[test].shape)
    sst = ((h[test] - h[fit].mean(0)) ** 2).sum()
    return 1 - ((h[test] - pred) ** 2).sum() / sst


def test_matches_sklearn_linear_regression(make_mixed):
    h, feats = make_mixed()
    perm = np.random.default_rng(0).permutation(len(h))
    fit, test = np.sort(perm[:250]), np.sort(perm[250:])
    df = variance_explained(h, feats, split=(fit, test))
    names = list(feats)
    joint = reference_r2(h, feats, names, fit, test)
    assert abs(value(df, "joint") - joint) < 1e-8
    assert abs(value(df, "joint", "residual") - (1 - joint)) < 1e-8
    for name in names:
        assert abs(value(df, name) - reference_r2(h, feats, [name], fit, test)) < 1e-8
        others = [m for m in names if m != name]
        unique = joint - reference_r2(h, feats, others, fit, test)
        assert abs(value(df, name, "unique") - unique) < 1e-8
    assert list(df.columns) == ["site", "feature", "measure", "value"]
    assert (df.site == "x").all() and len(df) == 2 * len(names) + 2


def test_in_sample_is_sklearn_variance_weighted_r2(make_mixed):
    # Fit and test rows coincide, so the fit-split mean is the test mean that r2_score uses.
    h, feats = make_mixed(seed=1)
    df = variance_explained(h, feats, in_sample=True)
    for names in (["cat"], ["cont"], ["flag"], list(feats)):
        x = design(feats, names)
        pred = LinearRegression().fit(x, h.numpy()).predict(x)
        want = r2_score(h.numpy(), pred, multioutput="variance_weighted")
        got = value(df, names[0] if len(names) == 1 else "joint")
        assert abs(got - want) < 1e-8


def test_per_item_averages_item_ratios(make_mixed):
    h, feats = make_mixed(seed=2)
    fit, test = np.arange(0, 600, 2), np.arange(1, 600, 2)
    df = variance_explained(h, feats, split=(fit, test), per_item=True)
    x, hn = design(feats, ["cat"]), h.numpy()
    pred = LinearRegression().fit(x[fit], hn[fit]).predict(x[test])
    phi = hn[test] - hn[fit].mean(0)
    want = np.mean(1 - ((hn[test] - pred) ** 2).sum(1) / (phi ** 2).sum(1))
    assert abs(value(df, "cat") - want) < 1e-8
    assert abs(value(df, "joint") + value(df, "joint", "residual") - 1) < 1e-12


def test_planted_structure_gives_analytic_fractions(make_planted):
    a, b, sigma, p = 3.0, 1.0, 0.5, 20
    h, feats = make_planted(a=a, b=b, sigma=sigma, p=p)
    total = a**2 + b**2 + sigma**2 * p
    df = variance_explained(h, feats)
    assert value(df, "easy") == pytest.approx(a**2 / total, abs=0.02)
    assert value(df, "hard") == pytest.approx(b**2 / total, abs=0.01)
    assert value(df, "joint") == pytest.approx((a**2 + b**2) / total, abs=0.02)
    # Independent features: each one's unique share is its own R².
    assert value(df, "easy", "unique") == pytest.approx(value(df, "easy"), abs=0.01)


def test_norm_ratio_sets_the_r2_ratio():
    # A factorial design balanced within each half: the features are exactly uncorrelated on
    # the fit and the test rows, so no cross term blurs the ratio ‖A‖² / ‖B‖² = 100.
    gen = torch.Generator().manual_seed(3)
    n, p = 4000, 32
    i = torch.arange(n)
    easy, hard = (i // 2) % 2, i % 2
    fit, test = i[i % 8 < 4], i[i % 8 >= 4]
    dirs = torch.randn(p, 2, generator=gen, dtype=torch.float64)  # not orthogonal
    big, small = 10 * dirs[:, 0] / dirs[:, 0].norm(), dirs[:, 1] / dirs[:, 1].norm()
    h = easy[:, None] * big + hard[:, None] * small
    h = h + 0.05 * torch.randn(n, p, generator=gen, dtype=torch.float64)
    df = variance_explained(h.float(), {"easy": easy, "hard": hard}, split=(fit, test))
    assert value(df, "easy") / value(df, "hard") == pytest.approx(100, rel=0.03)


@pytest.mark.parametrize("kind", ["binary", "categorical", "continuous"])
def test_random_representation_explains_nothing_held_out(kind):
    gen = torch.Generator().manual_seed(4)
    n = 4000
    f = {"binary": torch.randint(0, 2, (n,), generator=gen),
         "categorical": torch.randint(0, 5, (n,), generator=gen),
         "continuous": torch.randn(n, generator=gen)}[kind]
    df = variance_explained(torch.randn(n, 32, generator=gen), {"f": f})
    assert abs(value(df, "f")) < 0.02
    assert abs(value(df, "joint", "residual") - 1) < 0.02


def test_checkpoints_share_the_last_steps_denominator(make_mixed):
    h1, feats = make_mixed(seed=5)
    h0 = 0.3 * h1 + torch.randn(h1.shape, generator=torch.Generator().manual_seed(6),
                                dtype=torch.float64)
    fit, test = np.arange(300), np.arange(300, 600)
    store = ActivationStore()
    store.add(0, {"layer": h1})
    df = variance_explained({10: store, 0: {"layer": h0}}, feats, split=(fit, test))
    assert list(df.columns) == ["site", "step", "feature", "measure", "value"]
    assert df.step.tolist()[:1] == [0] and set(df.step) == {0, 10}
    final = variance_explained({"layer": h1}, feats, split=(fit, test))
    assert np.allclose(df[df.step == 10].value.to_numpy(), final.value.to_numpy(), atol=1e-12)
    # Step 0: explained variance of that step over the last step's total test variance.
    hn0, hn1, x = h0.numpy(), h1.numpy(), design(feats, ["cat"])
    pred = LinearRegression().fit(x[fit], hn0[fit]).predict(x[test])
    sst0 = ((hn0[test] - hn0[fit].mean(0)) ** 2).sum()
    sst1 = ((hn1[test] - hn1[fit].mean(0)) ** 2).sum()
    want = (sst0 - ((hn0[test] - pred) ** 2).sum()) / sst1
    assert abs(value(df, "cat", step=0) - want) < 1e-8
    total0 = value(df, "joint", step=0) + value(df, "joint", "residual", step=0)
    assert abs(total0 - sst0 / sst1) < 1e-10


def test_input_forms_agree(make_mixed):
    h, feats = make_mixed(seed=7)
    base = variance_explained({"a": h, "b": 2 * h}, feats, seed=1)
    store = ActivationStore()
    store.add(0, {"a": h[:100], "b": 2 * h[:100]})
    store.add(1, {"a": h[100:], "b": 2 * h[100:]})
    labels = np.array(["lo", "mid", "hi"])[feats["cat"].numpy()]
    frame = pd.DataFrame({"cat": labels, "cont": feats["cont"].numpy(),
                          "flag": feats["flag"].numpy()})
    for acts, fs in [(store, feats), ({"a": h, "b": 2 * h}, frame)]:
        pd.testing.assert_frame_equal(variance_explained(acts, fs, seed=1), base, atol=1e-12)
    # Trailing dimensions are flattened: [n, 7] viewed as [n, 7, 1] gives the same numbers.
    one = variance_explained(h[:, :, None], feats, seed=1, site="a")
    assert np.allclose(one.value, base[base.site == "a"].value, atol=1e-12)


def test_seeded_and_reproducible(make_mixed):
    h, feats = make_mixed(seed=8)
    a, b = (variance_explained(h, feats, seed=3) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    c = variance_explained(h, feats, seed=4)
    assert not np.allclose(a.value, c.value)
    gen = torch.Generator().manual_seed(3)
    pd.testing.assert_frame_equal(variance_explained(h, feats, seed=gen), a)


def test_float32_input_and_constant_representation(make_mixed):
    h, feats = make_mixed(seed=9)
    a, b = variance_explained(h, feats), variance_explained(h.float(), feats)
    assert np.allclose(a.value, b.value, atol=1e-5)
    dead = variance_explained(torch.full((600, 4), 0.7), feats)
    assert dead.value.isna().all()


def _bad_inputs():
    n, gen = 50, torch.Generator().manual_seed(0)
    h, f = torch.randn(n, 3, generator=gen), torch.randint(0, 2, (n,), generator=gen)
    nan_h = h.clone()
    nan_h[3, 1] = float("nan")
    nan_f = torch.randn(n, generator=gen)
    nan_f[7] = float("inf")
    only_fit_zero = torch.zeros(n, dtype=torch.long)
    only_fit_zero[25:] = 1
    return [
        ("length", h, {"f": f[:-1]}, {}, ShapeError),
        ("sites", {"a": h, "b": h[:-1]}, {"f": f}, {}, ShapeError),
        ("nan acts", nan_h, {"f": f}, {}, NonFiniteError),
        ("nan feature", h, {"f": nan_f}, {}, NonFiniteError),
        ("missing label", h, {"f": pd.Series(["u", None] * 25)}, {}, NonFiniteError),
        ("constant", h, {"f": torch.ones(n, dtype=torch.long)}, {}, LabelError),
        ("constant float", h, {"f": torch.full((n,), 2.0)}, {}, LabelError),
        ("constant on fit", h, {"f": only_fit_zero}, {"split": (range(25), range(25, n))},
         LabelError),
        ("empty acts", torch.zeros(0, 3), {"f": f[:0]}, {}, ShapeError),
        ("empty dict", {}, {"f": f}, {}, ConfigError),
        ("no features", h, {}, {}, ConfigError),
        ("reserved name", h, {"joint": f}, {}, ConfigError),
        ("2-d feature", h, {"f": torch.randn(n, 2)}, {}, ShapeError),
        ("split", h, {"f": f}, {"split": 1.5}, ConfigError),
        ("overlap", h, {"f": f}, {"split": (range(30), range(20, n))}, ConfigError),
        ("index range", h, {"f": f}, {"split": (range(30), [30, n])}, ConfigError),
        ("tiny split", h, {"f": f}, {"split": 0.01}, ShapeError),
        ("steps", {0: {"a": h}, 1: {"b": h}}, {"f": f}, {}, ConfigError),
        ("step keys", {"early": {"a": h}}, {"f": f}, {}, ConfigError),
        ("site keys", {0: h}, {"f": f}, {}, ConfigError),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_input_raises_clear_errors(case):
    _, acts, feats, kwargs, error = case
    with pytest.raises(error) as info:
        variance_explained(acts, feats, progress=False, **kwargs)
    assert isinstance(info.value, FeatureBiasError) and "expected" in str(info.value)


def test_a_level_no_fit_row_has_is_predicted_by_the_fit_mean_whatever_its_code():
    gen = np.random.default_rng(0)
    n = 80
    level = gen.integers(0, 3, size=n)
    fit, test = np.arange(0, 50), np.arange(50, n)
    level[test[:6]] = 3  # seen only in the test rows
    h = gen.normal(size=(4, 5))[level] * 3 + gen.normal(size=(n, 5))
    # The explicit model: each seen level's fit mean; the unseen level gets the fit mean.
    means = {c: h[fit][level[fit] == c].mean(0) for c in np.unique(level[fit])}
    predicted = np.stack([means.get(c, h[fit].mean(0)) for c in level[test]])
    centred = h[test] - h[fit].mean(0)
    want = 1 - ((h[test] - predicted) ** 2).sum() / (centred**2).sum()
    codings = {"codes": level, "unseen code first": (level + 1) % 4,
               "strings": np.array(["abcd"[c] for c in level])}
    for name, coded in codings.items():
        table = variance_explained(torch.tensor(h), {"c": coded}, split=(fit, test))
        got = table[(table.feature == "c") & (table.measure == "r2")].value.item()
        assert got == pytest.approx(want, abs=1e-12), name
