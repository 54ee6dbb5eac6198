"""Online code length and MDL probing (Voita & Titov 2020; SCIENCE §4.1, §9.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from featurebias.errors import ConfigError, NonFiniteError, ShapeError
from featurebias.probes import (
    VOITA_FRACTIONS,
    LinearProbe,
    block_boundaries,
    mdl_probe,
    online_codelength,
)

from .helpers import blobs


class UniformProbe(ClassifierMixin, BaseEstimator):
    """Knows the K classes and always predicts 1/K each: an uninformative model."""

    def __init__(self, k: int = 4):
        self.k = k

    def fit(self, x, y):
        self.classes_ = np.arange(self.k)
        return self

    def predict_proba(self, x):
        return np.full((len(x), self.k), 1.0 / self.k)


def test_voita_block_boundaries():
    assert block_boundaries(10_000) == [10, 20, 40, 80, 160, 320, 625, 1250, 2500, 5000,
                                        10_000]
    assert block_boundaries(100, (0.5, 1.0)) == [50, 100]
    tiny = block_boundaries(30)  # 0.1 % of 30 rounds to 0: at least one example per block
    assert tiny[0] == 1 and tiny[-1] == 30
    assert all(b > a for a, b in zip(tiny, tiny[1:], strict=False))
    assert len(block_boundaries(11)) == len(VOITA_FRACTIONS)
    with pytest.raises(ConfigError, match="at least 11 examples"):
        block_boundaries(10)
    with pytest.raises(ConfigError, match="end at 1.0"):
        block_boundaries(100, (0.1, 0.5))
    with pytest.raises(ConfigError, match="increase"):
        block_boundaries(100, (0.5, 0.2, 1.0))


def test_uniform_model_costs_exactly_n_log2_k():
    x, y = blobs(1000, 3, 4)
    code = mdl_probe(x, y, probe=UniformProbe(4), fractions=(0.05, 0.1, 0.3, 1.0),
                     progress=False)
    assert code.codelength_bits == pytest.approx(1000 * math.log2(4), rel=1e-12)
    assert code.uniform_bits == 1000 * 2
    assert code.compression == pytest.approx(1.0, rel=1e-12)
    assert code.blocks["size"].sum() == 1000
    assert list(code.blocks["coder"]) == ["uniform", "probe", "probe", "probe"]


def test_perfect_model_costs_only_the_first_block():
    ends = block_boundaries(5000)
    code = online_codelength(lambda start, end: torch.zeros(end - start), ends, 10,
                             progress=False)
    assert code.codelength_bits == pytest.approx(ends[0] * math.log2(10))
    assert code.blocks["size"].sum() == 5000 and code.n == 5000
    assert code.to_frame()["compression"].iloc[0] == pytest.approx(5000 / ends[0])


def test_separable_task_compresses_and_shuffled_task_does_not():
    x, y = blobs(2000, 8, 4, signal=3.0)
    task = mdl_probe(x, y, progress=False)
    shuffled = mdl_probe(x, y[torch.randperm(2000, generator=torch.Generator().manual_seed(1))],
                         progress=False)
    uniform = 2000 * math.log2(4)
    assert task.codelength_bits < uniform / 10
    assert task.compression > 10 * shuffled.compression
    assert shuffled.codelength_bits == pytest.approx(uniform, rel=0.08)
    assert task.blocks["size"].sum() == shuffled.blocks["size"].sum() == 2000


def test_tiny_blocks_use_add_one_frequencies_and_stay_finite():
    x, y = blobs(500, 3, 5, signal=3.0)
    code = mdl_probe(x, y, progress=False)
    blocks = code.blocks
    assert blocks["coder"].iloc[0] == "uniform"
    assert blocks["coder"].iloc[1] == "add-one"  # trained on one example: one class
    assert set(blocks["coder"]) <= {"uniform", "add-one", "probe+add-one", "probe"}
    assert blocks["coder"].iloc[-1] == "probe"
    assert np.isfinite(blocks["bits"]).all() and math.isfinite(code.codelength_bits)
    # the add-one code of one seen example: (1 + 1) / (1 + 5) for its class, else 1 / 6
    first = blocks.iloc[1]
    assert first["bits_per_example"] <= math.log2(6) + 1e-12


def test_a_probe_that_picks_C_by_cv_codes_early_blocks_with_add_one():
    # Its CV needs 2 rows of every class: prefixes with a singleton class cannot fit it.
    x, y = blobs(400, 5, 3, signal=2.0)
    code = mdl_probe(x, y, LinearProbe(C="cv", Cs=[0.1, 1.0], cv=2), progress=False)
    coders = code.blocks["coder"].tolist()
    assert "add-one" in coders[1:] and coders[-1] == "probe"
    assert math.isfinite(code.codelength_bits)
    assert code.codelength_bits < 0.8 * code.uniform_bits


def test_deterministic_with_a_seed():
    x, y = blobs(400, 3, 3)
    a = mdl_probe(x, y, seed=3, progress=False)
    b = mdl_probe(x, y, seed=3, progress=False)
    c = mdl_probe(x, y, seed=4, progress=False)
    assert a.codelength_bits == b.codelength_bits != c.codelength_bits


def test_online_codelength_checks_the_model_output():
    ends = [2, 4, 8]
    with pytest.raises(ShapeError, match="one per example"):
        online_codelength(lambda s, e: torch.zeros(1), ends, 2, progress=False)
    with pytest.raises(NonFiniteError, match="probability 0"):
        online_codelength(lambda s, e: torch.full((e - s,), math.inf), ends, 2, progress=False)
    with pytest.raises(ConfigError, match="boundaries"):
        online_codelength(lambda s, e: torch.zeros(e - s), [4, 2], 2, progress=False)
