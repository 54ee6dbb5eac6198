"""One switch turns every progress bar off; bars otherwise follow `progress=`."""

from __future__ import annotations

import torch

from featurebias import _progress
from featurebias.hooks import collect
from featurebias.models import mlp


def test_environment_switch_disables_bars(monkeypatch):
    assert not _progress.tqdm(range(3)).disable
    assert _progress.tqdm(range(3), disable=True).disable
    monkeypatch.setenv("FEATUREBIAS_PROGRESS", "0")
    assert _progress.tqdm(range(3)).disable


def test_switch_silences_a_real_loop(monkeypatch, capsys):
    model = mlp(4, (8,), 2)
    batches = [torch.randn(5, 4) for _ in range(3)]
    collect(model, batches, ["layers.0.hook_post"], progress=True)
    assert "collect" in capsys.readouterr().err
    monkeypatch.setenv("FEATUREBIAS_PROGRESS", "0")
    collect(model, batches, ["layers.0.hook_post"], progress=True)
    assert capsys.readouterr().err == ""
