"""ActivationStore: activations per site, in memory or as resumable safetensors shards on disk.

On disk: `shard-{index:06d}.safetensors` files and `manifest.json`, which alone says which shards
count. Each is written to a temporary file, fsynced and renamed, shard first, so a crash leaves
the old or the new state and a resumed collection re-adds just the batches the manifest lacks.
One store object writes a folder at a time; listed shards never change, so readers are safe.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import numbers
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import (
    ConfigError,
    DeviceError,
    DTypeError,
    FormatError,
    NotFittedError,
    ShapeError,
    SiteError,
)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEADER_KEY = "featurebias"


def _site_list(sites) -> list[str]:
    names = [sites] if isinstance(sites, str) else list(sites) if hasattr(sites, "__iter__") else []
    if not names or len(set(names)) < len(names) or not all(isinstance(s, str) for s in names):
        raise ConfigError(f"sites must be a non-empty list of distinct site names, got {sites!r}")
    return names


def _is_int(x, low: int) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= low


def _atomic_write(target: Path, write) -> None:
    """Write through `write(tmp_name)` to a temporary file beside `target`, then rename it."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # makes the rename durable; fails harmlessly on Windows
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link(source: Path, target: str) -> None:
    """Hard-link `source` as `target` (no data copied), or copy it where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class ActivationStore:
    """Activations per site, kept in memory or streamed to disk as safetensors shards."""

    def __init__(self, path=None, *, sites=None):
        self._path = None if path is None else Path(path)
        self._sites: list[str] | None = None if sites is None else _site_list(sites)
        self._specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self._rows: dict[int, int] = {}  # batch index -> row count
        self._data: dict[int, dict[str, Tensor]] = {}  # in memory only
        if self._path is None:
            return
        if self._path.exists() and not self._path.is_dir():
            raise ConfigError(f"store path {self._path} is a file; expected a folder")
        if (self._path / MANIFEST).is_file():
            wanted = self._sites
            self._load_manifest()
            if wanted is not None and self._sites is None:
                self._sites = wanted
                self._write_manifest(wanted, self._specs, self._rows)
            elif wanted is not None and set(wanted) != set(self._sites):
                raise ConfigError(f"{self._path} stores sites {self._sites}, but sites={wanted} "
                                  "was asked for; use the same sites or another folder")
            return
        # Shards without a manifest cannot come from a crash of ours: don't overwrite them.
        if any(self._path.glob("shard-*.safetensors")):
            raise FormatError(f"{self._path} holds shard files but no {MANIFEST}; expected an "
                              "empty folder or an existing ActivationStore")
        self._path.mkdir(parents=True, exist_ok=True)
        self._write_manifest(self._sites, {}, {})

    @classmethod
    def open(cls, path) -> ActivationStore:
        """Reopen the on-disk store in folder `path`."""
        if not (Path(path) / MANIFEST).is_file():
            raise FormatError(f"no ActivationStore at {path}: {MANIFEST} is missing")
        return cls(path)

    def add(self, index: int, activations: Mapping[str, Tensor]) -> None:
        """Store batch number `index`: a tensor `[n, ...]` per site, with one n for all sites."""
        if not _is_int(index, 0):
            raise ConfigError(f"batch index must be an int >= 0, got {index!r}")
        index = int(index)  # numpy integers too; JSON and the file name want a plain int
        if index in self._rows:
            raise ConfigError(f"batch {index} is already stored; each index can be added once")
        if not isinstance(activations, Mapping) or not activations:
            raise ShapeError(f"batch {index} must be a non-empty dict {{site: tensor}}, got "
                             f"{type(activations).__name__}")
        sites = self._sites if self._sites is not None else _site_list(list(activations))
        missing = [s for s in sites if s not in activations]
        extra = [s for s in activations if s not in sites]
        if missing or extra:
            raise ShapeError(f"batch {index} lacks sites {missing} and has unexpected sites "
                             f"{extra}; expected exactly {sites}")
        specs, rows = {}, None
        for site in sites:
            t = activations[site]
            if not isinstance(t, Tensor) or t.layout != torch.strided or t.is_quantized:
                raise DTypeError(f"site {site!r} of batch {index} must be a dense tensor, got "
                                 f"{type(t).__name__}")
            if t.ndim == 0:
                raise ShapeError(f"site {site!r} of batch {index} is a scalar; expected [n, ...]")
            rows = t.shape[0] if rows is None else rows
            if t.shape[0] != rows:
                raise ShapeError(f"site {site!r} of batch {index} has {t.shape[0]} rows but "
                                 f"{sites[0]!r} has {rows}; all sites need the same row count")
            specs[site] = (tuple(t.shape[1:]), t.dtype)
            if self._specs.get(site, specs[site]) != specs[site]:
                raise ShapeError(f"site {site!r} of batch {index} has trailing shape "
                                 f"{specs[site][0]} and dtype {t.dtype}; earlier batches had "
                                 f"{self._specs[site][0]} and {self._specs[site][1]}")
            if self._data and (d := next(iter(self._data.values()))[site].device) != t.device:
                raise DeviceError(f"site {site!r} of batch {index} is on {t.device}; earlier "
                                  f"batches are on {d}")
        if self._path is None:
            self._data[index] = {s: activations[s].detach() for s in sites}
        else:
            # A private copy: save_file rejects tensors sharing memory (a site and its views).
            tensors = {s: activations[s].detach().to("cpu", copy=True).contiguous()
                       for s in sites}
            header = json.dumps({"format_version": FORMAT_VERSION, "index": index, "rows": rows})
            _atomic_write(self._path / f"shard-{index:06d}.safetensors",
                          lambda tmp: save_file(tensors, tmp, metadata={HEADER_KEY: header}))
            self._write_manifest(sites, specs, {**self._rows, index: rows})
        self._sites, self._specs, self._rows[index] = sites, specs, rows

    def absorb(self, other: ActivationStore) -> None:
        """Take over the batches of another on-disk store on the same file system.

        Its shard files are hard-linked (copied where links are not supported) into this
        folder, then this manifest lists them in one atomic write, so a crash in between leaves
        this store as it was. Batches already here are left out and `other` is unchanged
        (delete its folder afterwards). Merges the per-rank stores of a distributed `collect`.
        """
        if self._path is None or other.path is None:
            raise ConfigError("absorb merges on-disk stores; expected two stores with folders")
        if self._sites is not None and other._sites is not None and (
                set(self._sites) != set(other._sites)):
            raise ConfigError(f"{other.path} stores sites {other.sites} but {self._path} "
                              f"stores {self.sites}; expected the same sites")
        clash = [s for s in set(self._specs) & set(other._specs)
                 if self._specs[s] != other._specs[s]]
        if clash:
            raise ShapeError(f"sites {clash} have other shapes or dtypes in {other.path} than in "
                             f"{self._path}; expected the same")
        new = sorted(set(other._rows) - set(self._rows))
        if not new:
            return
        for i in new:
            name = f"shard-{i:06d}.safetensors"
            _atomic_write(self._path / name, lambda tmp, name=name: _link(other.path / name, tmp))
        sites = self._sites if self._sites is not None else other._sites
        specs = {**other._specs, **self._specs}
        rows = {**self._rows, **{i: other._rows[i] for i in new}}
        self._write_manifest(sites, specs, rows)
        self._sites, self._specs, self._rows = sites, specs, rows

    @property
    def completed(self) -> frozenset[int]:
        return frozenset(self._rows)

    @property
    def sites(self) -> list[str]:
        return list(self._sites or [])

    @property
    def path(self) -> Path | None:
        return self._path

    def __len__(self) -> int:
        return sum(self._rows.values())

    def __contains__(self, site) -> bool:
        return site in (self._sites or [])

    def __getitem__(self, site: str) -> Tensor:
        """All rows of `site`, concatenated in batch-index order."""
        self._check_sites([site])
        if not self._rows:
            raise NotFittedError("the store holds no batches yet; add some first")
        order = sorted(self._rows)
        if self._path is None:
            return torch.cat([self._data[i][site] for i in order])
        # Filled in place rather than concatenated: one copy of the data in memory, not two.
        out, start = torch.empty((len(self), *self._specs[site][0]), dtype=self._specs[site][1]), 0
        for i in order:
            out[start:start + self._rows[i]] = self._read(i, [site])[site]
            start += self._rows[i]
        return out

    def batches(self, batch_size: int | None = None, sites=None) -> Iterator[dict[str, Tensor]]:
        """Iterate in batch-index order, one shard in memory at a time (views when in memory).

        `batch_size` None yields the stored batches; an int re-chunks to exactly that many rows.
        """
        if batch_size is not None and not _is_int(batch_size, 1):
            raise ConfigError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
        batch_size = None if batch_size is None else int(batch_size)
        names = self.sites if sites is None else _site_list(sites)
        self._check_sites(names)
        return self._iterate(batch_size, names, sorted(self._rows))  # checks run eagerly

    def _iterate(self, batch_size, names, order) -> Iterator[dict[str, Tensor]]:
        pending = None
        for i in order:
            batch = ({s: self._data[i][s] for s in names} if self._path is None
                     else self._read(i, names))
            if batch_size is None:
                yield batch
                continue
            if pending is not None:
                batch = {s: torch.cat([pending[s], batch[s]]) for s in names}
            n = batch[names[0]].shape[0]
            full = n - n % batch_size
            for start in range(0, full, batch_size):
                yield {s: t[start:start + batch_size] for s, t in batch.items()}
            pending = {s: t[full:] for s, t in batch.items()} if full < n else None
        if pending is not None:
            yield pending

    def to_dict(self) -> dict[str, Tensor]:
        """Every site's rows as one tensor each."""
        return {s: self[s] for s in self.sites}

    def __repr__(self) -> str:
        where = "in memory" if self._path is None else f"at '{self._path}'"
        shown = self.sites if len(self.sites) <= 6 else [*self.sites[:5], "..."]
        return f"ActivationStore(sites={shown}, rows={len(self)}, {where})"

    def _check_sites(self, names) -> None:
        for name in names:
            if name not in self:
                close = difflib.get_close_matches(str(name), self.sites, n=3)
                hint = f"closest: {close}" if close else f"stored sites: {self.sites[:10]}"
                raise SiteError(f"no site {name!r} in this store; {hint}")

    def _read(self, index: int, names: list[str]) -> dict[str, Tensor]:
        file = self._path / f"shard-{index:06d}.safetensors"
        try:
            with safe_open(str(file), framework="pt") as f:
                stored = json.loads((f.metadata() or {})[HEADER_KEY])["index"]
                # Fresh copies: safetensors buffers can be misaligned, which changes BLAS rounding.
                out = {s: f.get_tensor(s).clone() for s in names}
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
            raise FormatError(f"shard {file} is missing or unreadable: {e}") from e
        for s, t in out.items():
            expected = ((self._rows[index], *self._specs[s][0]), self._specs[s][1])
            if (tuple(t.shape), t.dtype) != expected or stored != index:
                raise FormatError(f"shard {file} holds {s!r} as {tuple(t.shape)} {t.dtype} "
                                  f"(batch {stored}); the manifest expects "
                                  f"{expected[0]} {expected[1]} (batch {index})")
        return out

    def _write_manifest(self, sites, specs, rows) -> None:
        text = json.dumps({
            "format_version": FORMAT_VERSION, "sites": sites,
            "specs": {s: {"shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}
                      for s, (shape, dtype) in specs.items()},
            "shards": [{"index": i, "rows": rows[i]} for i in sorted(rows)]})
        _atomic_write(self._path / MANIFEST, lambda tmp: Path(tmp).write_text(text))

    def _load_manifest(self) -> None:
        file = self._path / MANIFEST
        try:
            m = json.loads(file.read_text())
            if m["format_version"] != FORMAT_VERSION:
                raise FormatError(f"{file} has format version {m['format_version']!r}; this "
                                  f"featurebias reads version {FORMAT_VERSION}")
            sites = None if m["sites"] is None else _site_list(m["sites"])
            specs = {s: (tuple(int(d) for d in v["shape"]), getattr(torch, v["dtype"]))
                     for s, v in m["specs"].items()}
            rows = {int(e["index"]): int(e["rows"]) for e in m["shards"]}
            if set(specs) != (set(sites) if rows else set()) or not all(
                    isinstance(d, torch.dtype) for _, d in specs.values()):
                raise ValueError("the sites, their shapes and dtypes do not agree")
        except FormatError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise FormatError(f"{file} is corrupted or not a store manifest: {e}") from e
        lost = [i for i in rows if not (self._path / f"shard-{i:06d}.safetensors").is_file()]
        if lost:
            raise FormatError(f"{file} lists batches {sorted(lost)} whose shard files are missing")
        self._sites, self._specs, self._rows = sites, specs, rows
