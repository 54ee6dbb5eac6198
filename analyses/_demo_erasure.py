"""Demo step 3: erase the easy feature at a middle layer of the trained MLP, then ask linear and
quadratic probes (and the network's own output) what is left there and downstream."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor

from featurebias.hooks import collect, erase_at, fit_erasers
from featurebias.probes import LinearProbe, QuadraticProbe, probe_sites

from ._demo_representation import Trained, test_features

METHODS = {"LEACE": "leace", "QLEACE": "qleace", "ALF-QLEACE": "alf-qleace"}
# The class covariances of ReLU activations are singular (dead units); the quadratic methods
# need the shrinkage estimate there.
OPTIONS = {"leace": {}, "qleace": {"shrinkage": True}, "alf-qleace": {"shrinkage": True}}


def erase_and_probe(run: Trained, site: str, feature: str, folds: int, seed: int,
                    progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probe scores and output accuracy at `site` and every later site, per eraser.

    Returns `(probes, outputs)`: probe rows (`eraser`, `site`, `feature`, `probe`, `fold`,
    `accuracy`, ...) and the network's own test accuracy per feature (`eraser`, `feature`,
    `accuracy`).
    """
    model, (x_fit, y_fit) = run.model, run.task.train
    column = run.task.feature_names.index(feature)
    later = run.sites[run.sites.index(site):]
    x, feats = run.task.test[0], test_features(run.task)
    z_test = feats[feature]
    probes_, outputs = [], []
    model.eval()
    erasers: dict[str, object] = {"none": None}
    for name, method in METHODS.items():
        erasers[name] = fit_erasers(model, x_fit.split(1024), y_fit[:, column], [site],
                                    method=method, progress=False, **OPTIONS[method])[site]
    for name, eraser in erasers.items():
        acts, logits = _run(model, x, later, {site: eraser} if eraser else {}, z_test)
        for probe_name, probe in (("linear", LinearProbe()), ("quadratic", QuadraticProbe())):
            probes_.append(probe_sites(acts, feats, probe, cv=folds, seed=seed,
                                       progress=progress).assign(eraser=name, probe=probe_name))
        predicted = (logits > 0).long()
        outputs += [{"eraser": name, "feature": f, "accuracy":
                     float((predicted[:, j] == feats[f]).double().mean())}
                    for j, f in enumerate(run.task.feature_names)]
    model.train()
    return pd.concat(probes_, ignore_index=True), pd.DataFrame(outputs)


def _run(model, x: Tensor, sites: list[str], erasers: dict, labels: Tensor):
    """Activations at `sites` and the logits, with `erasers` in place (QLEACE gets labels)."""
    with torch.no_grad(), erase_at(model, erasers, labels=labels):
        store = collect(model, [x], sites, stop_early=False, progress=False)
        logits = model(x)
    return {s: store[s] for s in sites}, logits
