"""Demo steps 1–2: train an MLP and a tiny transformer on the easy/hard task, then measure how
strongly each layer represents each feature (probes, variance explained, PCs, CKA, RSA)."""

from __future__ import annotations

import pandas as pd
import torch

from featurebias import plots
from featurebias.datasets import TaskData, sequence_task, synthetic_task
from featurebias.features import pc_attribution, variance_explained
from featurebias.models import mlp, tiny_transformer
from featurebias.probes import LinearProbe, probe_sites
from featurebias.similarity import rsa, similarity_matrix
from featurebias.training import TrainConfig, train

from ._common import Trained, activations, test_features


def tasks(sizes: tuple[int, int, int], seed: int) -> tuple[TaskData, TaskData]:
    """The default easy (majority of 3) / hard (parity of 4) task, as vectors and as tokens."""
    return synthetic_task(sizes=sizes, seed=seed), sequence_task(sizes=sizes, seed=seed)


def train_mlp(task: TaskData, hidden: tuple[int, ...], config: TrainConfig,
              progress: bool) -> Trained:
    model = mlp(task.train[0].shape[1], hidden, len(task.feature_names), seed=config.seed)
    result = train(model, task.train, config, val=task.val, progress=progress)
    sites = [f"layers.{i}.hook_post" for i in range(len(hidden))]
    acts = activations(model, task.test[0], sites)
    return Trained("MLP", model, result, sites, acts, task)


def train_transformer(task: TaskData, d_model: int, n_layers: int, config: TrainConfig,
                      progress: bool) -> Trained:
    """The tiny transformer; its representation is read at `[SEP]`, where it starts to answer."""
    model = tiny_transformer(d_model=d_model, n_layers=n_layers, d_vocab=task.info["vocab_size"],
                             n_ctx=task.train[0].shape[1], seed=config.seed)
    result = train(model, task.train, config, val=task.val, progress=progress)
    sites = [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]
    acts = activations(model, task.test[0], sites, reduce=task.info["sep_position"])
    return Trained("transformer", model, result, sites, acts, task)


def curves(runs: list[Trained]) -> pd.DataFrame:
    return pd.concat([r.result.curves.assign(model=r.name) for r in runs], ignore_index=True)


def probes(runs: list[Trained], folds: int, seed: int, progress: bool) -> pd.DataFrame:
    frames = [probe_sites(r.acts, test_features(r.task), LinearProbe(), cv=folds, seed=seed,
                          progress=progress).assign(model=r.name) for r in runs]
    return pd.concat(frames, ignore_index=True)


def variance(runs: list[Trained], seed: int) -> pd.DataFrame:
    frames = [variance_explained(r.acts, test_features(r.task), seed=seed, progress=False)
              .assign(model=r.name) for r in runs]
    return pd.concat(frames, ignore_index=True)


def variance_over_training(run: Trained, seed: int) -> pd.DataFrame:
    """Variance explained at every checkpoint of `run` (the model is rebuilt per step)."""
    x = run.task.test[0]
    by_step = {step: activations(run.result.model_at(step), x, run.sites)
               for step in sorted(run.result.checkpoints)}
    return variance_explained(by_step, test_features(run.task), seed=seed,
                              progress=False).assign(model=run.name)


def principal_components(run: Trained, components: int, seed: int) -> pd.DataFrame:
    return pc_attribution(run.acts, test_features(run.task), components, seed=seed,
                          progress=False).assign(model=run.name)


def cka_tables(runs: list[Trained]) -> pd.DataFrame:
    """Linear CKA between all layers of all models (same test stimuli, so comparable)."""
    named = {f"{r.name} {s.split('.')[1]}": r.acts[s] for r in runs for s in r.sites}
    return similarity_matrix(named, measure="cka", progress=False)


def rsa_with_features(runs: list[Trained]) -> pd.DataFrame:
    """RSA of every layer with each feature's own RDM: the paper's RSA confound."""
    rows = []
    for r in runs:
        for name, values in test_features(r.task).items():
            model_of_feature = values[:, None].to(torch.float64)
            for site in r.sites:
                rows.append({"model": r.name, "site": site, "feature": name,
                             "rsa": rsa(r.acts[site], model_of_feature,
                                        rdm_metric="euclidean", compare="spearman")})
    return pd.DataFrame(rows)


def figures(report, ve: pd.DataFrame, over: pd.DataFrame, probe: pd.DataFrame,
            pcs: pd.DataFrame, cka: pd.DataFrame, train_curves: pd.DataFrame) -> None:
    for model, frame in ve.groupby("model", sort=False):
        report.figure(f"variance_by_layer_{model}", plots.representation_bias(
            frame, title=f"{model}: variance explained per feature by layer"))
    report.figure("variance_over_training", plots.representation_bias(
        over, by="step", log_x=True, title="MLP (last layer): variance explained over training",
        sites=[over.site.iloc[-1]]))
    report.figure("probe_accuracy", plots.probe_accuracy(
        probe, title="Linear probe accuracy by layer (MLP and transformer)", style="model"))
    report.figure("pc_attribution", plots.pc_attribution_plot(
        pcs, site=pcs.site.iloc[-1], title="MLP last layer: what each top PC encodes"))
    report.figure("cka", plots.similarity_heatmap(cka, title="Linear CKA between layers"))
    report.figure("training_curves", plots.learning_curves(
        train_curves, y="accuracy", hue="feature", col="model", feature=None,
        title="Validation accuracy per feature"))
