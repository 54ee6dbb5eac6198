"""Control tasks (type-level random labels) and selectivity."""

from __future__ import annotations

import pytest
import torch

from featurebias.errors import LabelError, ShapeError
from featurebias.probes import Selectivity, control_task, selectivity


def typed_task(n: int = 3000, types: int = 600, k: int = 4, seed: int = 0):
    """Rows of `types` recurring types; every type has one label (as a word's tag)."""
    g = torch.Generator().manual_seed(seed)
    type_ids = torch.randint(0, types, (n,), generator=g)
    labels = torch.randint(0, k, (types,), generator=g)[type_ids]
    return type_ids, labels, g


def test_control_labels_are_type_level_and_seeded():
    type_ids, labels, _ = typed_task()
    control = control_task(type_ids, labels + 10, seed=1)
    assert control.shape == labels.shape and control.dtype == labels.dtype
    assert set(control.tolist()) <= set((labels + 10).tolist())
    for t in type_ids.unique()[:50]:
        assert control[type_ids == t].unique().numel() == 1
    assert torch.equal(control, control_task(type_ids, labels + 10, seed=1))
    assert not torch.equal(control, control_task(type_ids, labels + 10, seed=2))


def test_control_labels_follow_the_empirical_distribution():
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(20_000, generator=g) < 0.8).long()  # 80 % ones
    type_ids = torch.arange(20_000)  # every row its own type
    control = control_task(type_ids, labels, seed=0)
    assert abs(control.double().mean().item() - 0.8) < 0.02


def test_selectivity_high_for_a_linear_code_of_the_label():
    type_ids, labels, g = typed_task()
    x = 4 * torch.eye(4)[labels] @ torch.randn(4, 16, generator=g)
    x += torch.randn(len(labels), 16, generator=g)
    result = selectivity(x, labels, type_ids, seed=0)
    assert isinstance(result, Selectivity)
    assert result.task_accuracy > 0.95
    assert result.control_accuracy < 0.4
    assert result.selectivity > 0.5
    assert result.type_overlap > 0.9  # types recur between train and test
    frame = result.to_frame()
    assert len(frame) == 1 and frame["selectivity"].iloc[0] == pytest.approx(result.selectivity)


def test_selectivity_about_zero_on_random_features():
    type_ids, labels, g = typed_task(8000, 1000)
    result = selectivity(torch.randn(len(labels), 16, generator=g), labels, type_ids, seed=0)
    assert result.task_accuracy < 0.32
    assert abs(result.selectivity) < 0.05  # the sampling SD of the difference is ~0.015


def test_bad_input():
    type_ids, labels, _ = typed_task(200, 20)
    with pytest.raises(ShapeError, match="type_ids"):
        control_task(type_ids[:-1], labels)
    with pytest.raises(ShapeError, match="type_ids"):
        selectivity(torch.randn(200, 3), labels, type_ids[:10])
    with pytest.raises(LabelError, match="control task gives all"):  # one type: one label
        selectivity(torch.randn(200, 3), labels, torch.zeros(200, dtype=torch.long))
