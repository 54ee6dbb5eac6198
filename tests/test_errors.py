"""Bad input raises the right `FeatureBiasError` subclass, with a message naming the problem."""

from __future__ import annotations

import pytest
import torch

from featurebias.erasure.leace import LeaceEraser, LeaceFitter
from featurebias.erasure.oracle import OracleEraser, OracleFitter
from featurebias.erasure.quadratic import QuadraticEraser, QuadraticFitter
from featurebias.errors import (
    ConfigError,
    FeatureBiasError,
    LabelError,
    NonFiniteError,
    NotFittedError,
    ShapeError,
)

N, D, K = 40, 5, 3


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Small float64 activations and class ids in [0, K) (every class present)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, dtype=torch.float64, generator=gen)
    return x, torch.arange(N) % K


def with_value(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x[3, 2] = value
    return x


def fitted_leace() -> LeaceEraser:
    return LeaceEraser.fit(*data())


def fitted_oracle() -> OracleEraser:
    return OracleEraser.fit(*data())


def fitted_quadratic() -> QuadraticEraser:
    return QuadraticEraser.fit(*data())


X, Y = data()
NAN_X, INF_X = with_value(X, float("nan")), with_value(X, float("-inf"))

# (id, call, expected error, words the message must contain)
CASES = [
    # non-finite activations
    ("fit-nan", lambda: LeaceEraser.fit(NAN_X, Y), NonFiniteError, ["x", "NaN"]),
    ("update-inf", lambda: LeaceFitter(D, K).update(INF_X, Y), NonFiniteError, ["x", "Inf"]),
    ("oracle-update-nan", lambda: OracleFitter(D, K).update(NAN_X, Y), NonFiniteError,
     ["x", "NaN"]),
    ("qleace-update-nan", lambda: QuadraticFitter(D, K).update(NAN_X, Y), NonFiniteError,
     ["x", "NaN"]),
    ("apply-nan", lambda: fitted_leace()(NAN_X), NonFiniteError, ["x", "NaN"]),
    ("nan-in-float-labels",
     lambda: LeaceFitter(D, 1).update(X, with_value(X, float("nan"))[:, 2]), NonFiniteError,
     ["z", "NaN"]),
    # wrong rank or width
    ("update-1d-x", lambda: LeaceFitter(D, K).update(X[0], Y[:1]), ShapeError, ["x", "shape"]),
    ("fit-1d-x", lambda: LeaceEraser.fit(X[:, 0], Y), ShapeError, ["x", "shape"]),
    ("update-wrong-width", lambda: LeaceFitter(D, K).update(X[:, :-1], Y), ShapeError,
     ["x", "last dimension", str(D)]),
    ("qleace-wrong-width", lambda: QuadraticFitter(D, K).update(X[:, :-1], Y), ShapeError,
     ["x", "last dimension"]),
    ("apply-other-width", lambda: fitted_leace()(torch.randn(4, D + 2, dtype=torch.float64)),
     ShapeError, ["x", "last dimension", str(D)]),
    ("oracle-apply-other-width",
     lambda: fitted_oracle()(torch.randn(4, D + 1, dtype=torch.float64), Y[:4]), ShapeError,
     ["x", "last dimension"]),
    ("apply-scalar", lambda: fitted_leace()(torch.tensor(1.0, dtype=torch.float64)),
     ShapeError, ["x", "shape"]),
    ("label-matrix-wrong-width",
     lambda: LeaceFitter(D, K).update(X, torch.zeros(N, K + 1, dtype=torch.float64)),
     ShapeError, ["z", "last dimension"]),
    # x and z of different length
    ("update-length", lambda: LeaceFitter(D, K).update(X, Y[:-1]), ShapeError,
     ["z", str(N - 1), str(N)]),
    ("fit-length", lambda: LeaceEraser.fit(X, Y[:-3]), ShapeError, ["z", str(N - 3)]),
    ("oracle-apply-length", lambda: fitted_oracle()(X, Y[:-1]), ShapeError, ["z"]),
    ("float-labels-length", lambda: LeaceFitter(D, 1).update(X, X[:-2, 0]), ShapeError,
     ["z", str(N - 2)]),
    ("qleace-length", lambda: QuadraticFitter(D, K).update(X, Y[:-1]), ShapeError, ["z"]),
    # labels out of range
    ("update-label-too-large", lambda: LeaceFitter(D, K).update(X, Y + 1), LabelError,
     ["z", f"[0, {K})"]),
    ("update-label-negative", lambda: OracleFitter(D, K).update(X, Y - 1), LabelError,
     ["z", f"[0, {K})"]),
    ("fit-label-negative", lambda: LeaceEraser.fit(X, Y - 1), LabelError, ["z"]),
    ("fit-all-labels-negative", lambda: LeaceEraser.fit(X, -1 - Y), LabelError, ["z"]),
    ("qleace-label-too-large", lambda: QuadraticFitter(D, K).update(X, Y + 1), LabelError,
     ["z", f"[0, {K})"]),
    ("oracle-apply-label-too-large", lambda: fitted_oracle()(X, Y + 1), LabelError, ["z"]),
    # non-integer labels where class ids are needed
    ("qleace-float-ids", lambda: QuadraticFitter(D, K).update(X, Y.double() + 0.5),
     LabelError, ["z", "integer"]),
    ("qleace-apply-float-ids", lambda: fitted_quadratic()(X, Y.double()), LabelError,
     ["z", "integer"]),
    ("qleace-not-one-hot", lambda: QuadraticFitter(D, K).update(
        X, torch.full((N, K), 1 / K, dtype=torch.float64)), LabelError, ["z", "one-hot"]),
    # one class only
    ("fit-one-class", lambda: LeaceEraser.fit(X, torch.ones(N, dtype=torch.long)), LabelError,
     ["z", "one class"]),
    ("fit-one-class-zero", lambda: LeaceEraser.fit(X, torch.zeros(N, dtype=torch.long)),
     LabelError, ["z", "one class"]),
    ("oracle-fit-one-class", lambda: OracleEraser.fit(X, torch.full((N,), 2)), LabelError,
     ["z", "one class"]),
    ("qleace-fit-one-class", lambda: QuadraticEraser.fit(X, torch.full((N,), 1)), LabelError,
     ["z", "one class"]),
    # labels missing where the eraser needs them
    ("oracle-apply-without-z", lambda: fitted_oracle()(X), LabelError, ["z"]),
    # empty batch
    ("update-empty", lambda: LeaceFitter(D, K).update(X[:0], Y[:0]), ShapeError,
     ["x", "0 rows"]),
    ("fit-empty", lambda: LeaceEraser.fit(X[:0], Y[:0]), ShapeError, ["x", "0 rows"]),
    ("oracle-update-empty", lambda: OracleFitter(D, K).update(X[:0], Y[:0]), ShapeError,
     ["x", "0 rows"]),
    # bad options
    ("method-foo", lambda: LeaceFitter(D, K, method="foo"), ConfigError, ["method", "foo"]),
    ("fit-method-foo", lambda: LeaceEraser.fit(X, Y, method="foo"), ConfigError,
     ["method", "foo"]),
    ("svd-tol-zero", lambda: LeaceFitter(D, K, svd_tol=0), ConfigError, ["svd_tol"]),
    ("svd-tol-negative", lambda: OracleFitter(D, K, svd_tol=-1e-3), ConfigError, ["svd_tol"]),
    ("svd-tol-nan", lambda: LeaceFitter(D, K, svd_tol=float("nan")), ConfigError, ["svd_tol"]),
    ("x-dim-zero", lambda: LeaceFitter(0, K), ConfigError, ["x_dim"]),
    ("x-dim-float", lambda: OracleFitter(2.5, K), ConfigError, ["x_dim"]),
    ("x-dim-bool", lambda: LeaceFitter(True, K), ConfigError, ["x_dim"]),
    ("z-dim-zero", lambda: LeaceFitter(D, 0), ConfigError, ["z_dim"]),
    ("integer-dtype", lambda: LeaceFitter(D, K, dtype=torch.int64), ConfigError, ["dtype"]),
    ("qleace-one-class-option", lambda: QuadraticFitter(D, 1), ConfigError, ["num_classes"]),
    # not fitted
    ("leace-unfitted", lambda: LeaceFitter(D, K).eraser, NotFittedError, ["0 samples"]),
    ("oracle-unfitted", lambda: OracleFitter(D, K).eraser, NotFittedError, ["0 samples"]),
    ("leace-one-sample", lambda: LeaceFitter(D, K).update(X[:1], Y[:1]).eraser,
     NotFittedError, ["1 samples", "at least 2"]),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_named_error(call, error, words):
    """The call raises `error` (a FeatureBiasError) whose message names the problem."""
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert isinstance(info.value, FeatureBiasError)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"


@pytest.mark.parametrize("error", [ShapeError, NonFiniteError, LabelError, ConfigError,
                                   NotFittedError])
def test_errors_are_feature_bias_errors_and_builtin_kinds(error):
    """Every error class derives from FeatureBiasError and from the matching built-in."""
    assert issubclass(error, FeatureBiasError)
    builtin = RuntimeError if error is NotFittedError else ValueError
    assert issubclass(error, builtin)


@pytest.mark.parametrize("wrap", [lambda t: t, lambda t: t.numpy()])
def test_one_label_per_row_is_checked_alike_for_tensors_and_arrays(wrap):
    from featurebias._validate import one_per_row

    column = one_per_row(wrap(torch.arange(6)[:, None]), 6, "y")
    assert column.shape == (6,) and list(column) == list(range(6))
    with pytest.raises(ShapeError, match=r"y has shape \(6, 2\); expected one label per row, "
                                         r"\[n\] \(one column each\)"):
        one_per_row(wrap(torch.zeros(6, 2)), 6, "y", hint=" (one column each)")
    with pytest.raises(ShapeError, match="y has 5 values for the 6 rows of the activations"):
        one_per_row(wrap(torch.zeros(5)), 6, "y", what="value", rows_of="the activations")
