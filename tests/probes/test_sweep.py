"""probe_sites: one row per site × feature × fold, with the chance baseline."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from featurebias.errors import ConfigError, LabelError, RangeError, ShapeError
from featurebias.probes import MLPProbe, probe_sites
from featurebias.store import ActivationStore

COLUMNS = ["site", "feature", "probe", "fold", "accuracy", "log_loss_bits", "chance_accuracy",
           "chance_log_loss_bits", "n_train", "n_test"]


def activations(n: int = 240, seed: int = 0):
    """Site `signal` encodes feature `a` linearly; site `noise` encodes nothing."""
    g = torch.Generator().manual_seed(seed)
    labels = {"a": torch.randint(0, 3, (n,), generator=g),
              "b": torch.randint(0, 2, (n,), generator=g)}
    signal = torch.randn(n, 6, generator=g)
    signal[:, 0] += 5 * labels["a"]
    return {"signal": signal, "noise": torch.randn(n, 6, generator=g)}, labels


def test_frame_shape_columns_and_values():
    acts, labels = activations()
    frame = probe_sites(acts, labels, cv=4, progress=False)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2 * 2 * 4
    assert frame.groupby(["site", "feature"]).size().eq(4).all()
    assert (frame["n_train"] + frame["n_test"]).eq(240).all()
    assert frame["probe"].eq("LinearProbe").all()
    a = frame.set_index(["site", "feature"]).sort_index()
    strong = a.loc[("signal", "a")]
    assert strong["accuracy"].min() > 0.9
    assert (strong["log_loss_bits"] < strong["chance_log_loss_bits"]).all()
    weak = a.loc[("noise", "a")]
    assert abs(weak["accuracy"].mean() - weak["chance_accuracy"].mean()) < 0.15
    assert frame["chance_accuracy"].between(0.3, 0.7).all()
    # the prior's log-loss on three balanced-ish classes is about log2(3)
    assert a.loc[("noise", "a"), "chance_log_loss_bits"].between(1.4, 1.8).all()


def test_deterministic_and_store_input():
    acts, labels = activations()
    store = ActivationStore()
    store.add(0, {s: t[:100] for s, t in acts.items()})
    store.add(1, {s: t[100:] for s, t in acts.items()})
    from_store = probe_sites(store, labels["a"], cv=3, progress=False)
    from_dict = probe_sites(acts, labels["a"], cv=3, progress=False)
    pd.testing.assert_frame_equal(from_store, from_dict)
    assert set(from_store["feature"]) == {"label"}


def test_token_activations_group_folds_by_sequence():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (60,), generator=g)
    acts = {"tokens": torch.randn(60, 4, 5, generator=g) + 2 * y[:, None, None]}
    frame = probe_sites(acts, y, cv=3, progress=False)
    assert (frame["n_train"] + frame["n_test"]).eq(240).all()
    assert frame["n_test"].mod(4).eq(0).all()  # whole sequences per fold
    reduced = probe_sites(acts, y, cv=3, reduce="mean", progress=False)
    assert (reduced["n_train"] + reduced["n_test"]).eq(60).all()


def test_feature_subset_and_other_probes():
    acts, labels = activations(120)
    frame = probe_sites({"signal": acts["signal"]}, labels, cv=3, features=["b"],
                        probe=MLPProbe(hidden=8, max_epochs=5), progress=False)
    assert set(frame["feature"]) == {"b"} and frame["probe"].eq("MLPProbe").all()


def test_bad_input():
    acts, labels = activations(60)
    with pytest.raises(ConfigError, match="not in labels"):
        probe_sites(acts, labels, features=["c"], progress=False)
    with pytest.raises(ShapeError, match="site 'signal'"):
        probe_sites(acts, labels["a"][:50], progress=False)
    with pytest.raises(LabelError, match="needs at least 30 per class"):
        probe_sites(acts, labels["a"], cv=30, progress=False)
    with pytest.raises(RangeError, match="constant"):
        probe_sites({"dead": torch.zeros(60, 3)}, labels["a"], progress=False)
    with pytest.raises(ConfigError, match="ActivationStore"):
        probe_sites([acts["signal"]], labels, progress=False)
