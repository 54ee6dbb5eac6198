"""Column moments of many splits from one pass (`_data.moments` with counts) against
scikit-learn's `StandardScaler` on each split's own rows."""

from __future__ import annotations

import pytest
import torch
from sklearn.preprocessing import StandardScaler

from featurebias.probes import _data


def scaler(x):
    fitted = StandardScaler().fit(x.double().numpy())
    return torch.from_numpy(fitted.mean_), torch.from_numpy(fitted.scale_)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_split_moments_equal_each_splits_own_scaler(dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(300, 6, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 10.0, 1e-3, 5.0, 1.0, 2.0]) + 40.0)
    x[:100, 4] += 1e4  # one split sits far from the others: its offset must not cancel
    x[:100, 5] = 0.1 + torch.pi  # constant on that split (not on the others)
    x = x.to(dtype)
    trains = [torch.arange(100), torch.arange(100, 300),
              torch.tensor([3, 3, 3, 7, 150, 150, 299]),  # a bootstrap sample repeats rows
              None]
    counts = _data.split_counts(trains, len(x), x.device)
    assert counts[2, 3] == 3 and counts[3].eq(1).all() and counts[0, 100:].eq(0).all()
    means, scales, constant = _data.split_moments(x, counts, block=64)  # several blocks
    assert means.dtype == scales.dtype == dtype
    assert constant.tolist() == [[False] * 5 + [True]] + [[False] * 6] * 3
    # float64 sums about the overall mean lose ~eps·(offset / std)² ≈ 1e-8 to the far split.
    rtol = 1e-5 if dtype == torch.float32 else 1e-7
    for j, t in enumerate(trains):
        want_mean, want_scale = scaler(x if t is None else x[t])
        torch.testing.assert_close(means[j].double(), want_mean, rtol=rtol, atol=0)
        torch.testing.assert_close(scales[j].double(), want_scale, rtol=rtol, atol=0)
    assert scales[0, 5] == 1.0  # constant: left unscaled, as StandardScaler leaves it
    one_mean, one_scale = _data.moments(x[trains[1]])
    torch.testing.assert_close(one_mean, means[1], rtol=rtol, atol=0)
    torch.testing.assert_close(one_scale, scales[1], rtol=rtol, atol=0)


def test_rows_are_ordered_by_the_splits_that_use_them():
    trains = [torch.tensor([0, 2, 4, 5]), torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 2])]
    counts = _data.split_counts(trains, 6, "cpu")
    order = _data.by_splits(counts)
    assert sorted(order.tolist()) == list(range(6))
    patterns = [tuple(counts[:, i].gt(0).tolist()) for i in order.tolist()]
    # Each pattern forms one contiguous block, rows within it in their original order.
    blocks = [p for i, p in enumerate(patterns) if i == 0 or p != patterns[i - 1]]
    assert len(blocks) == len(set(patterns))
    assert _data.by_splits(_data.split_counts([None, torch.arange(6)], 6, "cpu")) is None


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_columns_constant_on_a_large_split_are_found_constant(n):
    # The float64 sum of many equal squares rounds: the cut-off grows with the row count.
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 6, generator=g)
    sparse = [1, 3, 4, 5]  # silent on the split, active on the last 50 rows only
    x[:, sparse] = 0.0
    x[-50:, sparse] = 5 * torch.rand(50, len(sparse), generator=g)
    x[:, 2] = 1e3 + 1e-2 * torch.randn(n, generator=g)  # a large offset, yet varying
    counts = _data.split_counts([torch.arange(n - 50)], n, "cpu")
    _, scale, constant = _data.split_moments(x, counts)
    assert constant[0].tolist() == [False, True, False, True, True, True]
    assert scale[0, sparse].eq(1.0).all()
    assert float(scale[0, 2]) == pytest.approx(1e-2, rel=0.05)
