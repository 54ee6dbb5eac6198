"""patch_at / erase_at / collect / fit_erasers on plain nn.Modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from featurebias.erasure import LeaceEraser
from featurebias.errors import LabelError, ShapeError, SiteError
from featurebias.hooks import collect, erase_at, fit_erasers, patch_at


def make_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 2))


def test_patch_replaces_output_and_input_and_cleans_up(blobs, probe):
    x, _ = blobs
    model = make_mlp()
    before = model(x)
    with patch_at(model, {"4": lambda a: a * 0}):
        assert torch.equal(model(x), torch.zeros_like(before))
    with patch_at(model, {"4:input": lambda a: a * 0}):
        assert torch.allclose(model(x), model[4].bias.expand_as(before))
    assert torch.equal(model(x), before)
    assert probe.hooks(model) == 0


def test_erasure_at_a_site_leaves_earlier_sites_decodable(blobs, probe):
    x, z = blobs
    model = make_mlp()
    before = model(x)
    erasers = fit_erasers(model, [x[:200], x[200:]], z, ["3"], progress=False)
    with erase_at(model, erasers):
        store = collect(model, [x], ["1", "3"], progress=False)
    assert probe(store["3"], z) <= probe.prior(z) + 0.02
    assert probe(store["1"], z) > 0.9
    assert torch.equal(model(x), before)  # bit-identical outside the context
    assert probe.hooks(model) == 0


def test_sequential_fitting_sees_earlier_erasure(blobs, probe):
    x, z = blobs
    model = make_mlp()
    plain = fit_erasers(model, [(x, z)], None, ["1", "3"], num_classes=2, progress=False)
    scrub = fit_erasers(model, [(x, z)], None, ["1", "3"], num_classes=2, sequential=True,
                        progress=False)
    assert torch.equal(plain["1"].P, scrub["1"].P)  # the first site sees the same data
    assert not torch.allclose(plain["3"].P, scrub["3"].P)
    with erase_at(model, scrub):
        acts = collect(model, [x], ["3"], progress=False)["3"]
    assert probe(acts, z) <= probe.prior(z) + 0.02


def test_raising_bodies_leave_no_hooks_and_keep_user_hooks(blobs, probe):
    x, z = blobs
    model = make_mlp()
    calls = []
    mine = model[2].register_forward_hook(lambda m, a, o: calls.append(1))
    eraser = LeaceEraser.fit(model[:3](x).detach(), z)
    calls.clear()
    baseline = probe.hooks(model)
    for _ in range(1000):
        with pytest.raises(RuntimeError), erase_at(model, {"2": eraser}):
            model(x[:4])
            raise RuntimeError("boom")
    assert probe.hooks(model) == baseline == 1
    model(x[:4])
    assert len(calls) == 1001
    mine.remove()


def test_bad_sites_register_nothing(blobs, probe):
    x, z = blobs
    model = make_mlp()
    with pytest.raises(SiteError, match="closest"), patch_at(model, {"1": abs, "33": abs}):
        pass
    assert probe.hooks(model) == 0


def test_label_erasers_need_labels(blobs, probe):
    x, z = blobs
    model = make_mlp()
    erasers = fit_erasers(model, [x], z, ["3"], method="qleace", progress=False)
    with pytest.raises(LabelError, match="labels"), erase_at(model, erasers):
        model(x)
    assert probe.hooks(model) == 0
    with erase_at(model, erasers, labels=z):
        acts = collect(model, [x], ["3"], progress=False)["3"]
    means = torch.stack([acts[z == c].mean(0) for c in (0, 1)])
    assert torch.allclose(means[0], means[1], atol=1e-4)


def test_labels_can_change_between_batches(blobs, probe):
    x, z = blobs
    model = make_mlp()
    erasers = fit_erasers(model, [x], z, ["3"], method="qleace", progress=False)
    with torch.no_grad(), erase_at(model, erasers, labels=z) as erasure:
        whole = model(x)
        parts = []
        for rows in torch.split(torch.arange(len(z)), 150):
            erasure.labels = z[rows].tolist()  # any array-like
            parts.append(model(x[rows]))
        erasure.labels = z[:3]
        with pytest.raises(ShapeError):  # labels that do not match the batch
            model(x[:5])
        with pytest.raises(LabelError, match="class ids"):
            erasure.labels = object()
        assert torch.equal(erasure.labels, z[:3])  # a rejected value changes nothing
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)
    assert probe.hooks(model) == 0
