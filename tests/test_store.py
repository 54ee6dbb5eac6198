"""ActivationStore: round trips, re-chunking, crash-safe resume and rejected input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from featurebias.errors import (
    ConfigError,
    DTypeError,
    FormatError,
    NotFittedError,
    ShapeError,
    SiteError,
)
from featurebias.store import ActivationStore

SITES = ["layers.0", "blocks.1.hook_resid_post"]
ROWS = [3, 5, 4, 1, 6, 2]


def make_batches(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Batches of varying size: float32 `[n, 4]` and bfloat16 `[n, 3, 2]` per batch."""
    gen = torch.Generator().manual_seed(seed)
    return [{SITES[0]: torch.randn(n, 4, generator=gen),
             SITES[1]: torch.randn(n, 3, 2, generator=gen).to(torch.bfloat16)} for n in ROWS]


def expected(batches, order=None) -> dict[str, torch.Tensor]:
    order = range(len(batches)) if order is None else order
    return {s: torch.cat([batches[i][s] for i in order]) for s in SITES}


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for site in want:
        assert got[site].dtype == want[site].dtype
        assert torch.equal(got[site], want[site]), site


def make_store(kind: str, tmp_path, **kw) -> ActivationStore:
    return ActivationStore(None if kind == "memory" else tmp_path / "acts", **kw)


def snapshot(store: ActivationStore):
    """Everything observable about a store, files included, to check a rejected call."""
    files = {}
    if store.path is not None:
        files = {p.name: p.read_bytes() for p in sorted(store.path.iterdir())}
    data = store.to_dict() if store.completed else {}
    return store.completed, store.sites, len(store), data, files


def collect(path, batches, fail_after: int | None = None) -> ActivationStore:
    """What `collect` does with a store; raises after `fail_after` adds to simulate a crash."""
    store = ActivationStore(path, sites=SITES)
    added = 0
    for index, batch in enumerate(batches):
        if index in store.completed:
            continue
        if added == fail_after:
            raise KeyboardInterrupt("simulated crash")
        store.add(index, batch)
        added += 1
    return store


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_round_trip_out_of_order(kind, tmp_path):
    batches, order = make_batches(), [2, 0, 5, 1, 4, 3]
    store = make_store(kind, tmp_path, sites=SITES)
    for i in order:
        store.add(i, batches[i])
    assert store.completed == frozenset(range(len(ROWS)))
    assert len(store) == sum(ROWS) and store.sites == SITES and SITES[1] in store
    assert_same(store.to_dict(), expected(batches))  # batch-index order, not insertion order
    assert ("in memory" in repr(store)) == (kind == "memory") and "rows=21" in repr(store)


def test_disk_reopen_is_identical_and_creates_folder(tmp_path):
    batches, path = make_batches(), tmp_path / "new" / "acts"
    store = ActivationStore(path)  # the first add fixes the sites
    for i, batch in enumerate(batches):
        store.add(i, batch)
    assert sorted(p.name for p in path.iterdir()) == (
        ["manifest.json"] + [f"shard-{i:06d}.safetensors" for i in range(len(ROWS))])
    again = ActivationStore.open(path)
    assert again.completed == store.completed and again.sites == SITES and again.path == path
    assert_same(again.to_dict(), expected(batches))
    assert again[SITES[1]].dtype == torch.bfloat16 and again[SITES[0]].dtype == torch.float32


def test_memory_keeps_device_and_detaches():
    x = torch.randn(3, 2, requires_grad=True)
    store = ActivationStore()
    store.add(0, {"a": x * 2})
    assert not store["a"].requires_grad and store["a"].device == x.device
    assert store.path is None


@pytest.mark.parametrize("kind", ["memory", "disk"])
@pytest.mark.parametrize("batch_size", [None, 1, 4, 7, 100])
def test_batches_rechunk_exactly(kind, batch_size, tmp_path):
    batches = make_batches()
    store = make_store(kind, tmp_path)
    for i in [3, 1, 0, 5, 2, 4]:
        store.add(i, batches[i])
    chunks = list(store.batches(batch_size))
    sizes = [len(c[SITES[0]]) for c in chunks]
    if batch_size is None:
        assert sizes == ROWS
    else:
        assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    assert_same({s: torch.cat([c[s] for c in chunks]) for s in SITES}, expected(batches))
    only = list(store.batches(batch_size, sites=[SITES[1]]))
    assert all(list(c) == [SITES[1]] for c in only)
    assert torch.equal(torch.cat([c[SITES[1]] for c in only]), expected(batches)[SITES[1]])


def test_batches_validates_before_iterating(tmp_path):
    store = ActivationStore()
    store.add(0, make_batches()[0])
    with pytest.raises(ConfigError, match="batch_size"):
        store.batches(0)
    with pytest.raises(SiteError, match="layers.0"):
        store.batches(sites=["layers.O"])


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    batches = make_batches()
    with pytest.raises(KeyboardInterrupt):
        collect(tmp_path / "resumed", batches, fail_after=3)
    assert ActivationStore(tmp_path / "resumed").completed == {0, 1, 2}
    resumed = collect(tmp_path / "resumed", batches)
    clean = collect(tmp_path / "clean", batches)
    assert resumed.completed == clean.completed
    assert_same(resumed.to_dict(), clean.to_dict())
    assert_same(ActivationStore.open(tmp_path / "resumed").to_dict(), expected(batches))


def test_crash_between_shard_and_manifest_is_recovered(tmp_path, monkeypatch):
    batches, path = make_batches(), tmp_path / "acts"
    store = collect(path, batches[:3])
    before = snapshot(store)
    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError("simulated crash before the manifest was replaced")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="simulated"):
        store.add(3, batches[3])
    monkeypatch.undo()
    # The shard landed but is not listed: the store and the manifest still say {0, 1, 2}.
    assert (path / "shard-000003.safetensors").is_file()
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]
    assert store.completed == {0, 1, 2} and len(store) == len(before[3][SITES[0]])
    reopened = ActivationStore(path, sites=SITES)
    assert reopened.completed == {0, 1, 2}
    other = make_batches(seed=1)[3]  # different data, to see the unlisted shard overwritten
    reopened.add(3, other)
    want = expected(batches[:3] + [other])
    assert_same(ActivationStore.open(path).to_dict(), want)
    store.add(3, other)  # the rejected add left the first store usable too
    assert_same(store.to_dict(), want)


def test_stray_temp_and_unlisted_shard_are_ignored(tmp_path):
    batches, path = make_batches(), tmp_path / "acts"
    collect(path, batches[:2])
    (path / ".shard-000002.safetensors.1234abcd.tmp").write_bytes(b"half a shard")
    (path / ".manifest.json.deadbeef.tmp").write_text('{"half": ')
    (path / "shard-000002.safetensors").write_bytes(b"not a safetensors file")
    store = ActivationStore(path)
    assert store.completed == {0, 1}
    assert_same(store.to_dict(), expected(batches[:2]))
    resumed = collect(path, batches)
    assert resumed.completed == frozenset(range(len(ROWS)))
    assert_same(ActivationStore.open(path).to_dict(), expected(batches))


@pytest.mark.parametrize("text", [
    "{not json", "[]", '{"format_version": 99, "sites": null, "specs": {}, "shards": []}',
    '{"format_version": 1, "sites": ["a"], "specs": {}}',
    '{"format_version": 1, "sites": ["a"], "specs": {"a": {"shape": [2], "dtype": "nope"}},'
    ' "shards": []}',
    '{"format_version": 1, "sites": ["a"], "specs": {}, "shards": [{"index": 0, "rows": 2}]}',
])
def test_corrupted_manifest_raises_format_error(tmp_path, text):
    path = tmp_path / "acts"
    collect(path, make_batches()[:1])
    (path / "manifest.json").write_text(text)
    with pytest.raises(FormatError, match="manifest"):
        ActivationStore.open(path)
    with pytest.raises(FormatError):
        ActivationStore(path, sites=SITES)


def test_missing_store_or_shard_raises_format_error(tmp_path):
    with pytest.raises(FormatError, match="manifest.json is missing"):
        ActivationStore.open(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    path = tmp_path / "acts"
    collect(path, make_batches()[:2])
    (path / "shard-000001.safetensors").unlink()
    with pytest.raises(FormatError, match=r"batches \[1\]"):
        ActivationStore.open(path)
    (path / "manifest.json").unlink()
    with pytest.raises(FormatError, match="shard files but no manifest"):
        ActivationStore(path)


def test_corrupted_shard_raises_format_error(tmp_path):
    path = tmp_path / "acts"
    store = collect(path, make_batches()[:2])
    data = (path / "shard-000001.safetensors").read_bytes()
    (path / "shard-000001.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="shard-000001"):
        store[SITES[0]]
    # A shard from another batch (right format, wrong content) is caught too.
    (path / "shard-000001.safetensors").write_bytes((path / "shard-000000.safetensors")
                                                    .read_bytes())
    with pytest.raises(FormatError, match="manifest expects"):
        list(store.batches())


def test_empty_store(tmp_path):
    store = ActivationStore(tmp_path / "acts", sites=SITES)
    assert len(store) == 0 and store.completed == frozenset() and list(store.batches()) == []
    with pytest.raises(NotFittedError):
        store[SITES[0]]
    assert ActivationStore.open(tmp_path / "acts").sites == SITES
    assert ActivationStore().to_dict() == {} and ActivationStore().sites == []


def test_reopen_with_other_sites_is_rejected(tmp_path):
    path = tmp_path / "acts"
    collect(path, make_batches()[:2])
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(ConfigError, match="stores sites"):
        ActivationStore(path, sites=["layers.0", "layers.1"])
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files
    assert ActivationStore(path, sites=SITES[::-1]).completed == {0, 1}
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        ActivationStore(tmp_path / "file")


def bad_batches():
    good = make_batches()[4]
    n = len(good[SITES[0]])
    yield "missing site", 4, {SITES[0]: good[SITES[0]]}, ShapeError
    yield "extra site", 4, {**good, "layers.9": torch.zeros(n, 4)}, ShapeError
    yield "row mismatch", 4, {**good, SITES[0]: good[SITES[0]][:-1]}, ShapeError
    yield "trailing shape", 4, {**good, SITES[0]: torch.zeros(n, 5)}, ShapeError
    yield "dtype", 4, {**good, SITES[1]: good[SITES[1]].float()}, ShapeError
    yield "scalar", 4, {**good, SITES[0]: torch.tensor(1.0)}, ShapeError
    yield "not a tensor", 4, {**good, SITES[0]: [[1.0] * 4] * n}, DTypeError
    yield "not a dict", 4, [good[SITES[0]]], ShapeError
    yield "duplicate index", 1, good, ConfigError
    yield "negative index", -1, good, ConfigError
    yield "float index", 4.0, good, ConfigError


@pytest.mark.parametrize("kind", ["memory", "disk"])
@pytest.mark.parametrize("case", list(bad_batches()), ids=lambda c: c[0])
def test_rejected_add_leaves_store_unchanged(kind, case, tmp_path):
    _, index, batch, error = case
    store = make_store(kind, tmp_path)
    for i, b in enumerate(make_batches()[:3]):
        store.add(i, b)
    before = snapshot(store)
    with pytest.raises(error):
        store.add(index, batch)
    after = snapshot(store)
    assert after[:3] == before[:3] and after[4] == before[4]
    assert_same(after[3], before[3])


def test_first_add_is_validated_too():
    store = ActivationStore()
    with pytest.raises(ShapeError, match="rows"):
        store.add(0, {"a": torch.zeros(3, 2), "b": torch.zeros(2, 2)})
    with pytest.raises(ConfigError, match="site names"):
        store.add(0, {1: torch.zeros(3, 2)})
    assert store.sites == [] and store.completed == frozenset()
    store.add(np.int64(2), {"a": torch.zeros(3, 2)})  # numpy integers are indices too
    assert store.completed == {2} and type(next(iter(store.completed))) is int


def test_unknown_site_suggests_close_names():
    store = ActivationStore()
    store.add(0, make_batches()[0])
    with pytest.raises(SiteError, match=r"closest: \['blocks.1.hook_resid_post'\]") as info:
        store["blocks.1.hook_resid_pots"]
    assert isinstance(info.value, KeyError)
    with pytest.raises(SiteError, match="stored sites"):
        store["zzz"]


def test_disk_accepts_views_and_non_contiguous_tensors(tmp_path):
    x = torch.randn(5, 6)
    store = ActivationStore(tmp_path / "acts")
    store.add(0, {"x": x, "x:slice": x[:, :3], "x:strided": x[:, ::2]})
    again = ActivationStore.open(tmp_path / "acts")
    assert torch.equal(again["x"], x) and torch.equal(again["x:slice"], x[:, :3])
    assert torch.equal(again["x:strided"], x[:, ::2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64])
def test_dtypes_round_trip_bit_exactly(dtype, tmp_path):
    x = (torch.randn(7, 3, generator=torch.Generator().manual_seed(3)) * 1e3).to(dtype)
    store = ActivationStore(tmp_path / "acts")
    store.add(0, {"a": x[:4]})
    store.add(1, {"a": x[4:]})
    got = ActivationStore.open(tmp_path / "acts")["a"]
    assert got.dtype == dtype and torch.equal(got, x)
    manifest = json.loads((tmp_path / "acts" / "manifest.json").read_text())
    assert manifest["shards"] == [{"index": 0, "rows": 4}, {"index": 1, "rows": 3}]
    assert manifest["specs"]["a"] == {"shape": [3], "dtype": str(dtype).removeprefix("torch.")}
