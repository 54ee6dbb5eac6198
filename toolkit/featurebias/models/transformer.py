"""Tiny randomly initialised transformers as TransformerLens `TransformerBridge`s, offline.

The bridge modules are imported inside the functions: importing them costs seconds, which
users of the small vision and MLP models should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .. import _validate as check
from ..errors import ConfigError
from ._common import seeded

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

_NATIVE_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")


def _heads(width: int, heads: int, width_name: str, heads_name: str) -> int:
    if width % heads:
        raise ConfigError(f"{width_name}={width} must be divisible by {heads_name}={heads} "
                          "(each head gets width/heads dimensions)")
    return width // heads


def _warmed_up(bridge: TransformerBridge) -> TransformerBridge:
    # A bridge block installs two permanent internal forward pre-hooks (on its LayerNorms) the
    # first time it runs. One token through it now makes the model's set of torch hooks stable
    # from construction on, so hook bookkeeping (count before == count after) is not fooled.
    with torch.no_grad():
        bridge(torch.zeros(1, 1, dtype=torch.long))
    return bridge


def tiny_transformer(*, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                     d_vocab: int = 16, n_ctx: int = 64, d_mlp: int | None = None,
                     act_fn: str = "gelu", seed: int = 0) -> TransformerBridge:
    """A TL-native decoder-only transformer (`TransformerBridge.boot_native`), no download.

    Takes int64 tokens `[b, t]` (t ≤ n_ctx, ids < d_vocab) and returns logits `[b, t, d_vocab]`.
    Pre-LayerNorm blocks, learned positions, GPT-2-style init; no dropout. The hook names are
    TransformerLens's (`blocks.{i}.hook_resid_post`, `blocks.{i}.attn.hook_z`, ...; the
    bridge's `hook_dict` lists canonical names and these aliases side by side).

    Args:
        d_mlp: hidden width of each MLP; None means 4·d_model.
        act_fn: MLP activation, one of "gelu", "gelu_new", "relu", "silu".
        seed: the same seed gives the same weights; the global RNG is left as it was.
    """
    d_model = check.positive_int(d_model, "d_model")
    n_heads = check.positive_int(n_heads, "n_heads")
    d_head = _heads(d_model, n_heads, "d_model", "n_heads")
    d_mlp = 4 * d_model if d_mlp is None else check.positive_int(d_mlp, "d_mlp")
    sizes = dict(n_layers=check.positive_int(n_layers, "n_layers"),
                 n_ctx=check.positive_int(n_ctx, "n_ctx"),
                 d_vocab=check.positive_int(d_vocab, "d_vocab"))
    check.choice(act_fn, "act_fn", _NATIVE_ACTIVATIONS)
    seed = check.positive_int(seed, "seed", minimum=0)

    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=d_model, d_head=d_head, n_heads=n_heads, d_mlp=d_mlp, **sizes,
        act_fn=act_fn, seed=seed, device="cpu", model_name="featurebias-tiny-transformer",
    )
    # boot_native seeds its own init from cfg.seed; the outer seed also pins any parameter
    # its initialiser might leave at the nn.Module default.
    with seeded(seed):
        return _warmed_up(TransformerBridge.boot_native(cfg))


def tiny_gpt2(*, n_embd: int = 32, n_layer: int = 2, n_head: int = 2, vocab_size: int = 64,
              n_positions: int = 32, seed: int = 0) -> TransformerBridge:
    """A randomly initialised Hugging Face GPT-2 wrapped as a `TransformerBridge`, no download.

    Built from `GPT2Config` alone (no tokenizer; pass token ids). Dropout is off, so train and
    eval mode agree; attention is eager so the pattern hooks fire. Takes int64 tokens `[b, t]`
    (t ≤ n_positions) and returns logits `[b, t, vocab_size]`.

    Args:
        seed: the same seed gives the same weights; the global RNG is left as it was.
    """
    n_embd = check.positive_int(n_embd, "n_embd")
    n_head = check.positive_int(n_head, "n_head")
    _heads(n_embd, n_head, "n_embd", "n_head")
    config_kw = dict(
        n_embd=n_embd, n_head=n_head,
        n_layer=check.positive_int(n_layer, "n_layer"),
        vocab_size=check.positive_int(vocab_size, "vocab_size"),
        n_positions=check.positive_int(n_positions, "n_positions"),
    )
    seed = check.positive_int(seed, "seed", minimum=0)

    from transformer_lens.model_bridge.sources import build_bridge_from_module
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        **config_kw, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        # GPT-2's default special ids (50256) lie outside a tiny vocabulary.
        bos_token_id=None, eos_token_id=None, attn_implementation="eager",
    )
    # Wrapping the model also draws from the global RNG, so the seeded block covers both steps.
    with seeded(seed):
        model = GPT2LMHeadModel(config)
        # boot_transformers would fetch a tokenizer from the Hub; this builder does not.
        return _warmed_up(build_bridge_from_module(
            model, "GPT2LMHeadModel", hf_config=model.config, model_name="featurebias-tiny-gpt2"))
