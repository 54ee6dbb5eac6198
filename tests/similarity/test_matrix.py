"""similarity_matrix: tidy all-pairs tables; and bad input for every registered measure."""

from __future__ import annotations

import pytest
import torch

from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    NonFiniteError,
    RangeError,
    ShapeError,
)
from featurebias.similarity import MEASURES, Measure, cka, mutual_knn, pwcca, similarity_matrix
from featurebias.store import ActivationStore

F64 = torch.float64


def layers(n: int = 50, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 6, generator=gen, dtype=F64)
    out = {}
    for i, width in enumerate((6, 4, 5)):
        h = torch.tanh(h @ torch.randn(h.shape[1], width, generator=gen, dtype=F64))
        out[f"layers.{i}"] = h + 0.1 * torch.randn(n, width, generator=gen, dtype=F64)
    return out


def test_all_pairs_tidy_and_symmetric():
    acts = layers()
    df = similarity_matrix(acts, measure="cka", progress=False)
    names = list(acts)
    assert list(df.columns) == ["x", "y", "measure", "value"] and len(df) == 9
    assert list(zip(df.x, df.y, strict=True)) == [(a, b) for a in names for b in names]
    grid = df.pivot(index="x", columns="y", values="value").loc[names, names]
    assert torch.allclose(torch.tensor(grid.values), torch.tensor(grid.values.T))
    assert grid.values.diagonal() == pytest.approx([1, 1, 1])
    assert grid.loc["layers.0", "layers.2"] == pytest.approx(cka(acts["layers.0"],
                                                                 acts["layers.2"]), abs=1e-15)


def test_cross_collections_and_kwargs():
    a, b = layers(seed=1), {"m.0": torch.randn(50, 3, dtype=F64), "m.1": torch.randn(50, 8)}
    df = similarity_matrix(a, b, measure="mutual_knn", k=5, progress=False)
    assert len(df) == 6 and set(df.y) == {"m.0", "m.1"}
    row = df[(df.x == "layers.1") & (df.y == "m.1")].iloc[0]
    assert row.value == mutual_knn(a["layers.1"], b["m.1"], k=5)


def test_asymmetric_measure_computes_both_orders():
    acts = {"a": torch.randn(80, 4, dtype=F64), "b": torch.randn(80, 4, dtype=F64)}
    acts["b"] = acts["b"] + acts["a"]
    df = similarity_matrix(acts, measure="pwcca", progress=False).set_index(["x", "y"])
    assert df.loc[("a", "b"), "value"] == pytest.approx(pwcca(acts["a"], acts["b"]))
    assert df.loc[("b", "a"), "value"] == pytest.approx(pwcca(acts["b"], acts["a"]))
    assert df.loc[("a", "b"), "value"] != df.loc[("b", "a"), "value"]


def test_rsa_permutations_add_columns_and_custom_measures():
    acts = layers(n=15)
    df = similarity_matrix(acts, measure="rsa", permutations=9, progress=False)
    assert list(df.columns) == ["x", "y", "measure", "value", "p_value", "n_permutations"]
    custom = Measure("mean_gap", lambda x, y: float(x.mean() - y.mean()), symmetric=False)
    df = similarity_matrix(acts, measure=custom, progress=False)
    assert set(df.measure) == {"mean_gap"} and len(df) == 9

    def width_ratio(x, y):
        return x.shape[1] / y.shape[1]

    df = similarity_matrix(acts, measure=width_ratio, progress=False).set_index(["x", "y"])
    assert df.loc[("layers.1", "layers.0"), "value"] == pytest.approx(4 / 6)


def test_stores_and_dicts_of_models():
    acts = layers(n=40)
    store = ActivationStore()
    store.add(0, {k: v[:25] for k, v in acts.items()})
    store.add(1, {k: v[25:] for k, v in acts.items()})
    from_store = similarity_matrix(store, progress=False)
    from_dict = similarity_matrix(acts, progress=False)
    assert from_store.value.tolist() == pytest.approx(from_dict.value.tolist(), abs=1e-12)
    models = {"model_a": store, "model_b": {k: v.flip(0).flip(0) * 2 for k, v in acts.items()}}
    df = similarity_matrix(models, site="layers.1", measure="cka", progress=False)
    assert df.value.tolist() == pytest.approx([1.0] * 4, abs=1e-12)


@pytest.mark.parametrize("call,error,words", [
    (lambda a: similarity_matrix({**a, "short": torch.randn(10, 3)}, progress=False),
     ShapeError, "'short' has 10 rows"),
    (lambda a: similarity_matrix(a, measure="nope", progress=False), ConfigError, "unknown"),
    (lambda a: similarity_matrix({"m": a}, progress=False), ConfigError, "site="),
    (lambda a: similarity_matrix({"m": a}, site="missing", progress=False), ConfigError,
     "missing"),
    (lambda a: similarity_matrix(a, site="layers.0", progress=False), ConfigError, "tensors"),
    (lambda a: similarity_matrix({}, progress=False), ConfigError, "empty"),
    (lambda a: similarity_matrix(a, measure=3, progress=False), ConfigError, "measure"),
], ids=["rows", "unknown-measure", "no-site", "missing-site", "site-with-tensors", "empty",
        "bad-measure"])
def test_matrix_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call(layers())


def _nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[2, 1] = float("nan")
    return x


BAD = {
    "n-mismatch": (lambda x, y: (x, y[:-1]), ShapeError, "rows"),
    "n<2": (lambda x, y: (x[:1], y[:1]), ShapeError, "at least"),
    "nan": (lambda x, y: (_nan(x), y), NonFiniteError, "NaN"),
    "constant": (lambda x, y: (x, torch.full_like(y, 2.0)), RangeError, "constant"),
}


@pytest.mark.parametrize("name", sorted(MEASURES))
@pytest.mark.parametrize("case", sorted(BAD))
def test_every_measure_rejects_bad_input(name, case):
    make, error, words = BAD[case]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen, dtype=F64), torch.randn(30, 3, generator=gen)
    with pytest.raises(error, match=words) as info:
        MEASURES[name](*make(x, y))
    assert isinstance(info.value, FeatureBiasError)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_constant_columns_policy(name):
    """Whitening measures reject a constant unit; the others are defined and ignore it."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 4, generator=gen, dtype=F64), torch.randn(30, 3, generator=gen)
    y = torch.cat([y, torch.ones(30, 1)], dim=1)
    if name in ("cca", "pwcca"):
        with pytest.raises(RangeError, match="constant column"):
            MEASURES[name](x, y)
    else:
        assert torch.isfinite(torch.tensor(float(MEASURES[name](x, y))))
