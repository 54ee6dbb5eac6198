"""`Fitter.merge`: shards fitted separately and merged equal one fit on the whole data."""

from __future__ import annotations

import pytest
import torch

from featurebias.erasure import (
    AlfQleaceFitter,
    IterativeFitter,
    LeaceFitter,
    OracleFitter,
    QuadraticFitter,
    RandomFitter,
)
from featurebias.errors import ConfigError

FACTORIES = {
    "leace": lambda d, k: LeaceFitter(d, k),
    "orth": lambda d, k: LeaceFitter(d, k, method="orth"),
    "oracle": lambda d, k: OracleFitter(d, k),
    "qleace": lambda d, k: QuadraticFitter(d, k),
    "alf": lambda d, k: AlfQleaceFitter(d, k),
    "iterative": lambda d, k: IterativeFitter(d),
    "random": lambda d, k: RandomFitter(d, 2),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_unequal_shards_merged_in_any_order_equal_the_whole(name, class_data):
    x, y = class_data(11, 1300, 7, 3, imbalance=1.0)
    make = FACTORIES[name]
    whole = make(7, 3).update(x, y)
    bounds = [0, 1, 8, 1008, 1300]  # shard sizes 1, 7, 1000, rest
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    shards = [make(7, 3).update(x[a:b], y[a:b]) for a, b in pairs]
    merged = shards[2]
    for i in (3, 0, 1):
        merged.merge(shards[i])
    for key, stats in whole._statistics().items():
        other = merged._statistics()[key]
        assert torch.equal(stats.n, other.n)
        for field in ("mean_x", "mean_z", "m_xx", "m_xz", "m_zz"):
            a, b = getattr(stats, field), getattr(other, field)
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_merge_rejects_other_kinds_and_shapes():
    with pytest.raises(ConfigError, match="cannot merge"):
        LeaceFitter(3, 2).merge(OracleFitter(3, 2))
    with pytest.raises(ConfigError, match="different settings"):
        LeaceFitter(3, 2).merge(LeaceFitter(4, 2))
    x, z = torch.randn(20, 3, dtype=torch.float64), torch.arange(20) % 2
    leace = LeaceFitter(3, 2).update(x, z)
    before = leace.stats.m_xx.clone()
    for a, b in ((leace, LeaceFitter(3, 2, method="orth").update(x, z)),
                 (LeaceFitter(3, 2, method="orth").update(x, z), leace)):
        with pytest.raises(ConfigError, match="m_xx"):  # orth keeps no M_xx
            a.merge(b)
    assert torch.equal(leace.stats.m_xx, before) and int(leace.stats.n.sum()) == 20


def test_merge_invalidates_the_cached_eraser(class_data):
    x, y = class_data(12, 400, 5, 2)
    fitter = LeaceFitter(5, 2).update(x[:200], y[:200])
    first = fitter.eraser
    fitter.merge(LeaceFitter(5, 2).update(x[200:], y[200:]))
    assert fitter.eraser is not first
    whole = LeaceFitter(5, 2).update(x, y).eraser
    torch.testing.assert_close(fitter.eraser.P, whole.P, rtol=1e-9, atol=1e-10)
