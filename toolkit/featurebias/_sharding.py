"""How a distributed `collect` or `fit_erasers` shares batches over ranks and merges stores.

Rank r of W takes batches r, r + W, r + 2W, ... (round robin: balanced, and independent of
how long the iterable is). On disk, each rank writes its shards into a private store
`FOLDER/.rank-NNNNN/` inside the shared folder (nothing is written by two ranks); after every
rank is done, rank 0 hard-links their shards into FOLDER and writes its manifest once, then
removes the rank folders. `ActivationStore.open(FOLDER)` then sees every batch exactly once, in
batch order. The folder must be on a file system that every rank sees (NFS, Lustre, a local
disk for one node).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from . import distributed
from .store import MANIFEST, ActivationStore

PART = ".rank-{rank:05d}"


def owned(batches: Iterable, group=None) -> Iterator[tuple[int, object]]:
    """This rank's `(index, batch)` pairs; a Sequence is indexed, so others are never built."""
    step, first = distributed.world_size(group), distributed.rank(group)
    if isinstance(batches, Sequence):
        for index in range(first, len(batches), step):
            yield index, batches[index]
        return
    for index, batch in enumerate(batches):
        if index % step == first:
            yield index, batch


def open_part(folder: Path, sites: list[str], group=None) -> tuple[ActivationStore, frozenset]:
    """This rank's private store, and the batches the shared store already holds (resuming)."""
    with distributed.together("collect (opening the store)", group):
        if distributed.rank(group) == 0:  # creates the folder, or checks its sites
            ActivationStore(folder, sites=sites)
    with distributed.together("collect (opening the store)", group):
        done = ActivationStore.open(folder).completed
        part = ActivationStore(folder / PART.format(rank=distributed.rank(group)), sites=sites)
    return part, done


def publish(folder: Path, sites: list[str], group=None) -> ActivationStore:
    """Merge every rank folder into `folder` (rank 0), then open it on every rank."""
    with distributed.together("collect (merging the ranks' shards)", group):
        if distributed.rank(group) == 0:
            main = ActivationStore(folder, sites=sites)
            # Every rank folder, also ones left by an interrupted run with more ranks.
            parts = sorted(p for p in folder.glob(PART.split("{")[0] + "*") if p.is_dir())
            for part in parts:
                if (part / MANIFEST).is_file():  # else a crash before its first write
                    main.absorb(ActivationStore.open(part))
            for part in parts:  # only once the manifest lists every shard
                shutil.rmtree(part)
    return ActivationStore.open(folder)
