"""Prequential MDL (SCIENCE §4.1): the code length, its boundaries, and trained models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from featurebias.errors import ConfigError, LabelError, NonFiniteError, ShapeError
from featurebias.models import mlp
from featurebias.training import MdlResult, TrainConfig, log_spaced, prequential_code
from featurebias.training import prequential_mdl as mdl

ENDS = log_spaced(16, 1000, 7)
CFG = TrainConfig(steps=150, batch_size=32, lr=3e-3, eval_every=15, patience=2)


def chunk_sizes(ends):
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


@pytest.mark.parametrize("k", [2, 3, 10])
def test_uniform_predictor_costs_n_log2_k(k):
    log_probs = [torch.full((size,), -math.log(k), dtype=torch.float64)
                 for size in chunk_sizes(ENDS)]
    code = prequential_code(ENDS, k, log_probs)
    assert code.codelength_bits == pytest.approx(1000 * math.log2(k), rel=1e-12)
    assert code.blocks["size"].sum() == 1000  # chunk weights sum to N


def test_perfect_predictor_costs_the_first_chunk_only():
    code = prequential_code(ENDS, 4, [torch.zeros(size) for size in chunk_sizes(ENDS)])
    assert code.codelength_bits == 16 * 2  # t1 · log2 k, exactly


def test_code_length_is_the_formula():
    g = torch.Generator().manual_seed(0)
    probs = [torch.rand(size, generator=g, dtype=torch.float64) * 0.9 + 0.05
             for size in chunk_sizes(ENDS)]
    code = prequential_code(ENDS, 5, [p.log() for p in probs])
    by_hand = 16 * np.log2(5) + sum(float(-np.log2(p.numpy()).sum()) for p in probs)
    assert code.codelength_bits == pytest.approx(by_hand, rel=1e-12)
    # every chunk is weighted by its own size: each block's bits are its examples' bits
    assert list(code.blocks["bits"][1:]) == pytest.approx(
        [float(-np.log2(p.numpy()).sum()) for p in probs], rel=1e-12)
    with pytest.raises(ShapeError, match="6 model-coded chunks"):
        prequential_code(ENDS, 5, probs[:-1])


def easy_task(n=900, seed=0):
    """Unit-scale inputs, balanced labels from a fixed linear teacher (4 classes).

    The teacher is orthogonal, so `x @ teacher` has i.i.d. coordinates and each class is the
    argmax equally often: shuffled labels then carry exactly log2(4) bits each.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    teacher = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(9)))[0]
    return x, (x @ teacher).argmax(1)


def model_fn():
    return mlp(4, (16,), 4, seed=0)


def test_shuffled_labels_cost_about_n_log2_k_and_easy_labels_much_less():
    x, y = easy_task()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    noise = mdl(model_fn, x, shuffled, num_chunks=5, config=CFG, first_chunk=32,
                progress=False)
    easy = mdl(model_fn, x, y, num_chunks=5, config=CFG, first_chunk=32, progress=False)
    assert noise.heldout == easy.heldout == 180 and noise.n == 720
    assert noise.uniform_bits == 720 * 2
    # a model cannot beat the uniform code on noise, and early stopping keeps it close
    assert 0.99 < noise.codelength_bits / noise.uniform_bits < 1.04
    assert easy.codelength_bits < 0.5 * easy.uniform_bits
    assert easy.compression == pytest.approx(easy.uniform_bits / easy.codelength_bits)
    assert easy.bits_per_sample == pytest.approx(easy.codelength_bits / 720)
    # every model-coded chunk beats the uniform code on the easy task, none on noise by much
    assert (easy.curve["bits_per_sample"][1:] < 1.0).all()
    assert (noise.curve["bits_per_sample"][1:] > 1.9).all()


def test_result_curve_reference_weighting_and_determinism():
    x, y = easy_task(400, seed=2)
    cfg = TrainConfig(steps=40, batch_size=32, eval_every=10, patience=2)
    runs = [mdl(model_fn, x, y, num_chunks=4, config=cfg, first_chunk=24, seed=3,
                progress=False) for _ in range(2)]
    result = runs[0]
    pd.testing.assert_frame_equal(result.curve, runs[1].curve)
    curve = result.curve
    assert list(curve.columns) == ["chunk", "train_size", "start", "end", "size", "bits",
                                   "bits_per_sample", "coder", "steps", "best_step"]
    assert result.boundaries == tuple(log_spaced(24, 320, 4)) == tuple(curve["end"])
    assert list(curve["train_size"]) == [0, *result.boundaries[:-1]]
    assert list(curve["coder"]) == ["uniform", "model", "model", "model"]
    assert curve["bits"].sum() == pytest.approx(result.codelength_bits)
    assert curve["size"].sum() == result.n == 320
    assert (curve["steps"][1:] <= 40).all() and pd.isna(curve["steps"][0])
    model_rows = curve.iloc[1:]
    reference = (model_rows["end"] * model_rows["bits_per_sample"]).sum() / 320
    assert result.mdl_reference_weighting == pytest.approx(reference)
    frame = result.to_frame()
    assert frame.loc[0, "bits_per_sample"] == result.bits_per_sample
    assert frame.loc[0, "mdl_reference_weighting"] == result.mdl_reference_weighting
    other = mdl(model_fn, x, y, num_chunks=4, config=cfg, first_chunk=24, seed=4,
                progress=False)
    assert other.codelength_bits != result.codelength_bits


def test_default_first_chunk_and_multi_feature_alphabet():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(700, 3, generator=g)
    y = torch.randint(0, 2, (700, 2), generator=g)  # two binary heads of noise: k = 4
    cfg = TrainConfig(steps=20, batch_size=40, eval_every=10, patience=1)
    result = mdl(lambda: mlp(3, (8,), 2, seed=0), x, y, num_chunks=3, config=cfg,
                 progress=False)
    assert result.num_classes == 4 and result.uniform_bits == 560 * 2
    assert result.boundaries[0] == 2 * max(40, 2, 3)  # min(1024, 2·max(batch, k, d))
    assert 0.98 < result.bits_per_sample / 2 < 1.05


def test_power_law_fit_recovers_a_and_b():
    sizes = np.array([10, 20, 40, 80, 160])
    curve = pd.DataFrame({"train_size": [0, *sizes[:-1]], "coder": ["uniform"] + ["model"] * 4,
                          "bits_per_sample": [1.0, *(3.0 * sizes[:-1] ** -0.5)]})
    result = MdlResult(1.0, 1.0, 1.0, 2, 160, 10, tuple(sizes), 1.0, curve)
    a, b = result.power_law()
    assert a == pytest.approx(3.0) and b == pytest.approx(0.5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_chunks": 1}, ConfigError, "num_chunks"),
    ({"first_chunk": 700}, ConfigError, "lower first_chunk"),
    ({"config": {"steps": 3}}, ConfigError, "TrainConfig"),
    ({"seed": -1}, ConfigError, "seed"),
])
def test_bad_arguments(kwargs, error, match):
    x, y = easy_task(100)
    with pytest.raises(error, match=match):
        mdl(model_fn, x, y, progress=False, **kwargs)


def test_bad_inputs():
    x, y = easy_task(100)
    with pytest.raises(ConfigError, match="callable"):
        mdl("model", x, y, progress=False)
    with pytest.raises(ConfigError, match="nn.Module"):
        mdl(lambda: 3, x, y, progress=False)
    with pytest.raises(ShapeError, match="at least 5"):
        mdl(model_fn, x[:4], y[:4], progress=False)
    with pytest.raises(ShapeError, match="same number of rows"):
        mdl(model_fn, x, y[:50], progress=False)
    bad = y.clone()
    bad[-1] = 4  # lands in the coded last chunk or the held-out set, never only in training
    with pytest.raises(LabelError, match=r"\[0, 4\)"):
        mdl(model_fn, x, bad, progress=False)
    with pytest.raises(LabelError, match="integer"):
        mdl(model_fn, x, y.float(), progress=False)
    with pytest.raises(NonFiniteError, match="NaN"):
        mdl(model_fn, x * torch.nan, y, progress=False)
