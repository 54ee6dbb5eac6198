"""torch.distributed helpers: ranks, and collectives that behave the same on gloo and NCCL.

The toolkit scales out on torch.distributed (launch with `torchrun`), not on a protocol of its
own. Every helper is a no-op on one process (torch.distributed not initialised, or a group of
one), so code written for `torchrun` runs unchanged in a notebook. `group=None` is the default
(world) group. Tensors are staged to the device the backend needs (CUDA for NCCL, CPU for
gloo) and returned on the device they came from.

This module imports only torch and the toolkit's errors, so the pure tensor code (erasure,
similarity, features) may use it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import ConfigError

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def is_distributed() -> bool:
    """Whether a torch.distributed process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def rank(group=None) -> int:
    """This process's rank in `group` (0 when not distributed)."""
    return dist.get_rank(group) if is_distributed() else 0


def world_size(group=None) -> int:
    """Number of processes in `group` (1 when not distributed)."""
    return dist.get_world_size(group) if is_distributed() else 1


def active(group=None) -> bool:
    """Whether collectives over `group` involve more than this process."""
    return world_size(group) > 1


def barrier(group=None) -> None:
    """Wait until every rank of `group` got here (nothing to wait for on one process)."""
    if active(group):
        dist.barrier(group=group)


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that `torchrun` set up.

    Reads torchrun's `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (and `LOCAL_RANK` to
    pick the CUDA device). Returns whether this call initialised the group: False when it
    already was or when the variables are absent (a plain single process).

    Args:
        backend: default NCCL when CUDA is available, else gloo.
    """
    if is_distributed() or "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    atexit.register(_leave)  # torch warns about a group left undestroyed at exit
    return True


def _leave() -> None:
    if is_distributed():
        dist.destroy_process_group()


def _staging_device(t: Tensor, group) -> torch.device:
    backend = dist.get_backend(group)
    if backend == "nccl" and t.device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo" and t.device.type != "cpu":
        return torch.device("cpu")
    return t.device  # MPI, UCC, or a mixed "cpu:gloo,cuda:nccl" group dispatching by device


def all_reduce(tensor: Tensor, op: str = "sum", group=None) -> Tensor:
    """`op` ("sum", "max", "min") of `tensor` over the ranks, as a new tensor on its device.

    The input is never changed. Every rank receives the same bits: NCCL and gloo compute
    each element once and send that result to every rank.
    """
    if op not in _OPS:
        raise ConfigError(f"op must be one of {tuple(_OPS)}, got {op!r}")
    if not active(group):
        return tensor.clone()
    work = tensor.detach().to(_staging_device(tensor, group), copy=True).contiguous()
    dist.all_reduce(work, op=_OPS[op], group=group)
    return work.to(tensor.device)


def all_reduce_(tensor: Tensor, op: str = "sum", group=None) -> Tensor:
    """`all_reduce` in place (a copy only when the backend needs another device); returns it."""
    if op not in _OPS:
        raise ConfigError(f"op must be one of {tuple(_OPS)}, got {op!r}")
    if not active(group):
        return tensor
    device = _staging_device(tensor, group)
    if device == tensor.device and tensor.is_contiguous():
        dist.all_reduce(tensor, op=_OPS[op], group=group)
        return tensor
    return tensor.copy_(all_reduce(tensor, op, group))


def broadcast_(tensor: Tensor, src: int = 0, group=None) -> Tensor:
    """Overwrite `tensor` with rank `src`'s (rank within `group`) on every rank; returns it."""
    if not active(group):
        return tensor
    device = _staging_device(tensor, group)
    work = tensor if device == tensor.device and tensor.is_contiguous() else (
        tensor.to(device).contiguous())
    dist.broadcast(work, src=_global_rank(group, src), group=group)
    return tensor if work is tensor else tensor.copy_(work)


def all_gather(tensor: Tensor, group=None) -> Tensor:
    """`[world_size, *tensor.shape]`: every rank's tensor (same shape on every rank)."""
    if not active(group):
        return tensor[None].clone()
    work = tensor.detach().to(_staging_device(tensor, group)).contiguous()
    parts = [torch.empty_like(work) for _ in range(world_size(group))]
    dist.all_gather(parts, work, group=group)
    return torch.stack(parts).to(tensor.device)


def all_gather_object(obj, group=None) -> list:
    """Every rank's picklable `obj`, in rank order (with NCCL, set the CUDA device first)."""
    if not active(group):
        return [obj]
    out = [None] * world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def broadcast_object(obj, src: int = 0, group=None):
    """Rank `src`'s (rank within `group`) picklable `obj`, on every rank."""
    if not active(group):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=_global_rank(group, src), group=group)
    return box[0]


def _global_rank(group, group_rank: int) -> int:
    return group_rank if group is None else dist.get_global_rank(group, group_rank)


def check_agree(values: Sequence[int], what: str, group=None) -> None:
    """Raise `ConfigError` on every rank unless all ranks passed the same integers.

    A mismatch found before a collective makes every rank fail with a message, instead of
    hanging or reducing tensors of different layouts.
    """
    if not active(group):
        return
    mine = torch.tensor([len(values), *values], dtype=torch.int64)
    every = all_gather(mine, group)
    if not bool((every == mine).all()):
        raise ConfigError(f"ranks disagree on {what}: got {every[:, 1:].tolist()} (one row per "
                          "rank); expected the same on every rank")


@contextlib.contextmanager
def together(what: str, group=None) -> Iterator[None]:
    """Run the body on every rank; if it raises on any rank, raise on every rank.

    Wrap the local work (validation, a rank's share of the data) that precedes a collective:
    without it, one rank's error leaves the others waiting in the collective forever. The
    failing rank re-raises its own error; the others raise `ConfigError` naming it.
    """
    error = None
    try:
        yield
    except Exception as e:  # re-raised below, after every rank has heard of it
        error = e
    if active(group):
        report = None if error is None else f"{type(error).__name__}: {error}"
        failed = [(r, msg) for r, msg in enumerate(all_gather_object(report, group)) if msg]
        if failed and error is None:
            r, msg = failed[0]
            raise ConfigError(f"{what} failed on rank {r} ({len(failed)} rank(s) in all): "
                              f"{msg}")
    if error is not None:
        raise error


def owns(index: int, group=None) -> bool:
    """Whether item `index` of a sequence split round-robin over the ranks is this rank's."""
    return index % world_size(group) == rank(group)


def all_reduce_moments(moments, group=None):
    """The `Moments` of every rank's data together (exact for any counts); input unchanged.

    See `featurebias.erasure.Moments.all_reduce` for the method and why it is exact.
    """
    return moments.all_reduce(group)
