"""The representation-bias analysis's workbench: builds, trains and caches its models.

Every experiment asks the `Lab` for trained models by what makes them differ (seed, a feature's
prevalence, a curriculum, the targets trained); a model asked for twice is trained once, so the
default MLP of `complexity` is also the baseline of `prevalence`, `order` and `confounds`.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
from torch import Tensor

from featurebias.datasets import (
    TaskData,
    colour_shape,
    input_bits,
    sequence_task,
    synthetic_task,
)
from featurebias.datasets.synthetic import DEFAULT_FEATURES
from featurebias.features import variance_explained
from featurebias.models import mlp, small_cnn, small_resnet, tiny_transformer
from featurebias.training import TrainConfig, train

from ._common import Trained, activations, test_features


@dataclasses.dataclass(frozen=True)
class Variant:
    """What sets one MLP run apart from the default (all fields at their defaults)."""

    seed: int
    prevalence: tuple[str, float] | None = None
    """(feature, p): that feature's training prevalence (`synthetic_task`'s `prevalence`)."""
    first: str | None = None
    """Curriculum: this feature alone for `Config.first_steps` steps, then every feature."""
    only: str | None = None
    """Train on this feature's target alone (the other head is absent)."""

    @property
    def label(self) -> str:
        if self.only is not None:
            return f"{self.only} only"
        if self.first is not None:
            return f"{self.first} first"
        if self.prevalence is not None:
            return f"{self.prevalence[0]} p={self.prevalence[1]:g}"
        return "default"


class Lab:
    """Trains (once) and measures the analysis's models; collects their training curves."""

    def __init__(self, config, progress: bool):
        self.config = config
        self.progress = progress
        self.curves: list[pd.DataFrame] = []
        self._mlps: dict[Variant, Trained] = {}

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.config.seed + i for i in range(self.config.seeds))

    @property
    def slow_seeds(self) -> tuple[int, ...]:
        """Seeds of the transformers and CNNs."""
        return tuple(self.config.seed + i for i in range(self.config.slow_seeds))

    def _train_config(self, steps: int, batch_size: int, names, seed: int,
                      lr: float | None = None, **extra) -> TrainConfig:
        c = self.config
        return TrainConfig(steps=steps, batch_size=batch_size, optimizer=c.optimizer,
                           lr=c.lr if lr is None else lr,
                           eval_every=max(1, steps // 10), feature_names=tuple(names), seed=seed,
                           **extra)

    def _record(self, run: Trained, experiment: str, condition: str, seed: int) -> None:
        self.curves.append(run.result.curves.assign(experiment=experiment, model=run.name,
                                                    condition=condition, seed=seed))

    # --- MLPs on the synthetic easy/hard task -------------------------------------------

    def task(self, variant: Variant) -> TaskData:
        """The synthetic task of `variant` (the test split is the same for every variant)."""
        c = self.config
        specs = list(DEFAULT_FEATURES)
        mode = c.prevalence_mode
        if variant.prevalence is not None:
            name, p = variant.prevalence
            specs = [dataclasses.replace(s, prevalence=p) if s.name == name else s
                     for s in specs]
        curriculum = None if variant.first is None else ((variant.first,), c.first_steps)
        return synthetic_task(specs, distractors=c.distractors, sizes=c.sizes,
                              prevalence_mode=mode, curriculum=curriculum, seed=variant.seed)

    def mlp(self, variant: Variant, experiment: str) -> Trained:
        """The MLP trained as `variant` asks (cached), with its test activations per layer."""
        variant = _normalised(variant, self.config.prevalence_mode)
        if variant in self._mlps:
            return self._mlps[variant]
        c = self.config
        task = self.task(variant)
        names = task.feature_names if variant.only is None else (variant.only,)
        columns = [task.feature_names.index(n) for n in names]
        steps = c.steps + (c.first_steps if variant.first is not None else 0)
        extra = {} if variant.first is None else {"loss_start": task.info["loss_start"]}
        config = self._train_config(steps, c.batch_size, names, variant.seed,
                                    checkpoints=c.checkpoints, **extra)
        model = mlp(task.info["input_dim"], (c.width,) * c.depth, len(names),
                    seed=variant.seed)
        _to(model, c.device)
        data, val = ((x, y[:, columns]) for x, y in (task.train, task.val))
        result = train(model, data, config, val=val, progress=self.progress)
        sites = mlp_sites(c.depth)
        run = Trained(f"MLP ({variant.label})", model, result, sites,
                      activations(model, task.test[0], sites), task)
        self._mlps[variant] = run
        self._record(run, experiment, variant.label, variant.seed)
        return run

    # --- the transformer on the sequence task ----------------------------------------

    def transformer(self, order: tuple[str, ...], seed: int) -> Trained:
        """The tiny transformer on the task emitted in `order`; activations `[n, T, d]`."""
        c = self.config
        easy, hard = DEFAULT_FEATURES
        features = (easy, dataclasses.replace(hard, group_size=c.transformer_hard_bits))
        task = sequence_task(features, distractors=c.distractors, sizes=c.sizes, order=order,
                             seed=seed)
        model = tiny_transformer(d_model=c.d_model, n_layers=c.n_layers, n_heads=c.n_heads,
                                 d_vocab=task.info["vocab_size"], n_ctx=task.train[0].shape[1],
                                 seed=seed)
        _to(model, c.device)
        config = self._train_config(c.transformer_steps, c.transformer_batch_size,
                                    task.feature_names, seed, lr=c.transformer_lr)
        result = train(model, task.train, config, val=task.val, progress=self.progress)
        sites = [f"blocks.{i}.hook_resid_post" for i in range(c.n_layers)]
        run = Trained("transformer", model, result, sites,
                      activations(model, task.test[0], sites), task)
        self._record(run, "position", " then ".join(order), seed)
        return run

    # --- CNNs on colour vs shape -----------------------------------------------------

    def cnn(self, arch: str, seed: int) -> Trained:
        """`small_cnn` or `small_resnet` with one head per target, read at `hook_pooled`."""
        c = self.config
        task = colour_shape(*c.image_sizes, size=c.image_size, colours=c.colours,
                            shapes=c.shapes, seed=seed)
        # A two-class target gets one sigmoid column, a k-class one a softmax head of k.
        heads = tuple(1 if k == 2 else k for k in task.num_classes)
        build = small_cnn if arch == "small_cnn" else small_resnet
        size = {"depth" if arch == "small_cnn" else "blocks": c.cnn_depth}
        model = build(3, sum(heads), width=c.cnn_width, image_size=c.image_size, seed=seed,
                      **size)
        _to(model, c.device)
        config = self._train_config(c.cnn_steps, c.cnn_batch_size, task.feature_names, seed,
                                    lr=c.cnn_lr, heads=heads)
        result = train(model, task.train, config, val=task.val, progress=self.progress)
        sites = ["hook_pooled"]
        run = Trained(arch, model, result, sites, activations(model, task.test[0], sites), task)
        self._record(run, "colour_shape", arch, seed)
        return run

    # --- measurements ----------------------------------------------------------------

    def variance(self, acts, features: dict[str, Tensor], seed: int) -> pd.DataFrame:
        """`variance_explained` on the test split (fit and scored on its seeded halves)."""
        return variance_explained(acts, features, seed=seed, progress=False)

    def mlp_variance(self, run: Trained, seed: int) -> pd.DataFrame:
        """Variance explained by easy and hard at every MLP layer of `run`."""
        return self.variance(run.acts, test_features(run.task), seed).assign(seed=seed)

    def over_training(self, run: Trained, seed: int) -> pd.DataFrame:
        """Variance explained at every checkpoint of `run` (denominator: the last step's)."""
        x = run.task.test[0]
        by_step = {step: activations(run.result.model_at(step), x, run.sites)
                   for step in sorted(run.result.checkpoints)}
        return self.variance(by_step, test_features(run.task), seed).assign(seed=seed)


def _to(model: torch.nn.Module, device: str) -> None:
    """Move `model` to `device` unless it is there (TransformerLens prints on every move)."""
    if next(model.parameters()).device != torch.device(device):
        model.to(device)


def mlp_sites(depth: int) -> list[str]:
    return [f"layers.{i}.hook_post" for i in range(depth)]


def final_accuracy(curves: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy per feature at the last evaluation of each run (tidy)."""
    val = curves[(curves["split"] == "val") & (curves["feature"] != "all")]
    keys = ["experiment", "model", "condition", "seed"]
    last = val.groupby(keys, sort=False)["step"].transform("max")
    return val[val["step"] == last][[*keys, "step", "feature", "accuracy"]].reset_index(
        drop=True)


def mean_accuracy(runs) -> pd.Series:
    """Per feature, the last validation accuracy of each run, averaged over the runs."""
    rows = []
    for run in runs:
        val = run.result.curves
        val = val[(val["split"] == "val") & (val["feature"] != "all")]
        rows.append(val[val["step"] == val["step"].max()][["feature", "accuracy"]])
    return pd.concat(rows).groupby("feature", sort=False)["accuracy"].mean()


def _normalised(variant: Variant, mode: str) -> Variant:
    """A prevalence that draws the default data (balanced / always varying) is the default."""
    if variant.prevalence is None:
        return variant
    neutral = 0.5 if mode == "positive_rate" else 1.0
    if variant.prevalence[1] == neutral:
        return dataclasses.replace(variant, prevalence=None)
    return variant


def relevant_codes(task: TaskData, split: str = "test") -> Tensor:
    """Per row, the code of the bits that some feature reads (the stimulus 'condition')."""
    bits = input_bits(task, split)
    groups = [i for f in task.info["features"].values() for i in f["group"]]
    weights = 2 ** torch.arange(len(groups) - 1, -1, -1, device=bits.device)
    return (bits[:, groups] * weights).sum(1)
