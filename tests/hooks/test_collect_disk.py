"""collect() streaming to disk: an interrupted collection resumes to the same result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from featurebias.hooks import collect
from featurebias.store import ActivationStore


class Crash(Exception):
    pass


def interrupted(batches, after: int):
    for i, batch in enumerate(batches):
        if i == after:
            raise Crash
        yield batch


def test_resume_equals_uninterrupted(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    batches = list(torch.randn(10, 9, 5).unbind())
    full = collect(model, batches, ["0", "2"], to=tmp_path / "full", progress=False)
    with pytest.raises(Crash):
        collect(model, interrupted(batches, 4), ["0", "2"], to=tmp_path / "part",
                progress=False)
    assert ActivationStore(tmp_path / "part").completed == {0, 1, 2, 3}
    resumed = collect(model, batches, ["0", "2"], to=tmp_path / "part", progress=False)
    reopened = ActivationStore.open(tmp_path / "part")
    for site in ("0", "2"):
        assert torch.equal(resumed[site], full[site])
        assert torch.equal(reopened[site], full[site])
    assert len(reopened) == 90


def test_collect_to_cpu_keeps_only_named_sites_and_reduces(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    x = torch.randn(3, 6, 4)  # token-shaped
    store = collect(model, [x], ["0"], to="cpu", reduce="mean", progress=False)
    assert store.sites == ["0"]
    assert torch.allclose(store["0"], model[0](x).mean(1))
    last = collect(model, [x], ["1"], reduce="last", progress=False)["1"]
    assert torch.equal(last, model(x)[:, -1])
