"""`check_guardedness` and the scikit-learn `ConceptEraser` wrapper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError as SklearnNotFitted
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from featurebias.erasure import ConceptEraser, LeaceEraser, QuadraticEraser, check_guardedness
from featurebias.errors import ConfigError, LabelError, RangeError


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    keep = data.target < 4  # four classes keep the probes quick
    return torch.tensor(data.data[keep] / 16.0), torch.tensor(data.target[keep])


def test_report_before_erasure(digits):
    x, z = digits
    report = check_guardedness(x, z)
    counts = np.bincount(z.numpy())
    assert report.prior_log_loss == pytest.approx(entropy(counts / counts.sum(), base=2))
    assert report.prior_accuracy == pytest.approx(counts.max() / counts.sum())
    assert report.linear_accuracy > 0.9
    assert not report.guarded()
    frame = report.to_frame()
    assert list(frame.probe) == ["prior", "linear", "quadratic"]
    assert list(frame.columns) == ["probe", "accuracy", "log_loss_bits"]


def test_leace_guards_linear_probe_qleace_both(digits):
    x, z = digits
    linear = check_guardedness(LeaceEraser.fit(x, z)(x), z, quadratic=False)
    assert linear.linear_log_loss >= linear.prior_log_loss - 0.01
    assert linear.quadratic_log_loss is None
    quad = check_guardedness(QuadraticEraser.fit(x, z, shrinkage=True)(x, z), z)
    assert quad.quadratic_accuracy < quad.prior_accuracy + 0.1
    assert quad.linear_accuracy < quad.prior_accuracy + 0.1


def test_bad_labels(digits):
    x, z = digits
    with pytest.raises(LabelError, match="one class"):
        check_guardedness(x, torch.zeros_like(z))
    few = z.clone()
    few[:3] = 9
    with pytest.raises(LabelError, match="cv=5"):
        check_guardedness(x, few)


def test_concept_eraser_in_a_pipeline(digits):
    x, z = digits
    X, y = x.numpy(), z.numpy()
    pipe = make_pipeline(ConceptEraser("leace"), LogisticRegression(max_iter=3000))
    pipe.fit(X, y)
    prior = np.bincount(y).max() / len(y)
    assert pipe.score(X, y) <= prior + 0.02  # in-sample: LEACE's guarantee holds exactly
    plain = LogisticRegression(max_iter=3000).fit(X, y).score(X, y)
    assert plain > 0.95


def test_concept_eraser_sklearn_conventions(digits):
    x, z = digits
    X = x.numpy().astype(np.float32)
    eraser = ConceptEraser("random", rank=3, seed=1)
    with pytest.raises(SklearnNotFitted):
        eraser.transform(X)
    out = eraser.fit(X, z.numpy()).transform(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    assert clone(eraser).get_params() == eraser.get_params()
    assert math.isclose(np.linalg.matrix_rank(X - out, tol=1e-4), 3)
    with pytest.raises(ConfigError, match="method"):
        ConceptEraser("nonsense").fit(X, z.numpy())


def test_concept_eraser_takes_class_labels_of_any_kind(digits):
    x, z = digits
    X, binary = x.numpy(), (z.numpy() % 2)
    want = ConceptEraser().fit(X, binary).transform(X)
    for labels in (2 * binary - 1, np.where(binary, "odd", "even"), binary.astype(bool)):
        np.testing.assert_allclose(ConceptEraser().fit(X, labels).transform(X), want,
                                   rtol=0, atol=1e-10)


def test_too_few_rows_for_qda_is_a_clear_error_before_any_fit():
    data = load_digits()
    x, z = torch.tensor(data.data[:300] / 16.0), torch.tensor(data.target[:300])
    with pytest.raises(RangeError, match="more training rows per class than dimensions"):
        check_guardedness(x, z)
    assert check_guardedness(x, z, quadratic=False).quadratic_accuracy is None
