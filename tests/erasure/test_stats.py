"""Streaming moments (SCIENCE §1): exact merging, float64 statistics, atomic updates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from featurebias.erasure.leace import LeaceFitter
from featurebias.erasure.oracle import OracleFitter
from featurebias.erasure.stats import Moments
from featurebias.errors import FeatureBiasError

D, M = 6, 3
FIELDS = ("n", "mean_x", "mean_z", "m_xx", "m_xz", "m_zz")


def reference_moments(x: np.ndarray, z: np.ndarray, y: np.ndarray | None, k: int) -> dict:
    """Per-group count, means and unnormalised co-moments by direct numpy computation."""
    rows = [np.arange(len(x))] if k == 1 else [np.flatnonzero(y == c) for c in range(k)]
    out = {f: [] for f in FIELDS}
    for idx in rows:
        xc, zc = x[idx], z[idx]
        joint = np.cov(np.hstack([xc, zc]).T, bias=True) * len(idx)  # (d+m)² co-moments
        d = x.shape[1]
        out["n"].append(len(idx))
        out["mean_x"].append(xc.mean(0))
        out["mean_z"].append(zc.mean(0))
        out["m_xx"].append(joint[:d, :d])
        out["m_xz"].append(joint[:d, d:])
        out["m_zz"].append(joint[d:, d:])
    return {f: np.stack(v) for f, v in out.items()}


def assert_close(actual: torch.Tensor, expected, rtol: float) -> None:
    """Entrywise agreement at `rtol` relative to the largest entry of `expected`."""
    expected = torch.as_tensor(np.asarray(expected), dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol,
                               atol=rtol * float(expected.abs().max()))


def assert_moments_equal(actual: Moments, expected: dict, rtol: float) -> None:
    assert actual.n.dtype == torch.int64
    assert actual.n.tolist() == list(expected["n"])
    for f in FIELDS[1:]:
        assert getattr(actual, f).dtype == torch.float64, f
        assert_close(getattr(actual, f), expected[f], rtol)


def new_moments(k: int) -> Moments:
    return Moments(D, M, groups=k, xx=True, zz=True)


def make_data(seed: int, n: int, k: int):
    """Correlated x and z with non-zero means; imbalanced group ids (priors ∝ 1, 2, 4, ...)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)) @ rng.standard_normal((D, D)) + 3 * rng.standard_normal(D)
    z = x[:, :M] @ rng.standard_normal((M, M)) + rng.standard_normal((n, M)) + 1.0
    priors = 2.0 ** np.arange(k)
    y = rng.choice(k, size=n, p=priors / priors.sum())
    return x, z, y


def update(moments: Moments, x, z, y, k: int) -> Moments:
    groups = None if k == 1 else torch.from_numpy(y)
    return moments.update(torch.from_numpy(x), torch.from_numpy(z), groups)


@pytest.mark.parametrize("k", [1, 4])
def test_full_batch_matches_direct_computation(k):
    """One update gives the numpy means and co-moments of each group."""
    x, z, y = make_data(0, 500, k)
    moments = update(new_moments(k), x, z, y, k)
    assert_moments_equal(moments, reference_moments(x, z, y, k), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_updates_equal_full_batch(k, seed):
    """Many updates with random chunk sizes (1, tiny, classes missing) equal one batch."""
    n = 1200
    x, z, y = make_data(seed, n, k)
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), 25, replace=False))
    cuts = np.unique(np.concatenate([[1, 2, 5], cuts]))  # chunks of 1, 1, 3, ... rows
    streamed = new_moments(k)
    for xs, zs, ys in zip(np.split(x, cuts), np.split(z, cuts), np.split(y, cuts), strict=True):
        update(streamed, xs, zs, ys, k)
    whole = update(new_moments(k), x, z, y, k)
    assert_moments_equal(streamed, {f: getattr(whole, f).numpy() for f in FIELDS}, rtol=1e-10)
    assert_moments_equal(streamed, reference_moments(x, z, y, k), rtol=1e-10)


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_shards_merged_in_random_order_equal_whole_data(k, order_seed):
    """Shards of sizes (1, 7, 1000, rest) merged in a random order give whole-data moments."""
    x, z, y = make_data(7, 3000, k)
    bounds = np.cumsum([1, 7, 1000])
    shards = [update(new_moments(k), xs, zs, ys, k) for xs, zs, ys in
              zip(np.split(x, bounds), np.split(z, bounds), np.split(y, bounds), strict=True)]
    order = np.random.default_rng(order_seed).permutation(len(shards))
    merged = new_moments(k)
    for i in order:
        merged = merged.merge(shards[i])
    assert_moments_equal(merged, reference_moments(x, z, y, k), rtol=1e-10)


@pytest.mark.parametrize("k", [1, 4])
def test_tree_merge_equals_sequential_merge(k):
    """Merging is associative: ((a+b)+(c+d)) equals (((a+b)+c)+d) within 1e-10."""
    x, z, y = make_data(3, 2000, k)
    bounds = [3, 400, 1500]
    a, b, c, d = (update(new_moments(k), xs, zs, ys, k) for xs, zs, ys in
                  zip(np.split(x, bounds), np.split(z, bounds), np.split(y, bounds), strict=True))
    tree = a.merge(b).merge(c.merge(d))
    chain = a.merge(b).merge(c).merge(d)
    assert_moments_equal(tree, {f: getattr(chain, f).numpy() for f in FIELDS}, rtol=1e-10)


def test_merge_leaves_operands_unchanged():
    """`merge` returns a new object; neither operand is modified."""
    x, z, y = make_data(4, 300, 1)
    a = update(new_moments(1), x[:100], z[:100], None, 1)
    b = update(new_moments(1), x[100:], z[100:], None, 1)
    before = [a.copy(), b.copy()]
    a.merge(b)
    for obj, snapshot in zip([a, b], before, strict=True):
        for f in FIELDS:
            assert torch.equal(getattr(obj, f), getattr(snapshot, f)), f


def test_covariances_use_bessel_correction():
    """`covariance` divides by n − 1 and matches np.cov for xx, xz and zz."""
    x, z, _ = make_data(5, 400, 1)
    moments = update(new_moments(1), x, z, None, 1)
    joint = np.cov(np.hstack([x, z]).T)
    assert_close(moments.covariance("xx")[0], joint[:D, :D], 1e-12)
    assert_close(moments.covariance("xz")[0], joint[:D, D:], 1e-12)
    assert_close(moments.covariance("zz")[0], joint[D:, D:], 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("k", [1, 4])
def test_low_precision_inputs_give_float64_statistics(dtype, k):
    """A float32/bf16 batch is reduced in float64: the result equals the float64 computation
    on the (exactly) upcast inputs, far below the input's own precision."""
    x, z, y = make_data(6, 600, k)
    xl, zl = torch.from_numpy(x).to(dtype), torch.from_numpy(z).to(dtype)
    groups = None if k == 1 else torch.from_numpy(y)
    moments = new_moments(k).update(xl, zl, groups)
    expected = reference_moments(xl.double().numpy(), zl.double().numpy(), y, k)
    assert_moments_equal(moments, expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fitter_statistics_are_float64_for_low_precision_input(dtype):
    """LeaceFitter keeps float64 statistics when fed float32/bf16 activations."""
    x, _, y = make_data(8, 400, 3)
    xl = torch.from_numpy(x).to(dtype)
    fitter = LeaceFitter(D, 3).update(xl, torch.from_numpy(y))
    assert fitter.stats.mean_x.dtype == torch.float64
    assert fitter.stats.m_xx.dtype == torch.float64
    z = np.eye(3)[y]
    expected = reference_moments(xl.double().numpy(), z, None, 1)
    assert_close(fitter.stats.m_xx, expected["m_xx"], 1e-10)
    assert_close(fitter.stats.m_xz, expected["m_xz"], 1e-10)


def _bad_updates(x: torch.Tensor, y: torch.Tensor, k: int) -> dict:
    nan_x = x.clone()
    nan_x[3, 1] = float("nan")
    inf_x = x.clone()
    inf_x[0, 0] = float("inf")
    nan_z = torch.nn.functional.one_hot(y, k).double()
    nan_z[2, 0] = float("nan")
    return {
        "nan_in_x": (nan_x, y),
        "inf_in_x": (inf_x, y),
        "wrong_width": (torch.cat([x, x[:, :1]], 1), y),
        "z_length_mismatch": (x, y[:-1]),
        "label_too_large": (x, torch.where(torch.arange(len(y)) == 5, k, y)),
        "label_negative": (x, torch.where(torch.arange(len(y)) == 5, -1, y)),
        "nan_in_float_z": (x, nan_z),
        "empty_batch": (x[:0], y[:0]),
    }


@pytest.mark.parametrize("fitter_cls", [LeaceFitter, OracleFitter])
@pytest.mark.parametrize("case", list(_bad_updates(torch.zeros(8, 2), torch.zeros(8).long(), 2)))
def test_rejected_update_leaves_state_unchanged(fitter_cls, case):
    """An update that raises leaves every statistic bit-identical, and the eraser unchanged."""
    k = 3
    x, _, y = make_data(9, 200, k)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    fitter = fitter_cls(D, k).update(x[:150], y[:150])
    eraser_before = fitter.eraser
    snapshot = {f: None if (v := getattr(fitter.stats, f)) is None else v.clone()
                for f in FIELDS}
    bad_x, bad_z = _bad_updates(x[150:], y[150:], k)[case]
    with pytest.raises(FeatureBiasError):
        fitter.update(bad_x, bad_z)
    for f, v in snapshot.items():
        now = getattr(fitter.stats, f)
        assert (now is None) if v is None else torch.equal(now, v), f
    for field in dataclasses.fields(eraser_before):
        old, new = getattr(eraser_before, field.name), getattr(fitter.eraser, field.name)
        assert (new is None) if old is None else torch.equal(new, old), field.name


@pytest.mark.parametrize("fitter_cls", [LeaceFitter, OracleFitter])
def test_fitters_fitted_on_shards_merge_to_whole_data_fitter(fitter_cls):
    """Fitter.merge of shard fitters (sizes 1, 7, 1000, rest) equals the whole-data fitter."""
    k = 3
    x, _, y = make_data(10, 2500, k)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    whole = fitter_cls(D, k).update(x, y)
    shards = [fitter_cls(D, k).update(x[p], y[p])
              for p in torch.tensor_split(torch.arange(len(x)), [1, 8, 1008])]
    merged = shards[3]
    for shard in (shards[1], shards[0], shards[2]):
        merged = merged.merge(shard)
    for f in FIELDS:
        expected = getattr(whole.stats, f)
        if expected is None:
            assert getattr(merged.stats, f) is None
        elif f == "n":
            assert torch.equal(merged.stats.n, expected)
        else:
            assert_close(getattr(merged.stats, f), expected.numpy(), 1e-10)


def test_a_dominant_class_is_cut_into_slabs_not_padded_k_times():
    # 99% of rows in one of 10 classes: padding every class to it would hold ~10n rows.
    from featurebias.erasure.grouping import Groups, grouped_affine

    gen = torch.Generator().manual_seed(0)
    n, k = 2000, 10
    y = torch.zeros(n, dtype=torch.long)
    y[:40] = torch.arange(k).repeat(4)
    y = y[torch.randperm(n, generator=gen)]
    layout = Groups(y, k, width=5)
    slabs, length = layout.shape
    assert layout.split and slabs * length <= 3 * n
    # A batch smaller than the width is never cut: each slab would cost a width-sized block.
    assert not Groups(y[:64], k, width=64).split
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    assert torch.equal(layout.unpad(layout.pad(x)), x)
    sums = layout.combine(layout.pad(x).sum(1))
    torch.testing.assert_close(sums, torch.zeros(k, 5, dtype=x.dtype).index_add_(0, y, x))
    mats = torch.randn(k, 5, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(k, 3, generator=gen, dtype=torch.float64)
    want = torch.stack([x[i] @ mats[y[i]] + bias[y[i]] for i in range(n)])
    torch.testing.assert_close(grouped_affine(x, y, mats, bias), want)
    z = torch.randn(n, M, generator=gen, dtype=torch.float64)
    x6 = torch.randn(n, D, generator=gen, dtype=torch.float64)
    moments = new_moments(k).update(x6, z, y)
    assert_moments_equal(moments, reference_moments(x6.numpy(), z.numpy(), y.numpy(), k),
                         rtol=1e-12)


def test_updates_fold_co_moments_in_place_and_leave_earlier_erasers_alone():
    x, z, y = make_data(3, 400, 4)
    moments = update(new_moments(4), x[:200], z[:200], y[:200], 4)
    buffers = [getattr(moments, f).data_ptr() for f in ("m_xx", "m_xz", "m_zz")]
    update(moments, x[200:], z[200:], y[200:], 4)
    # No new [k, d, d] tensors (a copying merge held ~4 of them at its peak) ...
    assert [getattr(moments, f).data_ptr() for f in ("m_xx", "m_xz", "m_zz")] == buffers
    assert_moments_equal(moments, reference_moments(x, z, y, 4), rtol=1e-12)
    # ... while the means are new tensors: erasers hold views of them.
    fitter = LeaceFitter(D, 2).update(torch.from_numpy(x[:200]), torch.from_numpy(y[:200] % 2))
    eraser = fitter.eraser
    bias = eraser.bias.clone()
    fitter.update(torch.from_numpy(x[200:] + 5.0), torch.from_numpy(y[200:] % 2))
    assert torch.equal(eraser.bias, bias) and not torch.equal(fitter.eraser.bias, bias)
