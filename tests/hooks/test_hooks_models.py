"""Erasure inside the toolkit's own models and TransformerLens bridges (native and GPT-2)."""

from __future__ import annotations

import pytest
import torch

from featurebias import models
from featurebias.errors import ConfigError
from featurebias.hooks import collect, erase_at, fit_erasers
from featurebias.sites import list_sites


def token_task(vocab: int, n: int = 256, t: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, t), generator=gen)
    return tokens, (tokens < vocab // 2).long()  # per-token label: "low" token


def test_own_model_erase_at_a_layer(blobs, probe):
    x, z = blobs
    model = models.mlp(8, hidden=(32, 32), out_dim=2, seed=0)
    before = model(x)
    erasers = fit_erasers(model, [x], z, ["layers.1.hook_post"], progress=False)
    with erase_at(model, erasers):
        store = collect(model, [x], ["layers.0.hook_post", "layers.1.hook_post"],
                        progress=False)
    assert probe(store["layers.1.hook_post"], z) <= probe.prior(z) + 0.02
    assert probe(store["layers.0.hook_post"], z) > 0.9
    assert torch.equal(model(x), before)
    assert probe.hooks(model) == 0


BRIDGES = {
    "native": lambda: models.tiny_transformer(d_model=32, n_layers=2, n_heads=4, d_vocab=16,
                                              n_ctx=16, seed=0),
    "gpt2": lambda: models.tiny_gpt2(n_embd=32, n_layer=2, n_head=2, vocab_size=16,
                                     n_positions=16, seed=0),
}


@pytest.fixture(params=sorted(BRIDGES), scope="module")
def bridge(request):
    model = BRIDGES[request.param]()
    model.eval()
    return model


def test_bridge_lists_classic_names(bridge):
    sites = list_sites(bridge)
    assert "blocks.0.hook_resid_post" in sites and "blocks.1.hook_resid_pre" in sites


def test_two_names_of_one_hook_point_are_refused_before_any_hook(bridge, probe):
    # The bridge names one activation blocks.0.hook_resid_post and blocks.0.hook_out: an
    # eraser fitted at both would be applied twice.
    alias = "blocks.0.hook_out"
    assert bridge.hook_dict[alias] is bridge.hook_dict["blocks.0.hook_resid_post"]
    tokens, labels = token_task(16, n=32)
    baseline = probe.hooks(bridge)
    sites = ["blocks.0.hook_resid_post", alias]
    with pytest.raises(ConfigError, match="two names of one activation"):
        fit_erasers(bridge, [tokens], labels, sites, progress=False)
    with pytest.raises(ConfigError, match="blocks.0.hook_resid_post' and 'blocks.0.hook_out"):
        with erase_at(bridge, dict.fromkeys(sites, lambda a: a)):
            pass
    with pytest.raises(ConfigError, match="two names"):
        collect(bridge, [tokens], sites, progress=False)
    assert probe.hooks(bridge) == baseline


def test_bridge_per_token_erasure(bridge, probe):
    tokens, labels = token_task(16)
    baseline = probe.hooks(bridge)  # a bridge keeps a few internal hooks of its own
    early, late = "blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"
    with torch.no_grad():
        before = bridge(tokens)
    batches = list(tokens.split(64))
    erasers = fit_erasers(bridge, batches, labels, [late], progress=False)
    with erase_at(bridge, erasers):
        store = collect(bridge, batches, [early, late], progress=False)
    rows = labels.reshape(-1)
    assert probe(store[early].reshape(-1, 32), rows) > 0.95
    assert probe(store[late].reshape(-1, 32), rows) <= probe.prior(rows) + 0.02
    with torch.no_grad():
        assert torch.equal(bridge(tokens), before)
    assert probe.hooks(bridge) == baseline


def test_bridge_sequence_label_at_one_position(bridge, probe):
    """Fit on the first token's activations; erase there; later positions untouched."""
    tokens, labels = token_task(16, seed=1)
    z = labels[:, 0]
    site = "blocks.1.hook_resid_post"
    erasers = fit_erasers(bridge, [tokens], z, [site], reduce=0, progress=False)
    with erase_at(bridge, erasers, positions=[0]):
        erased = collect(bridge, [tokens], [site], progress=False)[site]
    plain = collect(bridge, [tokens], [site], progress=False)[site]
    assert probe(erased[:, 0], z) <= probe.prior(z) + 0.02
    assert torch.equal(erased[:, 1:], plain[:, 1:])
