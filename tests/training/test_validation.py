"""Bad input to `train` raises a clear `FeatureBiasError` before any parameter changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from featurebias.errors import ConfigError, LabelError, NonFiniteError, ShapeError
from featurebias.training import TrainConfig, train

from .helpers import TokenModel, linear, sequence_task

X = torch.randn(20, 4)
Y1 = torch.randint(0, 3, (20,))
Y2 = torch.randint(0, 2, (20, 2))
TOKENS, YSEQ = sequence_task(20)


def seq_model():
    return TokenModel(3, 6)


CASES = [
    # (model builder, data, val, config options, error, message)
    (lambda: linear(4, 3), (X, Y1[:19]), None, {}, ShapeError, "same number of rows"),
    (lambda: linear(4, 3), (X, Y1 + 1), None, {}, LabelError, r"ids in \[1, 3\].*\[0, 3\)"),
    (lambda: linear(4, 3), (X, Y1.float()), None, {}, LabelError, "integer class ids"),
    (lambda: linear(4, 3), (X, -Y1 - 1), None, {}, LabelError, r"expected ids in \[0, 3\)"),
    (lambda: linear(4, 1), (X, Y1 % 2), None, {}, ShapeError, r"\[n, 1\]"),
    (lambda: linear(4, 2), (X, Y2 * 2), None, {}, LabelError, "column 0.*1-column head"),
    (lambda: linear(4, 4), (X, torch.stack([Y2[:, 0], Y1 + 1], 1)), None, {"heads": (1, 3)},
     LabelError, r"column 1 \('feature_1'\).*\[0, 3\)"),
    (lambda: linear(4, 3), (X, Y2), None, {}, ShapeError, "outputs 3 columns but heads"),
    (lambda: linear(4, 3), (X, Y2), None, {"heads": (1, 1, 1)}, ConfigError,
     "one head per target column"),
    (lambda: linear(4, 3), (X, Y1), None, {"heads": (1, 2)}, ConfigError, "single-label"),
    (lambda: linear(4, 2), (X, Y2), None, {"feature_names": ("a",)}, ConfigError,
     "feature_names has 1"),
    (lambda: linear(4, 2), (X, Y2), None, {"loss_start": (0, 1, 2)}, ConfigError,
     "loss_start has 3"),
    (lambda: linear(4, 3), (X, Y1), None, {"patience": 2}, ConfigError, "needs validation"),
    (lambda: linear(4, 3), (X, Y1), (X, Y1 + 3), {}, LabelError, "val targets"),
    (lambda: linear(4, 3), (X, Y1), (X, Y2), {}, ShapeError, "val targets have shape"),
    (lambda: linear(4, 3), (X, Y1), (X[:, :3], Y1), {}, ShapeError, "val inputs"),
    (lambda: linear(4, 3), [X, Y1, Y1], None, {}, ConfigError, "pair"),
    (lambda: linear(4, 3), (X * torch.nan, Y1), None, {}, NonFiniteError, "NaN"),
    (lambda: linear(4, 3), (X[:0], Y1[:0]), None, {}, ShapeError, "empty"),
    (lambda: linear(4, 3), TensorDataset(X, Y1 + 2), None, {}, LabelError, "data targets"),
    (seq_model, (TOKENS, torch.where(YSEQ >= 0, YSEQ + 2, YSEQ)), None, {}, LabelError,
     r"ids in \[2, 3\].*vocabulary"),
    (seq_model, (TOKENS, torch.where(YSEQ < 0, -7, YSEQ)), None, {}, LabelError, "-100"),
    (seq_model, (TOKENS, torch.full_like(YSEQ, -100)), None, {}, LabelError, "no target"),
    (seq_model, (TOKENS, YSEQ[:, :4]), None, {}, ShapeError, "6 positions"),
    (seq_model, (TOKENS, YSEQ), None, {"heads": (3,)}, ConfigError, "heads applies"),
    (seq_model, (TOKENS, YSEQ[:, 0]), None, {}, ShapeError, "cannot pair"),
]


@pytest.mark.parametrize(("build", "data", "val", "options", "error", "match"), CASES)
def test_rejected_before_any_change(build, data, val, options, error, match):
    model = build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    with pytest.raises(error, match=match):
        train(model, data, TrainConfig(steps=3, **options), val, progress=False,
              callbacks=[calls.append])
    assert calls == []  # not even the step-0 callback ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("not a model", (X, Y1)), {}, "nn.Module"),
    ((nn.ReLU(), (X, Y1)), {}, "no floating-point parameters"),
    ((linear(4, 3), (X, Y1), {"steps": 3}), {}, "TrainConfig"),
    ((linear(4, 3), (X, Y1)), {"transform": 3}, "transform"),
    ((linear(4, 3), (X, Y1)), {"callbacks": [None]}, "callback"),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        train(*args, progress=False, **kwargs)


def test_model_returning_a_non_tensor():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return self.lin(x), x

    with pytest.raises(ShapeError, match="must return a tensor"):
        train(Pair(), (X, Y1), TrainConfig(steps=1), progress=False)


def test_huge_finite_inputs_are_not_mistaken_for_inf():
    from featurebias.training._data import source

    big = torch.full((20, 4), 3e38)  # their float32 sum overflows, every value is finite
    src = source((big, Y1), "data", torch.device("cpu"), torch.float32)
    assert torch.equal(src.first(2)[0], big[:2])
    big[3, 1] = torch.inf
    with pytest.raises(NonFiniteError, match="1 NaN/Inf"):
        source((big, Y1), "data", torch.device("cpu"), torch.float32)
