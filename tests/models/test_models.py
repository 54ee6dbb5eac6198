"""The model zoo: shapes, documented hook names, seeding, hooks that change the output, errors."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from featurebias import ConfigError, ShapeError, models

# name -> (builder(seed), input maker, output shape, documented hook names)
SMALL = {
    "mlp": (
        lambda seed: models.mlp(12, hidden=(8, 6), out_dim=3, seed=seed),
        lambda: torch.randn(4, 12), (4, 3),
        {"layers.0.hook_pre", "layers.0.hook_post", "layers.1.hook_pre", "layers.1.hook_post",
         "hook_logits"},
    ),
    "resmlp": (
        lambda seed: models.resmlp(12, width=8, depth=2, out_dim=3, seed=seed),
        lambda: torch.randn(4, 12), (4, 3),
        {"hook_embed", "hook_logits"} | {f"blocks.{i}.{h}" for i in range(2) for h in
                                         ("hook_resid_pre", "hook_mlp_post", "hook_mlp_out",
                                          "hook_resid_post")},
    ),
    "lenet": (
        lambda seed: models.lenet(1, 10, image_size=8, seed=seed),
        lambda: torch.rand(4, 1, 8, 8), (4, 10),
        {"conv.0.hook_pre", "conv.0.hook_post", "conv.1.hook_pre", "conv.1.hook_post",
         "hook_pooled", "fc.0.hook_pre", "fc.0.hook_post", "fc.1.hook_pre", "fc.1.hook_post",
         "hook_logits"},
    ),
    "small_cnn": (
        lambda seed: models.small_cnn(3, 4, width=8, depth=3, image_size=6, seed=seed),
        lambda: torch.rand(4, 3, 6, 6), (4, 4),
        {f"conv.{i}.{h}" for i in range(3) for h in ("hook_pre", "hook_post")}
        | {"hook_pooled", "hook_logits"},
    ),
    "small_resnet": (
        lambda seed: models.small_resnet(3, 4, width=8, blocks=2, image_size=6, seed=seed),
        lambda: torch.rand(4, 3, 6, 6), (4, 4),
        {"stem.hook_pre", "stem.hook_post", "hook_pooled", "hook_logits"}
        | {f"blocks.{i}.{h}" for i in range(2) for h in
           ("hook_resid_pre", "hook_conv_post", "hook_conv_out", "hook_resid_post")},
    ),
}


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shape_and_documented_hooks(name):
    build, make_x, out_shape, hooks = SMALL[name]
    model = build(0)
    x = make_x()
    out, cache = model.run_with_cache(x)
    assert out.shape == out_shape
    assert set(model.hook_dict) == hooks
    assert set(cache.keys()) == hooks  # every hook point fires on a forward pass


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seed_fixes_parameters_and_leaves_global_rng(name):
    build = SMALL[name][0]
    state = torch.random.get_rng_state()
    a, b, c = build(0), build(0), build(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _same_params(a, b)
    assert not _same_params(a, c)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_zeroing_any_hook_point_changes_output(name):
    build, make_x, _, hooks = SMALL[name]
    model, x = build(0), make_x()
    with torch.no_grad():
        base = model(x)
        for hook in sorted(hooks):
            handle = model.hook_dict[hook].register_forward_hook(lambda m, i, out: out * 0)
            try:
                changed = model(x)
            finally:
                handle.remove()
            assert not torch.allclose(changed, base), hook
        assert torch.equal(model(x), base)


@pytest.mark.parametrize("name", ["lenet", "small_cnn", "small_resnet"])
def test_conv_nets_accept_flat_images(name):
    build, make_x, _, _ = SMALL[name]
    model, x = build(0), make_x()
    torch.testing.assert_close(model(x.flatten(1)), model(x))


def test_inputs_are_flattened_and_cast():
    model = models.mlp(12, hidden=4, seed=0)
    x = torch.randint(0, 3, (5, 3, 4))
    torch.testing.assert_close(model(x), model(x.float().reshape(5, 12)))
    images = torch.randint(0, 255, (2, 1, 8, 8), dtype=torch.uint8)
    assert models.lenet()(images).dtype == torch.float32


def test_spatially_agnostic_nets_take_other_sizes():
    x = torch.rand(2, 3, 11, 7)
    assert models.small_cnn(width=4)(x).shape == (2, 10)
    assert models.small_resnet(width=4, blocks=1)(x).shape == (2, 10)


def test_lenet_image_sizes():
    model = models.lenet(3, 5, image_size=(12, 16))
    assert model(torch.rand(2, 3, 12, 16)).shape == (2, 5)
    assert model.hook_dict["hook_pooled"] is model.hook_pooled
    assert model.input_shape == (3, 12, 16)
    assert models.lenet(image_size=28)(torch.rand(2, 784)).shape == (2, 10)


def test_train_and_eval_agree_and_torch_func_works():
    model = SMALL["small_resnet"][0](0)
    x = torch.rand(3, 3, 6, 6)
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out)
    params = {k: v.detach() for k, v in model.named_parameters()}
    torch.testing.assert_close(functional_call(model, params, (x,)), eval_out)


@pytest.mark.parametrize("build", [
    lambda: models.mlp(0),
    lambda: models.mlp(8, hidden=(4, 0)),
    lambda: models.mlp(8, hidden="64"),
    lambda: models.mlp(8, out_dim=-1),
    lambda: models.mlp(8, activation="swish"),
    lambda: models.mlp(8, seed=-1),
    lambda: models.mlp(8, seed=1.5),
    lambda: models.resmlp(8, width=0),
    lambda: models.resmlp(8, depth=0),
    lambda: models.lenet(image_size=10),
    lambda: models.lenet(image_size=(8, 6)),
    lambda: models.lenet(image_size=(8, 8, 8)),
    lambda: models.lenet(in_channels=0),
    lambda: models.small_cnn(width=0),
    lambda: models.small_cnn(depth=True),
    lambda: models.small_resnet(blocks=0),
    lambda: models.small_resnet(num_classes=0),
    lambda: models.tiny_transformer(d_model=30, n_heads=4),
    lambda: models.tiny_transformer(n_layers=0),
    lambda: models.tiny_transformer(act_fn="tanh"),
    lambda: models.tiny_gpt2(n_embd=33, n_head=2),
    lambda: models.tiny_gpt2(vocab_size=0),
])
def test_bad_arguments_raise_config_error(build):
    with pytest.raises(ConfigError):
        build()


@pytest.mark.parametrize("model, x, expected", [
    (lambda: models.mlp(12), torch.randn(4, 10), "in_dim=12"),
    (lambda: models.mlp(12), torch.randn(12), "batch"),
    (lambda: models.lenet(), torch.rand(4, 3, 8, 8), "channels"),
    (lambda: models.lenet(), torch.rand(4, 1, 12, 12), "8×8"),
    (lambda: models.lenet(), torch.rand(4, 65), "1·8·8"),
    (lambda: models.small_cnn(), torch.rand(4, 3, 16), "[b, c, h, w]"),
])
def test_bad_inputs_raise_shape_error(model, x, expected):
    with pytest.raises(ShapeError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        model()(x)


# ---- TransformerLens bridges ----------------------------------------------------------------

BRIDGES = {
    "native": (lambda seed: models.tiny_transformer(d_model=32, n_layers=2, n_heads=4,
                                                    d_vocab=16, n_ctx=16, seed=seed), 16),
    "gpt2": (lambda seed: models.tiny_gpt2(n_embd=32, n_layer=2, n_head=2, vocab_size=24,
                                           n_positions=16, seed=seed), 24),
}


@pytest.fixture(params=sorted(BRIDGES), scope="module")
def bridge(request):
    build, vocab = BRIDGES[request.param]
    return request.param, build(0), vocab


def test_bridge_forward_and_hook_names(bridge):
    _, model, vocab = bridge
    tokens = torch.randint(0, vocab, (3, 7))
    with torch.no_grad():
        logits = model(tokens)
    assert logits.shape == (3, 7, vocab)
    names = set(model.hook_dict)
    for i in range(2):
        assert {f"blocks.{i}.hook_in", f"blocks.{i}.hook_out", f"blocks.{i}.hook_resid_pre",
                f"blocks.{i}.hook_resid_post", f"blocks.{i}.hook_mlp_out",
                f"blocks.{i}.attn.hook_z"} <= names
    assert "hook_embed" in names
    # aliases and canonical names share one HookPoint
    assert model.hook_dict["blocks.0.hook_resid_post"] is model.hook_dict["blocks.0.hook_out"]


def test_bridge_forward_hook_changes_output(bridge):
    _, model, vocab = bridge
    tokens = torch.randint(0, vocab, (2, 5))
    with torch.no_grad():
        base = model(tokens)
        point = model.hook_dict["blocks.0.hook_resid_post"]
        handle = point.register_forward_hook(lambda m, i, out: out * 0)
        try:
            changed = model(tokens)
        finally:
            handle.remove()
        assert not torch.allclose(changed, base)
        torch.testing.assert_close(model(tokens), base)


def _torch_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_bridge_hook_set_is_stable_from_construction():
    # the bridge wires internal capture hooks on its first forward; the builder runs one
    for build, vocab in BRIDGES.values():
        model = build(0)
        before = _torch_hooks(model)
        with torch.no_grad():
            model(torch.randint(0, vocab, (2, 4)))
        assert _torch_hooks(model) == before


def test_bridge_seeding(bridge):
    name, model, _ = bridge
    build = BRIDGES[name][0]
    state = torch.random.get_rng_state()
    same, other = build(0), build(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _same_params(model, same)
    assert not _same_params(model, other)
