"""Frames for the plot tests: from the real producers where cheap, else shaped like them."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from featurebias.features import pc_attribution, variance_explained
from featurebias.probes import probe_sites
from featurebias.similarity import similarity_matrix

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


def planted(n: int = 120, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Three sites where the easy feature fades and the hard one grows with depth."""
    g = torch.Generator().manual_seed(seed)
    easy = torch.randint(0, 2, (n,), generator=g)
    hard = torch.randint(0, 3, (n,), generator=g)
    acts = {site: torch.randn(n, 5, generator=g, dtype=torch.float64)
            + (2 - i) * easy[:, None] + 0.7 * i * hard[:, None]
            for i, site in enumerate(SITES)}
    return acts, {"easy": easy, "hard": hard}


def variance(seeds: int = 1, steps: tuple[int, ...] | None = None) -> pd.DataFrame:
    out = []
    for seed in range(seeds):
        acts, feats = planted(seed=seed)
        if steps is not None:  # checkpoints: the later, the stronger the signal
            acts = {s: {k: v * (1 + s / 10) for k, v in acts.items()} for s in steps}
        out.append(variance_explained(acts, feats, seed=seed, progress=False).assign(seed=seed))
    return pd.concat(out, ignore_index=True) if seeds > 1 else out[0].drop(columns="seed")


def pcs(n_components: int = 4) -> pd.DataFrame:
    acts, feats = planted()
    return pc_attribution(acts, feats, n_components, progress=False)


@functools.cache  # the slowest producer; callers copy before changing it
def probes() -> pd.DataFrame:
    acts, feats = planted(n=60)
    # A scikit-learn probe: the same probe_sites frame without the torch probes' warm-up.
    return probe_sites({s: acts[s] for s in SITES[:2]}, feats, LogisticRegression(), cv=2,
                       progress=False)


def similarity(measure: str = "cka") -> pd.DataFrame:
    acts, _ = planted(n=40)
    return similarity_matrix(acts, measure=measure, progress=False)


def curves(seeds: int = 3, archs=("mlp", "lenet"), erasers=("none", "LEACE")) -> pd.DataFrame:
    """`TrainResult.curves` rows stacked over eraser × arch × seed (the sweep layout)."""
    rng = np.random.default_rng(0)
    rows = []
    for arch in archs:
        for i, eraser in enumerate(erasers):
            for seed in range(seeds):
                for step in (0, 10, 100, 300):
                    for split in ("train", "val"):
                        for feature in ("all", "easy"):
                            loss = 2.3 * np.exp(-step / (100 * (i + 1))) + 0.05 * rng.random()
                            rows.append({"step": step, "split": split, "feature": feature,
                                         "loss": loss, "accuracy": 1 - loss / 2.3,
                                         "eraser": eraser, "arch": arch, "seed": seed})
    return pd.DataFrame(rows)


def mdl(seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"eraser": e, "arch": a, "seed": s, "bits_per_sample": b + rng.random()}
                         for a in ("mlp", "lenet") for e, b in (("none", 1.0), ("LEACE", 2.0),
                                                                ("QLEACE", 2.5))
                         for s in range(seeds)])


def did() -> pd.DataFrame:
    return pd.DataFrame({"width": [16, 32, 64], "value": [0.1, 0.3, -0.2], "se": [0.05, 0.1, 0.2]})


KS = (1, 4, 16, None)


def every(seeds: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame([{"every": k, "seed": s, "train_loss": rng.random(),
                          "test_accuracy": (0.6 if k is None else 0.9 - 0.01 * k)
                          + 0.01 * rng.random()} for k in KS for s in range(seeds)])


def kernels(seeds: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"step": step, "every": k, "seed": s,
                          "kernel_distance": 0.0 if k is None else step / (1000 * k)
                          + 0.01 * rng.random()}
                         for k in KS for s in range(seeds) for step in (0, 10, 100, 1000)])


def images(n: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 64, generator=g)
    return {"original": x, "LEACE": x - x.mean(0) + 0.3 * torch.randn(n, 64, generator=g)}
