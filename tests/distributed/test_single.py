"""One process: every distributed option is a no-op, and the pieces behave on their own."""

from __future__ import annotations

import pytest
import torch

from featurebias import _sharding, distributed
from featurebias.errors import ConfigError, FormatError, ShapeError
from featurebias.features import variance_explained
from featurebias.hooks import collect, fit_erasers
from featurebias.similarity import MinibatchCKA
from featurebias.store import ActivationStore
from featurebias.training._ddp import Parallel

from . import _data, _workers


def test_helpers_without_a_process_group():
    t = torch.arange(4.0)
    assert not distributed.is_distributed() and not distributed.active()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    copy = distributed.all_reduce(t)
    assert torch.equal(copy, t) and copy is not t
    assert distributed.all_reduce_(t) is t
    assert distributed.all_gather(t).shape == (1, 4)
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object("x") == "x"
    assert all(distributed.owns(i) for i in range(5))
    distributed.check_agree([1, 2], "anything")
    distributed.barrier()
    with pytest.raises(ConfigError, match="op must be one of"):
        distributed.all_reduce(t, op="mean")


def test_together_reraises_the_bodys_own_error():
    with pytest.raises(KeyError, match="boom"), distributed.together("step"):
        raise KeyError("boom")


def test_init_from_env_without_torchrun_variables(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.init_from_env() is False and not distributed.is_distributed()


@pytest.mark.parametrize("method", list(_workers.FITTERS))
def test_fitter_all_reduce_is_a_no_op_on_one_process(method):
    x, z = _data.problem(200)
    fitter = _workers.FITTERS[method]().update(x, z)
    before = fitter.eraser
    assert before.broadcast() is before
    assert fitter.all_reduce() is fitter
    for name, t in fitter.eraser._tensors().items():
        assert torch.equal(t, before._tensors()[name])


def test_moments_all_reduce_on_one_process_is_a_copy():
    stats = _workers.FITTERS["oracle"]().update(*_data.problem(50)).stats
    merged = stats.all_reduce()
    assert merged is not stats and merged.m_zz is not stats.m_zz
    for a, b in zip(merged._fields().values(), stats._fields().values(), strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_minibatch_cka_all_reduce_is_a_no_op_on_one_process():
    acc = MinibatchCKA()
    for batch in _data.cka_batches()[:3]:
        acc.update(batch)
    before = acc.matrix()
    assert acc.all_reduce() is acc and torch.equal(acc.matrix(), before)
    assert MinibatchCKA().all_reduce().n_batches_ == 0


def test_distributed_options_on_one_process_match_the_plain_calls(tmp_path):
    acts, feats = _data.representation(200)
    plain = variance_explained(acts, feats, seed=1, progress=False)
    flagged = variance_explained(acts, feats, seed=1, distributed=True, progress=False)
    assert plain.equals(flagged)
    model = _data.small_mlp()
    batches, labels = _data.model_batches()
    a = fit_erasers(model, batches, labels, _data.SITES, progress=False)
    b = fit_erasers(model, batches, labels, _data.SITES, distributed=True, progress=False)
    for site in _data.SITES:
        assert all(torch.equal(t, b[site]._tensors()[k]) for k, t in a[site]._tensors().items())
    store = collect(model, batches, _data.SITES, to=tmp_path / "s", distributed=True,
                    progress=False)
    assert store.completed == frozenset(range(len(batches)))
    assert not list((tmp_path / "s").glob(".rank-*"))


class _Recording(list):
    """A Sequence that records which items were built."""

    def __init__(self, n):
        super().__init__(range(n))
        self.read = []

    def __getitem__(self, i):
        self.read.append(i)
        return super().__getitem__(i)


def test_owned_batches_are_round_robin_and_a_sequence_builds_only_its_own(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda group=None: 3)
    monkeypatch.setattr(distributed, "rank", lambda group=None: 1)
    seq = _Recording(8)
    assert [i for i, _ in _sharding.owned(seq)] == [1, 4, 7]
    assert seq.read == [1, 4, 7]
    assert list(_sharding.owned(iter("abcdefgh"))) == [(1, "b"), (4, "e"), (7, "h")]


def _store(path, indices, width=3, dtype=torch.float32):
    store = ActivationStore(path, sites=["a"])
    for i in indices:
        store.add(i, {"a": torch.full((2, width), float(i), dtype=dtype)})
    return store


def test_absorb_links_missing_shards_once_and_leaves_the_other_store(tmp_path):
    main = _store(tmp_path / "main", [0, 2])
    part = _store(tmp_path / "main" / ".rank-00001", [1, 2, 3])
    main.absorb(part)
    main.absorb(part)  # nothing new the second time
    again = ActivationStore.open(tmp_path / "main")
    assert again.completed == frozenset({0, 1, 2, 3})
    assert again["a"][:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ActivationStore.open(part.path).completed == frozenset({1, 2, 3})


@pytest.mark.parametrize(("other", "error", "match"), [
    (lambda p: _store(p, [1], width=4), ShapeError, "other shapes or dtypes"),
    (lambda p: ActivationStore(p, sites=["b"]), ConfigError, "expected the same sites"),
    (lambda p: ActivationStore(None, sites=["a"]), ConfigError, "on-disk stores"),
])
def test_absorb_refuses_stores_that_do_not_fit(tmp_path, other, error, match):
    main = _store(tmp_path / "main", [0])
    with pytest.raises(error, match=match):
        main.absorb(other(tmp_path / "other"))
    assert ActivationStore.open(tmp_path / "main").completed == frozenset({0})


def test_publish_skips_a_rank_folder_without_a_manifest(tmp_path):
    _store(tmp_path, [0])
    (tmp_path / ".rank-00003").mkdir()  # a crash before its first write
    store = _sharding.publish(tmp_path, ["a"])
    assert store.completed == frozenset({0}) and not list(tmp_path.glob(".rank-*"))
    with pytest.raises(FormatError):
        ActivationStore.open(tmp_path / "missing")


def test_training_parallel_passes_through_on_one_process():
    model = _data.tiny_mlp()
    parallel = Parallel(model, 7)
    parallel.wrap()
    x, y = torch.randn(7, 6), torch.arange(7)
    assert parallel.module is model and parallel.leader
    assert parallel.shard(x, y) == (x, y)
    total, means = torch.tensor(3.0), torch.tensor([1.0, 2.0])
    assert parallel.global_mean(total, means, torch.tensor([4, 2])) == (total, means)
    assert parallel.total(means) == (means,) and parallel.same([1]) == [1]
