"""The datasets plug into `featurebias.training.train` as the shared contract says."""

from __future__ import annotations

import torch

from featurebias.datasets import digits, erase_dataset, synthetic_task
from featurebias.models import mlp
from featurebias.training import TrainConfig, train


def test_curriculum_from_info_keeps_the_late_head_frozen():
    task = synthetic_task(sizes=(512, 128, 128), curriculum=({"easy"}, 30), seed=0)
    model = mlp(task.info["input_dim"], (16,), out_dim=2, seed=0)
    last = [model.head.weight, model.head.bias]  # one output row per feature
    start = [p.detach().clone() for p in last]
    config = TrainConfig(steps=20, batch_size=64, eval_every=10,
                         loss_start=task.info["loss_start"], feature_names=task.feature_names)
    result = train(model, task.train, config, val=task.val, progress=False)
    # the hard feature's output row gets no gradient before its start step
    assert torch.equal(last[0][1], start[0][1]) and torch.equal(last[1][1], start[1][1])
    assert not torch.equal(last[0][0], start[0][0])
    assert set(result.curves["feature"]) == {"all", "easy", "hard"}


def test_training_on_erased_batches_uses_the_transform():
    task = digits(seed=0, flat=True)
    erased = erase_dataset(task, "leace", augment=lambda x, y: (x, y))
    seen = []

    def spy(x, y):
        out = erased.transform(x, y)
        seen.append(out[0])
        return out

    model = mlp(64, (16,), out_dim=10, seed=0)
    train(model, erased.train, TrainConfig(steps=3, batch_size=32, eval_every=3),
          val=erased.val, transform=spy, progress=False)
    assert len(seen) == 3
    eraser = erased.eraser
    for batch in seen:  # every batch the model saw is in the erased subspace: P x = x about μ
        assert torch.allclose(eraser(batch), batch, atol=1e-5)
