"""The transformer version of the synthetic task: format, order, and a tiny_transformer pass."""

from __future__ import annotations

import pytest
import torch

from featurebias.datasets import FeatureSpec, sequence_task, synthetic_task
from featurebias.errors import ConfigError

SIZES = (256, 64, 64)
THREE = (FeatureSpec("easy", "sum_threshold", 3), FeatureSpec("mid", "xor"),
         FeatureSpec("hard", "parity", 4))


def test_format_sep_mask_and_teacher_forcing():
    task = sequence_task(THREE, distractors=2, sizes=SIZES, order=[2, 0, 1], seed=1)
    info = task.info
    d, f = info["input_dim"], 3
    x, y = task.train
    assert d == 11 and info["sep_position"] == d and info["vocab_size"] == 3
    assert x.shape == y.shape == (256, d + f) and x.dtype == y.dtype == torch.int64
    assert set(x[:, :d].unique().tolist()) <= {0, 1}
    assert bool((x[:, d] == info["sep_token"]).all())
    assert info["output_positions"] == (d, d + 1, d + 2)
    # −100 everywhere except the positions predicting a feature
    mask = torch.ones(d + f, dtype=torch.bool)
    mask[list(info["output_positions"])] = False
    assert bool((y[:, mask] == -100).all()) and bool((y[:, ~mask] >= 0).all())
    # teacher forcing: the token after each output position is that position's target
    assert torch.equal(x[:, d + 1:], y[:, d:d + f - 1])
    assert int(x.max()) < info["vocab_size"]


def test_same_bits_and_features_as_the_vector_task():
    seq = sequence_task(THREE, distractors=2, sizes=SIZES, order=["hard", "easy", "mid"], seed=3)
    vec = synthetic_task(THREE, distractors=2, sizes=SIZES, seed=3)
    d = seq.info["input_dim"]
    for split in ("train", "test"):
        assert torch.equal(2 * seq.split(split)[0][:, :d].float() - 1, vec.split(split)[0])
    assert seq.feature_names == ("hard", "easy", "mid")
    assert seq.info["order"] == (2, 0, 1)
    for name in seq.feature_names:
        assert torch.equal(seq.targets("val")[name], vec.targets("val")[name])


def test_permutation_moves_features_between_positions():
    a = sequence_task(sizes=SIZES, order=None, seed=2)
    b = sequence_task(sizes=SIZES, order=(1, 0), seed=2)
    pa, pb = a.info["output_positions"], b.info["output_positions"]
    assert pa == pb
    ya, yb = a.test[1], b.test[1]
    assert torch.equal(ya[:, pa[0]], yb[:, pb[1]]) and torch.equal(ya[:, pa[1]], yb[:, pb[0]])
    assert not torch.equal(ya[:, pa[0]], yb[:, pb[0]])  # easy and hard differ somewhere
    assert a.feature_names == ("easy", "hard") and b.feature_names == ("hard", "easy")


def test_curriculum_follows_the_output_order():
    task = sequence_task(sizes=SIZES, order=(1, 0), curriculum={"hard": 100})
    assert task.feature_names == ("hard", "easy")
    assert task.info["loss_start"] == (100, 0)


def test_tiny_transformer_reads_the_tokens():
    from featurebias.models import tiny_transformer

    task = sequence_task(sizes=(16, 4, 4))
    x, y = task.train
    model = tiny_transformer(d_model=16, n_layers=1, n_heads=2, d_vocab=task.info["vocab_size"],
                             n_ctx=x.shape[1])
    with torch.no_grad():
        logits = model(x[:8])
    assert logits.shape == (8, x.shape[1], task.info["vocab_size"])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[:8].flatten())
    assert torch.isfinite(loss)  # only the output positions count (ignore_index = −100)


@pytest.mark.parametrize("order", [(0, 0), (0,), (0, 2), ("easy", "medium"), (True, 0)])
def test_bad_order(order):
    with pytest.raises(ConfigError, match="permutation"):
        sequence_task(sizes=(4, 4, 4), order=order)
