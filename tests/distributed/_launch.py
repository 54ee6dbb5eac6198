"""`launch(fn, world_size, *args)`: run `fn(*args)` on gloo CPU ranks, return every rank's result.

Each rank is a process started by `torch.multiprocessing` ("spawn") that joins a gloo group
through a file store (no TCP port to race for), runs with one torch thread, and writes its
result to a file that the parent reads back. An exception in any rank is re-raised here with
its traceback; collectives time out and the whole launch is killed after `timeout` seconds, so
a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FOLDER = "FEATUREBIAS_TEST_LAUNCH"
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=120)


def _join(size: int, rank: int, tag: str) -> None:
    folder = os.environ[FOLDER]
    dist.init_process_group("gloo", init_method=f"file://{folder}/store-{tag}", rank=rank,
                            world_size=size, timeout=COLLECTIVE_TIMEOUT)


def _entry(rank: int, fn, world_size: int, folder: str, args: tuple) -> None:
    torch.set_num_threads(1)
    os.environ[FOLDER] = folder
    _join(world_size, rank, "main")
    try:
        result = fn(*args)
        torch.save(result, Path(folder) / f"rank-{rank}.pt")
        if dist.is_initialized():
            dist.barrier()  # nobody leaves while another rank may still need the group
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def regroup(size: int) -> bool:
    """Shrink the default group to ranks `[0, size)`; whether this rank is still in it."""
    rank = dist.get_rank()
    dist.barrier()
    dist.destroy_process_group()
    if rank >= size:
        return False
    _join(size, rank, f"regroup-{size}")
    return True


def launch(fn, world_size: int, *args, timeout: float = 300.0) -> list:
    """`[fn(*args) on rank r for r in range(world_size)]`; `fn` must be a module-level function.

    A rank that left the group early (see `regroup`) may return anything, None included.
    """
    with tempfile.TemporaryDirectory() as folder:
        old = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # read by the children as they start
        try:
            context = mp.start_processes(_entry, args=(fn, world_size, folder, args),
                                         nprocs=world_size, join=False, start_method="spawn")
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for p in context.processes:
                    p.kill()
                raise TimeoutError(f"launch of {fn.__name__} on {world_size} ranks took longer "
                                   f"than {timeout} s")
        return [torch.load(Path(folder) / f"rank-{r}.pt", weights_only=False)
                for r in range(world_size)]
