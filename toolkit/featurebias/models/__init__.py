"""Small seeded models whose layers carry TransformerLens hook points with readable names.

`mlp`, `resmlp`, `lenet`, `small_cnn` and `small_resnet` return subclasses of
`transformer_lens.HookedRootModule`: `model.hook_dict` maps each name below to its `HookPoint`,
and `run_with_cache`/`run_with_hooks` work as in TransformerLens. `tiny_transformer` and
`tiny_gpt2` return `TransformerBridge`s with TransformerLens's own names. Every builder takes a
`seed` (same seed → same parameters; the global RNG is untouched) and raises `ConfigError` on a
bad argument; a forward pass raises `ShapeError` on an input of the wrong shape. No model uses
BatchNorm or dropout, so train and eval mode compute the same function.

Hook names (i counts from 0; shapes for a batch of b):

- `mlp`: `layers.{i}.hook_pre` (pre-activation `[b, hidden[i]]`), `layers.{i}.hook_post`
  (post-activation), `hook_logits` (`[b, out_dim]`). Input `[b, in_dim]`; `[b, ...]` is flattened.
- `resmlp`: `hook_embed` (`[b, width]`), `blocks.{i}.hook_resid_pre`, `blocks.{i}.hook_mlp_post`
  (hidden activation inside the block), `blocks.{i}.hook_mlp_out` (branch before the residual
  add), `blocks.{i}.hook_resid_post`, `hook_logits`.
- `lenet`, `small_cnn`: `conv.{i}.hook_pre` (convolution output), `conv.{i}.hook_post` (after
  ReLU and, in LeNet, pooling; `[b, c, h, w]`), `hook_pooled` (flattened features for LeNet,
  global average pool `[b, width]` for the CNN), `fc.{i}.hook_pre`/`fc.{i}.hook_post` (LeNet's
  FC 120 and 84), `hook_logits`.
- `small_resnet`: `stem.hook_pre`, `stem.hook_post`, `blocks.{i}.hook_resid_pre`,
  `blocks.{i}.hook_conv_post`, `blocks.{i}.hook_conv_out`, `blocks.{i}.hook_resid_post`
  (`[b, width, h, w]`), `hook_pooled` (`[b, width]`), `hook_logits`.
- Conv nets take `[b, c, h, w]`, or flat `[b, c·h·w]` rows reshaped with the configured
  `in_channels` and `image_size` (convenient for erasers fitted on flattened images).
- `tiny_transformer`, `tiny_gpt2`: TransformerLens names, e.g. `hook_embed`,
  `blocks.{i}.hook_resid_pre`, `blocks.{i}.hook_resid_post`, `blocks.{i}.hook_mlp_out`,
  `blocks.{i}.attn.hook_z`, next to the bridge's canonical `blocks.{i}.hook_out`, ...
"""

from .conv import LeNet, SmallCNN, lenet, small_cnn
from .mlp import MLP, ResMLP, mlp, resmlp
from .resnet import SmallResNet, small_resnet
from .transformer import tiny_gpt2, tiny_transformer

__all__ = [
    "MLP", "LeNet", "ResMLP", "SmallCNN", "SmallResNet", "lenet", "mlp", "resmlp",
    "small_cnn", "small_resnet", "tiny_gpt2", "tiny_transformer",
]
