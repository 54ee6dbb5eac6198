"""Every registered measure: identities, its declared invariances, symmetry and metadata."""

from __future__ import annotations

import pytest
import torch

from featurebias.errors import ConfigError
from featurebias.similarity import (
    INVARIANCES,
    INVERTIBLE_LINEAR,
    ISOTROPIC_SCALING,
    MEASURES,
    ORTHOGONAL,
    PERMUTATION,
    TRANSLATION,
    Measure,
)

F64 = torch.float64
N, P, Q = 60, 6, 5


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, P, generator=gen, dtype=F64) * torch.linspace(0.5, 2, P, dtype=F64)
    y = torch.tanh(x[:, :Q]) + 0.7 * torch.randn(N, Q, generator=gen, dtype=F64)
    return x, y


def transform(kind: str, t: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """A random member of the transformation family `kind` applied to `t [n, d]`."""
    gen = torch.Generator().manual_seed(seed)
    d = t.shape[1]
    if kind == ORTHOGONAL:
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))
        return t @ q
    if kind == ISOTROPIC_SCALING:
        return 3.7 * t
    if kind == INVERTIBLE_LINEAR:  # well conditioned, far from orthogonal
        return t @ (torch.eye(d, dtype=F64) + 0.6 * torch.randn(d, d, generator=gen, dtype=F64))
    if kind == PERMUTATION:
        return t[:, torch.randperm(d, generator=gen)]
    if kind == TRANSLATION:
        return t + 5 * torch.randn(d, generator=gen, dtype=F64)
    raise AssertionError(kind)


DECLARED = [(name, inv) for name, m in MEASURES.items() for inv in sorted(m.invariances)]


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_identity(name):
    m = MEASURES[name]
    x, _ = data()
    expected = 1.0 if m.kind == "similarity" else 0.0
    assert float(m(x, x)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("name,invariance", DECLARED, ids=[f"{n}-{i}" for n, i in DECLARED])
def test_declared_invariance_holds(name, invariance):
    m = MEASURES[name]
    x, y = data()
    base = float(m(x, y))
    assert float(m(x, transform(invariance, y))) == pytest.approx(base, abs=1e-8)
    assert float(m(transform(invariance, x, seed=2), y)) == pytest.approx(base, abs=1e-8)


@pytest.mark.parametrize("name,invariance", [
    ("cka", INVERTIBLE_LINEAR), ("cka_debiased", INVERTIBLE_LINEAR),
    ("svcca", INVERTIBLE_LINEAR), ("procrustes", INVERTIBLE_LINEAR),
    ("rsa", ORTHOGONAL), ("rsa", TRANSLATION), ("pwcca", ORTHOGONAL),
    ("mutual_knn", TRANSLATION),
])
def test_undeclared_invariance_fails(name, invariance):
    """The flags are informative: these measures do change under these maps."""
    m = MEASURES[name]
    assert invariance not in m.invariances
    x, y = data()
    assert abs(float(m(x, transform(invariance, y))) - float(m(x, y))) > 1e-3


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_symmetry_flag(name):
    m = MEASURES[name]
    x, y = data(seed=3)
    forward, backward = float(m(x, y)), float(m(y, x))
    if m.symmetric:
        assert forward == pytest.approx(backward, abs=1e-10)
    else:  # pwcca weights by the narrower side, x on a tie: equal widths show the asymmetry
        y = torch.cat([y, x[:, -1:] ** 2], dim=1)
        assert abs(float(m(x, y)) - float(m(y, x))) > 1e-6


def test_metadata_is_consistent():
    for m in MEASURES.values():
        assert m.invariances <= INVARIANCES and m.kind in ("similarity", "distance")
        if INVERTIBLE_LINEAR in m.invariances:  # it contains the other linear families
            assert {ORTHOGONAL, ISOTROPIC_SCALING, PERMUTATION} <= m.invariances
        assert not m.metric or m.kind == "distance"
    assert MEASURES["procrustes_angular"].metric and not MEASURES["procrustes"].metric


def test_independent_data_scores_lower_than_related():
    x, y = data(seed=4)
    z = torch.randn(N, Q, generator=torch.Generator().manual_seed(9), dtype=F64)
    for m in MEASURES.values():
        related, unrelated = float(m(x, y)), float(m(x, z))
        assert (related > unrelated) if m.kind == "similarity" else (related < unrelated), m.name


def test_measure_validates_its_metadata():
    with pytest.raises(ConfigError, match="invariance"):
        Measure("bad", lambda x, y: 0.0, invariances=frozenset({"rotation"}))
    with pytest.raises(ConfigError, match="kind"):
        Measure("bad", lambda x, y: 0.0, kind="score")
