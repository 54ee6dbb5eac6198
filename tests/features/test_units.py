"""Per-unit R², selectivity and density: the in-sample identity, corr², planted units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featurebias.errors import ConfigError, FeatureBiasError, ShapeError
from featurebias.features import unit_density, unit_r2, unit_selectivity, variance_explained


def with_dead_units(h: torch.Tensor) -> torch.Tensor:
    """`h` with two constant columns inserted (units 1 and 4), which every measure skips."""
    out = torch.cat([h, torch.full((h.shape[0], 2), 3.0, dtype=h.dtype)], 1)
    order = [0, h.shape[1], 1, 2, h.shape[1] + 1, *range(3, h.shape[1])]
    return out[:, order]


@pytest.mark.parametrize("name", ["cat", "cont", "flag"])
def test_variance_weighted_unit_r2_is_the_encoding_r2_in_sample(make_mixed, name):
    h, feats = make_mixed(seed=1)
    h = with_dead_units(h)
    units = unit_r2(h, {name: feats[name]}, in_sample=True)
    assert list(units.columns) == ["site", "unit", "feature", "variance", "r2"]
    assert 1 not in set(units.unit) and 4 not in set(units.unit)
    assert len(units) == h.shape[1] - 2
    r2 = variance_explained(h, {name: feats[name]}, in_sample=True)
    want = r2[(r2.feature == name) & (r2.measure == "r2")].value.item()
    got = (units.variance * units.r2).sum() / units.variance.sum()
    assert abs(got - want) < 1e-10


def test_unit_r2_is_corr2_on_the_test_rows(make_mixed):
    h, feats = make_mixed(seed=2)
    fit, test = np.arange(200), np.arange(200, 600)
    df = unit_r2(h, feats, split=(fit, test))
    hn = h.numpy()[test]
    for name in ("cont", "flag"):
        f = feats[name].numpy()[test].astype(float)
        rows = df[df.feature == name].sort_values("unit")
        want = [np.corrcoef(hn[:, u], f)[0, 1] ** 2 for u in range(h.shape[1])]
        assert np.allclose(rows.r2, want, atol=1e-10)
        assert np.allclose(rows.variance, hn.var(0, ddof=1), rtol=1e-12)


def test_selectivity_picks_the_best_feature(make_planted, make_mixed):
    h, feats = make_planted()
    sel = unit_selectivity(h, feats)
    assert list(sel.columns) == ["site", "unit", "feature", "r2", "selectivity", "variance"]
    first = sel.set_index("unit")
    assert first.loc[0, "feature"] == "easy" and first.loc[0, "r2"] > 0.95
    assert first.loc[1, "feature"] == "hard" and first.loc[1, "selectivity"] > 0.75
    # Against the full table: best R² and best minus runner-up, per unit.
    h, feats = make_mixed(seed=3)
    sel, table = unit_selectivity(h, feats, seed=1), unit_r2(h, feats, seed=1)
    for r in sel.itertuples():
        r2 = table[table.unit == r.unit].set_index("feature").r2.sort_values()
        assert r.feature == r2.index[-1] and r.r2 == pytest.approx(r2.iloc[-1], abs=1e-12)
        assert r.selectivity == pytest.approx(r2.iloc[-1] - r2.iloc[-2], abs=1e-12)
    single = unit_selectivity(h, {"cat": feats["cat"]})
    assert np.allclose(single.selectivity, single.r2)


def test_density_counts_units_above_threshold(make_planted, make_mixed):
    h, feats = make_planted(p=20)
    dens = unit_density(with_dead_units(h), feats, [0.1, 0.99])
    assert list(dens.columns) == ["site", "feature", "threshold", "density", "n_units"]
    assert (dens.n_units == 20).all()
    assert dens.set_index(["feature", "threshold"]).density.to_dict() == {
        ("easy", 0.1): 1 / 20, ("easy", 0.99): 0.0, ("hard", 0.1): 1 / 20, ("hard", 0.99): 0.0}
    h, feats = make_mixed(seed=4)
    table = unit_r2(h, feats)
    for r in unit_density(h, feats, 0.05).itertuples():
        assert r.density == (table[table.feature == r.feature].r2 > 0.05).mean()


def test_dead_site_and_checkpoints(make_mixed):
    h, feats = make_mixed(seed=5)
    acts = {0: {"dead": torch.zeros(600, 3), "live": h}, 3: {"dead": torch.zeros(600, 3),
                                                             "live": 2 * h}}
    sel = unit_selectivity(acts, feats)
    assert list(sel.columns)[:3] == ["site", "step", "unit"] and set(sel.site) == {"live"}
    dens = unit_density(acts, feats)
    assert dens[dens.site == "dead"].density.isna().all()
    assert (dens[dens.site == "dead"].n_units == 0).all()
    live = dens[dens.site == "live"]
    assert np.array_equal(live[live.step == 0].density, live[live.step == 3].density)
    pd_a, pd_b = unit_r2(acts, feats, seed=2), unit_r2(acts, feats, seed=2)
    assert pd_a.equals(pd_b)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, [], True, float("nan"), "x"])
def test_bad_threshold(make_mixed, threshold):
    h, feats = make_mixed()
    with pytest.raises(ConfigError):
        unit_density(h, feats, threshold)


@pytest.mark.parametrize("fn", [unit_r2, unit_selectivity, unit_density])
def test_mismatched_lengths(make_mixed, fn):
    h, feats = make_mixed()
    with pytest.raises(ShapeError) as info:
        fn(h[:-1], feats)
    assert isinstance(info.value, FeatureBiasError)
