"""`probe_sites`: cross-validated probes for every site × feature of an activation store."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from torch import Tensor

from .. import _validate as check
from .._progress import tqdm
from ..errors import ConfigError, FeatureBiasError, LabelError, ShapeError
from ..layout import check_reduce, rows
from . import _data
from .linear import LinearProbe

COLUMNS = ["site", "feature", "probe", "fold", "accuracy", "log_loss_bits", "chance_accuracy",
           "chance_log_loss_bits", "n_train", "n_test"]


def probe_sites(acts, labels, probe=None, cv: int = 5, *, features=None, reduce=None,
                seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Fit a fresh clone of `probe` on every fold of every site × feature; held-out scores.

    Args:
        acts: an `ActivationStore` or a dict `{site: tensor [n, ...]}`.
        labels: integer labels `[n]` (feature name `"label"`), or `{feature: labels}`.
            Token activations `[b, t, d]` take labels `[b]` (repeated over positions) or
            `[b, t]`, as in `featurebias.layout`.
        probe: an unfitted probe (default `LinearProbe()`); cloned for every fit.
        cv: number of stratified folds (seeded by `seed`). When every token of a `[b, t, d]`
            activation is a row, the folds keep each sequence's tokens together.
        features: the names of `labels` to probe (default all).
        reduce: token reduction for `[b, t, d]` activations (`None`, `"mean"`, `"last"`, int).

    Returns one row per site × feature × fold: accuracy and log-loss (bits) on the test fold,
    next to the chance baseline (the train fold's majority class and class frequencies,
    scored on the test fold), and the fold sizes.
    """
    probe = LinearProbe() if probe is None else probe
    check.positive_int(cv, "cv", minimum=2)
    check_reduce(reduce)
    if not (hasattr(probe, "fit") and hasattr(probe, "get_params")):
        raise ConfigError(f"probe must be a scikit-learn style estimator, got {probe!r}")
    sites = _sites(acts)
    named = _labels(labels, features)
    jobs = [(site, name) for site in sites for name in named]
    out = []
    with tqdm(total=len(jobs) * cv, desc="probe_sites", disable=not progress) as bar:
        for site in sites:
            act = check.as_tensor(acts[site], f"activations of site {site!r}")
            for name, y in named.items():
                out.extend(_one(site, name, act, y, probe, cv, reduce, seed, bar))
    return pd.DataFrame(out, columns=COLUMNS)


def _sites(acts) -> list[str]:
    if isinstance(acts, Mapping):
        sites = list(acts)
    elif hasattr(acts, "sites") and hasattr(acts, "__getitem__"):
        sites = list(acts.sites)
    else:
        raise ConfigError(f"acts must be an ActivationStore or a dict {{site: tensor}}, got "
                          f"{type(acts).__name__}")
    if not sites:
        raise ConfigError("acts holds no sites")
    return sites


def _labels(labels, features) -> dict[str, Tensor]:
    named = dict(labels) if isinstance(labels, Mapping) else {"label": labels}
    if not named:
        raise ConfigError("labels holds no features")
    if features is not None:
        features = [features] if isinstance(features, str) else list(features)
        missing = [f for f in features if f not in named]
        if missing:
            raise ConfigError(f"features {missing} are not in labels; available: {list(named)}")
        named = {f: named[f] for f in features}
    return {name: check.as_tensor(y, f"labels[{name!r}]") for name, y in named.items()}


def _one(site, name, act, y, probe, cv, reduce, seed, bar) -> list[dict]:
    if act.ndim < 2:
        raise ShapeError(f"activations of site {site!r} have shape {tuple(act.shape)}; "
                         "expected [n, ...]")
    try:
        x, z = rows(act, y.to(act.device), reduce)
        x, classes, ids = _data.fit_inputs(x, z)
    except FeatureBiasError as e:  # the same error, saying where it happened
        raise type(e)(f"site {site!r}, feature {name!r}: {e}") from e
    per_token = act.ndim == 3 and reduce is None
    counts = torch.bincount(ids).cpu()
    if int(counts.min()) < cv:
        raise LabelError(f"site {site!r}, feature {name!r}: class "
                         f"{int(classes[int(counts.argmin())])} has {int(counts.min())} rows; "
                         f"{cv}-fold stratified CV needs at least {cv} per class")
    y_np = ids.cpu().numpy()
    if per_token:  # tokens of one sequence share context: keep them in one fold
        groups = np.repeat(np.arange(act.shape[0]), act.shape[1])
        splits = StratifiedGroupKFold(cv, shuffle=True, random_state=seed).split(y_np, y_np,
                                                                                 groups)
    else:
        splits = StratifiedKFold(cv, shuffle=True, random_state=seed).split(y_np, y_np)
    k = len(classes)
    splits = [tuple(torch.as_tensor(rows, device=x.device) for rows in split) for split in splits]
    trains = [train for train, _ in splits]
    if hasattr(probe, "fit_splits"):  # a featurebias probe: may fit all folds at once
        models = probe.fit_splits(x, classes[ids], trains)
    else:
        models = [clone(probe).fit(x[train], classes[ids[train]]) for train in trains]
    records = []
    for fold, ((train, test), model) in enumerate(zip(splits, models, strict=True)):
        logp = _data.full_log_proba(model, x[test], classes)
        accuracy, bits = _data.scores(logp, ids[test])
        chance_acc, chance_bits = _data.prior_scores(ids[train], ids[test], k)
        records.append({"site": site, "feature": name, "probe": type(probe).__name__,
                        "fold": fold, "accuracy": accuracy, "log_loss_bits": bits,
                        "chance_accuracy": chance_acc, "chance_log_loss_bits": chance_bits,
                        "n_train": len(train), "n_test": len(test)})
        bar.update()
    return records
