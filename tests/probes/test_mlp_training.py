"""MLPProbe's training: our batched AdamW against torch's, a fit against a reference loop on
`torch.optim.AdamW`, and many networks trained together against each trained alone."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from featurebias.probes import MLPProbe, probe_sites
from featurebias.probes._adamw import AdamW
from featurebias.probes._mlp_train import forward, init

from .helpers import blobs, xor

SMALL = {"hidden": 16, "max_epochs": 40, "batch_size": 32, "lr": 1e-2, "patience": 4,
         "dtype": torch.float64}


def torch_adamw_run(param0, grads, lr, decay, decayed):
    """`param0` after torch's AdamW takes the steps `grads` (a list of tensors)."""
    p = param0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=lr, weight_decay=decay if decayed else 0.0)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


def test_adamw_takes_torch_adamw_steps_per_model_and_leaves_masked_models_alone():
    g = torch.Generator().manual_seed(0)
    models, size, steps = 3, 7, 6
    param0 = torch.randn(models, size, generator=g, dtype=torch.float64)
    grads = [torch.randn(models, size, generator=g, dtype=torch.float64) for _ in range(steps)]
    decay = torch.tensor([0.0, 0.1, 2.0], dtype=torch.float64)
    decayed = torch.arange(size) < 4  # the first four entries are weights, the rest biases
    # Model 2 sits out steps 1 and 4: it must take only the other steps, in order.
    active = [torch.tensor([True, True, j not in (1, 4)]) for j in range(steps)]
    param = param0.clone()
    opt = AdamW(param, lr=0.05, decay=decay, decayed=decayed)
    for g_j, on in zip(grads, active, strict=True):
        opt.step(param, g_j, on)
    for i in range(models):
        taken = [g_j[i] for g_j, on in zip(grads, active, strict=True) if on[i]]
        for cols, is_weight in ((slice(0, 4), True), (slice(4, None), False)):
            want = torch_adamw_run(param0[i, cols], [t[cols] for t in taken], 0.05,
                                   float(decay[i]), is_weight)
            torch.testing.assert_close(param[i, cols], want, rtol=1e-12, atol=1e-14)
    # A model that never steps keeps its parameters bit for bit.
    frozen = param0.clone()
    idle = AdamW(frozen, lr=0.05, decay=decay, decayed=decayed)
    idle.step(frozen, grads[0], torch.tensor([False, True, False]))
    assert torch.equal(frozen[[0, 2]], param0[[0, 2]])
    assert not torch.equal(frozen[1], param0[1])


def reference_fit(x, y, *, hidden, lr, max_epochs, batch_size, validation_fraction, patience,
                  weight_decay, seed):
    """MLPProbe's training written plainly, on torch.optim.AdamW (its draws in its order)."""
    mean, scale = x.mean(0), x.std(0, unbiased=False)
    z = (x - mean) / scale
    gen = torch.Generator().manual_seed(seed)
    params = {n: t.requires_grad_(True) for n, t in
              init(x.shape[1], hidden, int(y.max()) + 1, gen, x.dtype, x.device).items()}
    order = torch.randperm(len(z), generator=gen)
    n_val = math.floor(validation_fraction * len(z))
    train, val = order[n_val:], order[:n_val]
    opt = torch.optim.AdamW([{"params": [params["w1"], params["w2"]]},
                             {"params": [params["b1"], params["b2"]], "weight_decay": 0.0}],
                            lr=lr, weight_decay=weight_decay)
    best, best_loss, best_epoch = None, math.inf, 0
    for epoch in range(1, max_epochs + 1):
        perm = train[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(perm), batch_size):
            batch = perm[start:start + batch_size]
            opt.zero_grad()
            F.cross_entropy(forward(params, z[batch]), y[batch]).backward()
            opt.step()
        with torch.no_grad():
            loss = float(F.cross_entropy(forward(params, z[val]), y[val]))
        if loss < best_loss:
            best_loss, best_epoch = loss, epoch
            best = {n: p.detach().clone() for n, p in params.items()}
        elif epoch - best_epoch >= patience:
            break
    return best, epoch, best_epoch


def test_a_fit_equals_a_plain_training_loop_on_torch_adamw():
    x, y = blobs(230, 5, 3, signal=0.7)  # 230 rows: the last minibatch is a short one
    settings = {k: v for k, v in SMALL.items() if k != "dtype"}
    probe = MLPProbe(**SMALL, weight_decay=0.05, validation_fraction=0.2, seed=3).fit(x, y)
    params, epochs, best_epoch = reference_fit(x, y, **settings, weight_decay=0.05,
                                               validation_fraction=0.2, seed=3)
    assert (probe.n_epochs_, probe.best_epoch_) == (epochs, best_epoch)
    for name, want in params.items():
        torch.testing.assert_close(probe.params_[name], want, rtol=1e-9, atol=1e-11)


def folds(y, n_splits, seed=0):
    return [torch.as_tensor(train) for train, _ in StratifiedKFold(
        n_splits, shuffle=True, random_state=seed).split(y, y)]


@pytest.mark.parametrize(("class_weight", "validation_fraction"),
                         [(None, 0.15), ("balanced", 0.15), (None, 0.0)])
def test_networks_trained_together_equal_each_trained_alone(class_weight, validation_fraction):
    x, y = blobs(260, 6, 3, signal=0.5)
    keep = torch.cat([torch.nonzero(y != 2)[:, 0], torch.nonzero(y == 2)[:40, 0]])
    x, y = x[keep], y[keep]  # unbalanced classes, so class weights matter
    x[:, 1] *= 30  # uneven scales: each split's own standardisation matters
    trains = folds(y, 3) + [torch.arange(0, len(y), 2)]  # ragged splits: 3 folds, every other row
    decays = [0.0, 1e-2, 0.5, 1e-2]
    probe = MLPProbe(**SMALL, class_weight=class_weight, validation_fraction=validation_fraction)
    together = probe.fit_splits(x, y, trains, [{"weight_decay": d} for d in decays])
    epochs = set()
    for train, decay, got in zip(trains, decays, together, strict=True):
        want = clone(probe).set_params(weight_decay=decay).fit(x[train], y[train])
        assert (got.weight_decay_, got.n_epochs_, got.best_epoch_) == (
            want.weight_decay_, want.n_epochs_, want.best_epoch_)
        torch.testing.assert_close(torch.tensor(got.validation_loss_),
                                   torch.tensor(want.validation_loss_), rtol=1e-10, atol=0)
        for name in ("mean_", "scale_"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name))
        torch.testing.assert_close(got.predict_proba(x), want.predict_proba(x), rtol=0,
                                   atol=1e-9)
        epochs.add(got.n_epochs_)
    if validation_fraction:  # early stopping ended the networks at different epochs
        assert len(epochs) > 1


def test_cv_and_probe_sites_equal_networks_fitted_fold_by_fold():
    x, y = xor(240)
    probe = MLPProbe(**SMALL, weight_decay="cv", weight_decays=(1e-3, 1.0), cv=3).fit(x, y)
    assert probe.weight_decay_ in (1e-3, 1.0)
    assert probe.score(x, y) > 0.9  # xor: beyond any linear probe
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))
    assert len(probe.cv_results_) == 6
    for row in probe.cv_results_.itertuples():
        train, test = splits[row.fold]
        alone = MLPProbe(**SMALL, weight_decay=row.weight_decay).fit(x[train], y[train])
        logp = alone.predict_log_proba(x[test]).gather(1, y[test][:, None])
        assert row.log_loss_bits == pytest.approx(float(-logp.mean() / math.log(2)), rel=1e-8)
    table = probe_sites({"site": x}, {"xor": y}, probe=MLPProbe(**SMALL), cv=3, progress=False)
    assert bool((table["accuracy"] > 0.85).all())
    for row in table.itertuples():
        train, test = splits[row.fold]
        alone = MLPProbe(**SMALL).fit(x[train], y[train])
        assert row.accuracy == alone.score(x[test], y[test])


def test_validation_in_blocks_gives_the_same_losses(monkeypatch):
    from featurebias.probes import _mlp_train

    x, y = blobs(200, 5, 3, signal=0.5)
    probe = MLPProbe(**{**SMALL, "max_epochs": 6}, validation_fraction=0.3)
    whole = probe.fit_splits(x, y, folds(y, 2))
    monkeypatch.setattr(_mlp_train, "VALIDATION_BLOCK", 2 * 5 * 7)  # 7 rows per block
    blocked = probe.fit_splits(x, y, folds(y, 2))
    for a, b in zip(whole, blocked, strict=True):
        assert len(a.validation_loss_) == 6
        torch.testing.assert_close(torch.tensor(a.validation_loss_),
                                   torch.tensor(b.validation_loss_), rtol=1e-12, atol=0)
