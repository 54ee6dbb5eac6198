"""The empirical neural tangent kernel `Θ(x, x') = J(x) J(x')ᵀ` (SCIENCE.md §7.3).

Two recipes, both with `torch.func` and chunked over examples so that memory stays bounded:

- "jacobian": per-example Jacobians of a chunk (`vmap(jacrev)`), contracted per parameter
  tensor. Time `N·O·[FP] + N²·O²·P`, memory `chunk·O·P`.
- "ntk_vp": NTK-vector products. For each example of an x1 chunk and each output o, a `vjp`
  gives `J(x₁)ᵀ e_o`, and one `jvp` along it over the x2 chunk gives the column
  `Θ(x₁, x₂)[o, :]` for the whole chunk; `J(x₂)` is never formed. Time `N²·O·[FP]`; better
  when `O·P` is large relative to a forward pass.

The kernel is accumulated in float64 and returned in the model output's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev, jvp, vjp, vmap

from .. import _validate as check
from .._progress import tqdm
from ..errors import ConfigError, ShapeError
from .linearised import (
    Linearised,
    aliases,
    check_module,
    eval_layers,
    substitute,
    train_mode_layers,
    trainable_names,
    transform_errors,
)

MODES = ("jacobian", "ntk_vp")
PER_LOGIT = ("trace", "full")

# Memory budget of one block when chunk_size is None (Jacobians and batched activations).
_BUDGET_BYTES = 2**27


def empirical_ntk(model: nn.Module, x1, x2=None, *, mode: str = "jacobian",
                  per_logit: str = "trace", chunk_size: int | None = None,
                  progress: bool = True) -> Tensor:
    """The empirical NTK of `model` between the examples of `x1` and of `x2` (default: x1).

    The derivatives are with respect to the parameters that require grad. For a `Linearised`
    model it is the NTK of `f_lin`, i.e. the wrapped network's NTK at θ_lin. Outputs of more
    than one dimension per example (e.g. `[T, V]` logits) are flattened to `o` outputs.

    Args:
        x1: a batch `[n1, ...]` in the model's input format (floats are cast to the
            parameters' dtype).
        x2: a batch `[n2, ...]` with the same trailing shape, or None for a symmetric kernel.
        mode: "jacobian" or "ntk_vp" (same values; see the module docstring for the costs).
        per_logit: "trace" for `Σ_o Θ_oo`, `[n1, n2]`; "full" for `[n1, n2, o, o]`.
        chunk_size: examples per block on each side; None chooses it from a memory budget.
        progress: show a progress bar over the blocks.

    Returns:
        The kernel, `[n1, n2]` or `[n1, n2, o, o]`, on the model's device.
    """
    module, params, layers, policy = _functional(model)
    names = aliases(module, list(params))
    check.choice(mode, "mode", MODES)
    check.choice(per_logit, "per_logit", PER_LOGIT)
    if chunk_size is not None:
        check.positive_int(chunk_size, "chunk_size")
    like = next(iter(params.values()))
    x1 = _inputs(x1, "x1", like)
    x2 = None if x2 is None else _inputs(x2, "x2", like)
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ShapeError(f"x2 has examples of shape {tuple(x2.shape[1:])}, expected the shape "
                         f"of x1's examples {tuple(x1.shape[1:])}")

    def single(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return substitute(module, names, p, (x.unsqueeze(0),)).reshape(-1)

    def batch_output(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return substitute(module, names, p, (x,))

    def batch(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return batch_output(p, x).reshape(x.shape[0], -1)

    with torch.no_grad(), eval_layers(layers, policy, "empirical_ntk"), \
            transform_errors("empirical_ntk"):
        out, activations = _probe(lambda: batch_output(params, x1[:1]), module)
        o = out[0].numel()
        # Bytes per example: its Jacobian (o·P) and, while differentiating, o copies of its
        # activations; the memory budget bounds each of them times the examples at once.
        size = sum(p.numel() for p in params.values())
        per_example = o * like.element_size()
        if mode == "jacobian":  # blocks of Jacobians, each computed in smaller vmap chunks
            chunk = chunk_size or _BUDGET_BYTES // (per_example * size)
            inner = max(1, min(chunk, _BUDGET_BYTES // (per_example * activations)))
            block = _jacobian_block(single, params, o, per_logit, inner)
        else:  # a block's jvp runs chunk·o·chunk forward passes at once
            chunk = chunk_size or min(int((_BUDGET_BYTES / (per_example * activations)) ** 0.5),
                                      _BUDGET_BYTES // (per_example * size))
            block = _vp_block(single, batch, params, o, per_logit)
        kernel = _assemble(block, x1, x2, max(1, chunk), o, per_logit, progress)
    return kernel.to(out.dtype)


def _functional(model) -> tuple[nn.Module, dict[str, Tensor], list[nn.Module], str]:
    """The network to call, the parameters to differentiate, its BatchNorm/Dropout, policy."""
    if isinstance(model, Linearised):
        net = model.model
        return net, model.anchor_params(), train_mode_layers(net), model.train_mode
    check_module(model)
    names = set(trainable_names(model, "empirical_ntk"))
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}
    return model, params, train_mode_layers(model), "error"


def _inputs(x, name: str, like: Tensor) -> Tensor:
    x = check.as_tensor(x, name)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ShapeError(f"{name} must be a batch [n, ...] with n >= 1, got shape "
                         f"{tuple(x.shape)}")
    check.same_device((name, x), ("the model's parameters", like))
    if x.is_floating_point():
        check.check_finite(x, name)
        x = x.to(like.dtype)
    return x


def _probe(run, module: nn.Module) -> tuple[Tensor, int]:
    """`run()` (one example's output) and the elements of all module outputs on the way."""
    seen = 0

    def count(_module, _inputs, output) -> None:
        nonlocal seen
        seen += output.numel() if isinstance(output, Tensor) else 0

    handles = [m.register_forward_hook(count) for m in module.modules()]
    try:
        out = run()
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(out, Tensor) or out.ndim < 1 or out.shape[0] != 1:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError("empirical_ntk: the model must return one tensor [b, ...] per batch "
                          f"of b examples, got {got}")
    return out, max(seen, out.numel())


def _jacobian_block(single, params: dict[str, Tensor], o: int, per_logit: str, inner: int):
    """`block(xa, xb)` by contracting per-example Jacobians, one parameter tensor at a time."""
    jacobians = vmap(jacrev(single), in_dims=(None, 0), chunk_size=inner)

    def jac(x: Tensor) -> list[Tensor]:
        return [j.reshape(x.shape[0], o, -1) for j in jacobians(params, x).values()]

    def block(xa: Tensor, xb: Tensor | None, ja=None) -> tuple[Tensor, list[Tensor]]:
        ja = jac(xa) if ja is None else ja
        jb = ja if xb is None else jac(xb)
        na, nb = ja[0].shape[0], jb[0].shape[0]
        if per_logit == "trace":
            # Σ_o Σ_P J_a[o, P] J_b[o, P]: one matrix product over (o, P) per tensor.
            rows = [(a.reshape(na, -1), b.reshape(nb, -1)) for a, b in zip(ja, jb, strict=True)]
            return _sum64(a @ b.T for a, b in rows), ja
        rows = [(a.reshape(na * o, -1), b.reshape(nb * o, -1)) for a, b in zip(ja, jb, strict=True)]
        k = _sum64(a @ b.T for a, b in rows)
        return k.reshape(na, o, nb, o).permute(0, 2, 1, 3), ja

    return block


def _sum64(terms) -> Tensor:
    """Sum of the per-tensor products, accumulated in float64."""
    total = None
    for term in terms:
        total = term.double() if total is None else total.add_(term)
    return total


def _vp_block(single, batch, params: dict[str, Tensor], o: int, per_logit: str):
    """`block(xa, xb)` from NTK-vector products: vjp per example of xa, jvp over all of xb."""
    basis = torch.eye(o, dtype=next(iter(params.values())).dtype,
                      device=next(iter(params.values())).device)

    def block(xa: Tensor, xb: Tensor | None, ja=None) -> tuple[Tensor, None]:
        xb = xa if xb is None else xb

        def rows(x: Tensor) -> Tensor:
            _, pullback = vjp(lambda p: single(p, x), params)

            def column(e: Tensor) -> Tensor:
                (direction,) = pullback(e)  # J(x)ᵀ e_o
                return jvp(lambda p: batch(p, xb), (params,), (direction,))[1]

            return vmap(column)(basis)  # [o, nb, o']: Θ(x, xb)[o, o'] at [o, b, o']

        k = vmap(rows)(xa).double()  # [na, o, nb, o']
        if per_logit == "trace":
            return k.diagonal(dim1=1, dim2=3).sum(-1), None
        return k.permute(0, 2, 1, 3), None

    return block


def _assemble(block, x1: Tensor, x2: Tensor | None, chunk: int, o: int, per_logit: str,
              progress: bool) -> Tensor:
    """Fill the kernel block by block; with x2 None only the upper blocks are computed."""
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    shape = (n1, n2) if per_logit == "trace" else (n1, n2, o, o)
    kernel = torch.empty(shape, dtype=torch.float64, device=x1.device)
    pairs = [(i, j) for i in range(0, n1, chunk) for j in range(0, n2, chunk)
             if x2 is not None or j >= i]
    row, cached = -1, None
    for i, j in tqdm(pairs, desc="ntk blocks", disable=not progress, leave=False):
        if i != row:  # a new row of blocks: xa's Jacobians (jacobian mode) are reused along it
            row, cached = i, None
        xb = None if x2 is None and j == i else (x1 if x2 is None else x2)[j:j + chunk]
        k, cached = block(x1[i:i + chunk], xb, cached)
        kernel[i:i + chunk, j:j + chunk] = k
        if x2 is None and j != i:
            kernel[j:j + chunk, i:i + chunk] = _transpose(k)
    if x2 is None:  # exact symmetry, whatever the rounding of the diagonal blocks
        kernel = (kernel + _transpose(kernel)) / 2
    return kernel


def _transpose(k: Tensor) -> Tensor:
    """`K(x2, x1)` from `K(x1, x2)`: swap the examples and, for the full kernel, the outputs."""
    return k.transpose(0, 1) if k.ndim == 2 else k.permute(1, 0, 3, 2)
