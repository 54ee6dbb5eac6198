"""Distributed `fit_erasers` and `collect` against one process on the same batches."""

from __future__ import annotations

import pytest
import torch

from featurebias.hooks import collect, fit_erasers

from . import _data

TOL = 1e-10


@pytest.fixture(scope="module")
def reference():
    model = _data.small_mlp()
    batches, labels = _data.model_batches()
    erasers = {m: fit_erasers(model, batches, labels, _data.SITES, method=m, progress=False)
               for m in ("leace", "qleace", "alf-qleace")}
    erasers["sequential"] = fit_erasers(model, batches, labels, _data.SITES, sequential=True,
                                        progress=False)
    erasers["generator"] = erasers["leace"]
    few = sum(_data.BATCH_SIZES[:2])
    erasers["few_batches"] = fit_erasers(model, batches[:2], labels[:few], _data.SITES,
                                         progress=False)
    acts = collect(model, batches, _data.SITES, progress=False).to_dict()
    return erasers, acts, labels


@pytest.mark.parametrize("variant", ["leace", "qleace", "alf-qleace", "sequential",
                                     "generator", "few_batches"])
def test_fit_erasers_on_three_ranks_equals_one_process(ranks, reference, variant):
    erasers, acts, labels = reference
    for site in _data.SITES:
        want = erasers[variant][site]
        x = acts[site]
        expected = want(x, labels) if want.requires_labels else want(x)
        scale = float(expected.abs().max())
        for r in ranks:
            got = r["fit_erasers"][variant][site]
            out = got(x, labels) if got.requires_labels else got(x)
            assert float((out - expected).abs().max()) <= TOL * scale
            first = ranks[0]["fit_erasers"][variant][site]._tensors()
            for name, t in got._tensors().items():
                assert torch.equal(t, first[name]), (site, name)  # the same eraser everywhere


def test_collect_to_disk_sees_every_batch_once_in_order(ranks, reference):
    _, acts, _ = reference
    n = sum(_data.BATCH_SIZES)
    for r in ranks:
        got = r["collect"]
        assert got["completed"] == got["again_completed"] == list(range(len(_data.BATCH_SIZES)))
        for site in _data.SITES:
            assert got["full"][site].shape[0] == n
            assert torch.equal(got["full"][site], acts[site])  # every row once, in order
            assert torch.equal(got["reopened"][site], acts[site])
        # The ranks' private folders are merged away; only the shared store remains.
        assert not [e for e in got["entries"] if e.startswith(".rank-")]
        assert got["first_completed"] == [0, 1, 2, 3]


def test_collect_runs_each_batch_once_and_resumes(ranks):
    calls = [r["collect"]["calls"] for r in ranks]
    # Round robin over 3 ranks: batches 0..3 are ranks 0, 1, 2, 0.
    assert [c["first"] for c in calls] == [2, 1, 1]
    # The second run adds batches 4, 5, 6 only; the third finds everything stored.
    assert [c["resumed"] for c in calls] == [1, 1, 1]
    assert [c["again"] for c in calls] == [0, 0, 0]


def test_collect_in_memory_keeps_each_ranks_own_batches(ranks, reference):
    _, acts, _ = reference
    starts = [sum(_data.BATCH_SIZES[:i]) for i in range(len(_data.BATCH_SIZES))]
    for rank, r in enumerate(ranks):
        mine = list(range(rank, len(_data.BATCH_SIZES), 3))
        assert r["collect"]["memory"] == mine
        rows = torch.cat([torch.arange(starts[i], starts[i] + _data.BATCH_SIZES[i])
                          for i in mine])
        for site in _data.SITES:
            assert torch.equal(r["collect"]["memory_rows"][site], acts[site][rows])
