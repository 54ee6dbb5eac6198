"""Statistics merged across ranks equal one process's: fitters, Moments, MinibatchCKA, R².

Three ranks hold shards of 1000, 10 and 517 rows (and, for two fitters, 1000, 0 and 527).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from featurebias.features import variance_explained
from featurebias.similarity import MinibatchCKA

from . import _data, _workers

TOL = 1e-10


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    scale = max(float(b.abs().max()), 1.0)
    return float((a - b).abs().max()) <= tol * scale


def _apply(eraser, x, z):
    return eraser(x, z) if eraser.requires_labels else eraser(x)


@pytest.fixture(scope="module")
def full():
    """One process fitting every method on all the rows, and a probe batch to apply to."""
    x, z = _data.problem()
    probe_x, probe_z = _data.problem(64, seed=1)
    return {name: make().update(x, z) for name, make in _workers.FITTERS.items()}, (
        probe_x, probe_z)


CASES = [("fitters", m) for m in _workers.FITTERS] + [
    ("fitters_empty_rank", m) for m in ("leace", "qleace")]  # shards 1000 / 0 / 527


@pytest.mark.parametrize(("case", "method"), CASES)
def test_fitted_eraser_equals_one_process_and_is_identical_on_every_rank(ranks, full, case,
                                                                         method):
    fitters, (px, pz) = full
    reference = _apply(fitters[method].eraser, px, pz)
    for r in ranks:
        assert _close(_apply(r[case][method]["eraser"], px, pz), reference)
        # Merged statistics are bit-identical on every rank ...
        for key, fields in r[case][method]["stats"].items():
            for name, t in fields.items():
                first = ranks[0][case][method]["stats"][key][name]
                assert (t is None and first is None) or torch.equal(t, first), (key, name)
        # ... and `Eraser.broadcast` makes the erasers so (BLAS may round differently).
        shared = r[case][method]["shared"]
        assert _close(_apply(shared, px, pz), reference)
        for name, t in shared._tensors().items():
            assert torch.equal(t, ranks[0][case][method]["shared"]._tensors()[name]), name
    assert all(r[case][method]["same_object"] for r in ranks)  # in place, returns self


@pytest.mark.parametrize("method", list(_workers.FITTERS))
def test_merged_statistics_equal_a_plain_torch_computation(ranks, method):
    x, z = _data.problem()
    merged = ranks[1]["fitters"][method]["stats"]
    for fields in merged.values():
        groups = fields["n"].shape[0]
        ids = z if groups > 1 else torch.zeros_like(z)
        for c in range(groups):
            rows = x[ids == c]
            assert int(fields["n"][c]) == rows.shape[0]
            mean = rows.mean(0)
            assert _close(fields["mean_x"][c], mean)
            if fields["m_xx"] is not None:
                centred = rows - mean
                assert _close(fields["m_xx"][c], centred.T @ centred)
            if fields["m_xz"] is not None:
                onehot = torch.nn.functional.one_hot(z, _data.K).to(x.dtype)
                assert _close(fields["mean_z"][c], onehot.mean(0))
                assert _close(fields["m_xz"][c], (x - mean).T @ (onehot - onehot.mean(0)))


def test_minibatch_cka_over_ranks_equals_one_process(ranks):
    reference = MinibatchCKA()
    for batch in _data.cka_batches():
        reference.update(batch)
    for r in ranks:  # rank 1 saw no batch and still ends with the merged state
        got = r["cka"]
        assert got["names"] == reference.names
        assert got["n_batches"] == reference.n_batches_ == 9
        assert got["n_samples"] == reference.n_samples_
        assert _close(got["matrix"], reference.matrix())
        assert torch.equal(got["matrix"], ranks[0]["cka"]["matrix"])


def _global_split():
    starts = [sum(_data.SHARDS[:r]) for r in range(3)]
    parts = [_data.split_of(n) for n in _data.SHARDS]
    return (torch.cat([f + s for (f, _), s in zip(parts, starts, strict=True)]),
            torch.cat([t + s for (_, t), s in zip(parts, starts, strict=True)]))


@pytest.fixture(scope="module")
def variance_reference():
    acts, feats = _data.representation()
    split = _global_split()
    kw = dict(progress=False)
    doubled = {k: 2 * v for k, v in acts.items()}
    return {"in_sample": variance_explained(acts, feats, in_sample=True, **kw),
            "split": variance_explained(acts, feats, split=split, **kw),
            "per_item": variance_explained(acts, feats, split=split, per_item=True, **kw),
            "steps": variance_explained({0: acts, 5: doubled}, feats, split=split, **kw)}


@pytest.mark.parametrize("variant", ["in_sample", "split", "per_item", "steps"])
def test_variance_explained_over_ranks_equals_one_process(ranks, variance_reference, variant):
    reference = variance_reference[variant]
    keys = [c for c in reference.columns if c != "value"]
    assert reference["value"].notna().all()
    for r in ranks:
        got = r["variance"][variant]
        assert list(got.columns) == list(reference.columns)
        pd.testing.assert_frame_equal(got[keys], reference[keys])
        assert (got["value"] - reference["value"]).abs().max() <= TOL
        pd.testing.assert_frame_equal(got, ranks[0]["variance"][variant])  # same everywhere
