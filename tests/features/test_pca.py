"""pc_attribution: the in-sample identity, agreement with sklearn PCA and corr², planted PCs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

from featurebias.errors import ConfigError, FeatureBiasError, LabelError
from featurebias.features import pc_attribution, variance_explained

COLUMNS = ["site", "component", "feature", "eigenvalue", "variance_fraction", "r2", "attributed",
           "cumulative_fraction"]


@pytest.mark.parametrize("seed", [0, 1])
def test_in_sample_sum_over_all_pcs_is_the_encoding_r2(make_mixed, seed):
    h, feats = make_mixed(seed=seed)
    pcs = pc_attribution(h, feats, None, in_sample=True)
    r2 = variance_explained(h, feats, in_sample=True)
    assert list(pcs.columns) == COLUMNS and pcs.component.max() == h.shape[1]
    for name in feats:
        rows = pcs[pcs.feature == name]
        want = r2[(r2.feature == name) & (r2.measure == "r2")].value.item()
        assert abs(rows.cumulative_fraction.iloc[-1] - want) < 1e-10
        assert abs(rows.attributed.sum() / rows.eigenvalue.sum() - want) < 1e-10


def test_matches_sklearn_pca_and_test_split_corr2(make_mixed):
    h, feats = make_mixed(seed=2)
    fit, test = np.arange(0, 600, 3), np.setdiff1d(np.arange(600), np.arange(0, 600, 3))
    df = pc_attribution(h, feats, 4, split=(fit, test))
    pca = PCA().fit(h.numpy()[fit])
    scores = (h.numpy()[test] - pca.mean_) @ pca.components_[:4].T
    for name, f in feats.items():
        rows = df[df.feature == name]
        assert np.allclose(rows.eigenvalue, pca.explained_variance_[:4], rtol=1e-10)
        assert np.allclose(rows.variance_fraction, pca.explained_variance_ratio_[:4], rtol=1e-10)
        f_test = f.numpy()[test]
        if name == "cat":  # three levels: the R² of the class means
            x = OneHotEncoder(drop="first", sparse_output=False).fit_transform(f_test[:, None])
            want = [LinearRegression().fit(x, s).score(x, s) for s in scores.T]
        else:
            want = [np.corrcoef(s, f_test.astype(float))[0, 1] ** 2 for s in scores.T]
        assert np.allclose(rows.r2, want, atol=1e-10)
        assert np.allclose(rows.attributed, rows.eigenvalue * rows.r2, rtol=1e-12)
        partial = np.cumsum(rows.attributed) / np.cumsum(rows.eigenvalue)
        assert np.allclose(rows.cumulative_fraction, partial, rtol=1e-12)


def test_planted_features_own_their_components(make_planted):
    a, b, sigma = 3.0, 1.0, 0.5
    h, feats = make_planted(a=a, b=b, sigma=sigma)
    df = pc_attribution(h, feats, 3)
    pc = {(r.component, r.feature): r for r in df.itertuples()}
    assert pc[1, "easy"].r2 > 0.95 and pc[1, "hard"].r2 < 0.01
    assert pc[2, "hard"].r2 > 0.75 and pc[2, "easy"].r2 < 0.01
    assert pc[1, "easy"].eigenvalue == pytest.approx(a**2 + sigma**2, rel=0.05)
    assert pc[1, "easy"].attributed == pytest.approx(a**2, rel=0.05)
    assert pc[3, "easy"].r2 < 0.01 and pc[3, "hard"].r2 < 0.01


def test_components_are_capped_at_the_rank():
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(300, 3, generator=gen) @ torch.randn(3, 10, generator=gen)
    f = {"f": torch.randint(0, 2, (300,), generator=gen)}
    assert pc_attribution(h, f, None).component.max() == 3
    assert pc_attribution(h, f, 10).component.max() == 3
    assert pc_attribution(h, f, 2).component.tolist() == [1, 2]
    assert pc_attribution(torch.ones(300, 4), f).empty


def test_checkpoints_and_reproducibility(make_mixed):
    h, feats = make_mixed(seed=4)
    df = pc_attribution({0: {"s": 0.5 * h}, 1: {"s": h}}, feats, 2, seed=7)
    assert list(df.columns) == ["site", "step", *COLUMNS[1:]]
    e0, e1 = (df[(df.step == s) & (df.feature == "cat")].eigenvalue.to_numpy() for s in (0, 1))
    assert np.allclose(e0, 0.25 * e1)
    again = pc_attribution({0: {"s": 0.5 * h}, 1: {"s": h}}, feats, 2, seed=7)
    assert df.equals(again)


@pytest.mark.parametrize("n_components", [0, 1.5, True, "3"])
def test_bad_n_components(make_mixed, n_components):
    h, feats = make_mixed()
    with pytest.raises(ConfigError):
        pc_attribution(h, feats, n_components)


def test_feature_constant_on_the_test_rows(make_mixed):
    h, _ = make_mixed()
    f = torch.zeros(600, dtype=torch.long)
    f[:300] = 1
    with pytest.raises(LabelError, match="constant on the test split") as info:
        pc_attribution(h, {"f": f}, split=(range(300), range(300, 600)))
    assert isinstance(info.value, FeatureBiasError)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_inputs_rounding_sets_the_rank_not_its_eps_times_n(dtype):
    gen = torch.Generator().manual_seed(5)
    f = {"f": torch.randint(0, 2, (400,), generator=gen)}
    noise = torch.randn(400, 32, generator=gen, dtype=torch.float64)
    assert pc_attribution(noise.to(dtype), f, None).component.max() == 32
    # Rounding a rank-3 representation to the dtype adds no components.
    low = torch.randn(400, 3, generator=gen) @ torch.randn(3, 32, generator=gen)
    assert pc_attribution(low.to(dtype), f, None).component.max() == 3


def test_a_small_float32_component_over_many_rows_is_kept():
    gen = torch.Generator().manual_seed(6)
    n = 50_000
    f = torch.randn(n, generator=gen, dtype=torch.float64)
    h = torch.stack([torch.randn(n, generator=gen, dtype=torch.float64),
                     torch.randn(n, generator=gen, dtype=torch.float64),
                     0.003 * f + 1e-4 * torch.randn(n, generator=gen, dtype=torch.float64)], 1)
    df = pc_attribution(h.float(), {"f": f}, None, in_sample=True)
    assert df.component.max() == 3
    assert float(df[df.component == 3].r2.iloc[0]) > 0.99
