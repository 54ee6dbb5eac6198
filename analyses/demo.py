"""The embedded main job (`featurebias demo`): the three papers' questions at small sizes.

1. Train an MLP and a tiny transformer on the easy (majority of 3 bits) / hard (parity of 4
   bits) task.
2. Probe every layer; variance explained per feature per layer and over training; what the
   top PCs encode; CKA between layers and models; RSA against each feature.
3. Erase the easy feature at a middle MLP layer (LEACE, QLEACE, ALF-QLEACE) and probe again.
4. Train on erased digits and measure how much slower networks learn (prequential MDL).
"""

from __future__ import annotations

import dataclasses

from featurebias import plots
from featurebias.errors import ConfigError
from featurebias.training import TrainConfig

from . import _demo_erasure as erasure
from . import _demo_representation as rep
from . import erasure_learning_speed as els
from ._report import Report, figure_link, markdown_table


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes that finish in a few minutes on a 2-core CPU."""

    seed: int = 0
    # The synthetic task: train/val/test rows.
    sizes: tuple[int, ...] = (4096, 1024, 1024)
    # The MLP and the transformer, and how long each trains.
    mlp_hidden: tuple[int, ...] = (64, 64, 64, 64)
    mlp_steps: int = 1500
    d_model: int = 64
    n_layers: int = 2
    transformer_steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    transformer_lr: float = 1e-2
    checkpoints: int = 8
    # Measurements.
    probe_folds: int = 3
    components: int = 6
    erase_layer: int = 1  # MLP layer (0-based) where the easy feature is erased
    # Step 4: learning speed on erased digits (0 seeds skips it; `speed_tiny` for tests).
    speed_seeds: int = 2
    speed_tiny: bool = False

    def __post_init__(self) -> None:
        if len(self.sizes) != 3 or min(self.sizes) < 16:
            raise ConfigError(f"sizes must be three split sizes ≥ 16, got {self.sizes}")
        if not 0 <= self.erase_layer < len(self.mlp_hidden):
            raise ConfigError(f"erase_layer must index one of the {len(self.mlp_hidden)} MLP "
                              f"layers, got {self.erase_layer}")
        for name in ("mlp_steps", "transformer_steps", "batch_size", "probe_folds",
                     "components", "d_model", "n_layers"):
            if getattr(self, name) < (2 if name == "probe_folds" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.speed_seeds < 0:
            raise ConfigError(f"speed_seeds must be ≥ 0, got {self.speed_seeds}")


def tiny() -> Config:
    """Seconds-long settings for tests."""
    return Config(sizes=(512, 256, 256), mlp_hidden=(32, 32, 32), mlp_steps=300, d_model=32,
                  n_layers=2, transformer_steps=300, checkpoints=4, probe_folds=2,
                  components=3, speed_seeds=2, speed_tiny=True)


def run(config: Config, *, progress: bool = True) -> Report:
    report = Report("featurebias demo: which features a network represents, and how fast it "
                    "learns them")
    vectors, tokens = rep.tasks(config.sizes, config.seed)
    settings = dict(batch_size=config.batch_size, optimizer="adam", lr=config.lr,
                    eval_every=100, checkpoints=config.checkpoints, seed=config.seed,
                    feature_names=vectors.feature_names)
    runs = [
        rep.train_mlp(vectors, config.mlp_hidden,
                      TrainConfig(steps=config.mlp_steps, **settings), progress),
        rep.train_transformer(tokens, config.d_model, config.n_layers, TrainConfig(
            steps=config.transformer_steps, **{**settings, "lr": config.transformer_lr,
                                               "feature_names": tokens.feature_names}),
                              progress),
    ]
    curves = report.table("training_curves", rep.curves(runs))
    probe = report.table("probe_accuracy", rep.probes(runs, config.probe_folds, config.seed,
                                                      progress))
    ve = report.table("variance_explained", rep.variance(runs, config.seed))
    over = report.table("variance_over_training", rep.variance_over_training(runs[0],
                                                                              config.seed))
    pcs = report.table("pc_attribution", rep.principal_components(runs[0], config.components,
                                                                  config.seed))
    cka = report.table("cka", rep.cka_tables(runs))
    rsa = report.table("rsa_with_features", rep.rsa_with_features(runs))
    rep.figures(report, ve, over, probe, pcs, cka, curves)
    _narrate_representation(report, runs, curves, ve, probe, rsa, pcs)

    site = runs[0].sites[config.erase_layer]
    erased_probes, outputs = erasure.erase_and_probe(runs[0], site, "easy", config.probe_folds,
                                                     config.seed, progress)
    report.table("erasure_probes", erased_probes)
    report.table("erasure_outputs", outputs)
    report.figure("erasure_probes", plots.probe_accuracy(
        erased_probes.query("probe == 'linear'"), hue="eraser", style="feature",
        title=f"Linear probes after erasing 'easy' at {site}"))
    _narrate_erasure(report, site, erased_probes, outputs)
    if config.speed_seeds:
        _learning_speed(report, config, progress)
    return report


def _learning_speed(report: Report, config: Config, progress: bool) -> None:
    """Step 4: the `erasure_learning_speed` analysis at demo size, merged into this report."""
    speed_config = (dataclasses.replace(els.tiny(), seeds=config.speed_seeds)
                    if config.speed_tiny else els.demo_config(config.speed_seeds))
    speed = els.run(dataclasses.replace(speed_config, seed=config.seed), progress=progress)
    clash = (set(speed.tables) & set(report.tables)) | (set(speed.figures) & set(report.figures))
    if clash:  # the merged report links figures and tables by name
        raise RuntimeError(f"demo and erasure_learning_speed both produce {sorted(clash)}")
    report.tables.update(speed.tables)
    report.figures.update(speed.figures)
    body = "\n\n".join(f"### {heading}\n\n{text}" for heading, text in speed.sections)
    report.text("4. Training on erased digits: how much slower do networks learn?", body)


def _final_accuracy(curves, model: str) -> dict[str, float]:
    val = curves.query("model == @model and split == 'val' and feature != 'all'")
    last = val[val.step == val.step.max()]
    return dict(zip(last.feature, last.accuracy, strict=True))


def _narrate_representation(report, runs, curves, ve, probe, rsa, pcs) -> None:
    acc = {r.name: _final_accuracy(curves, r.name) for r in runs}
    learned = "; ".join(f"{m}: easy {a['easy']:.1%}, hard {a['hard']:.1%}" for m, a in acc.items())
    missed = [f"the {m} has not learned the {f} feature" for m, a in acc.items()
              for f, v in a.items() if v < 0.9]
    if missed:  # say so: its representation of that feature is then no evidence of bias
        learned += "; within this budget " + " and ".join(missed) + (
            " (parity of 4 bits is slow for a 2-layer transformer; `representation_bias` "
            "gives it XOR instead)")
    r2 = ve.query("measure == 'r2' and feature in ('easy', 'hard')")
    last = r2[r2.site == runs[0].sites[-1]].query("model == 'MLP'").set_index("feature").value
    table = r2.pivot_table(index=["model", "site"], columns="feature", values="value",
                           sort=False).reset_index()
    pc1 = pcs[pcs.component == 1].query("site == @pcs.site.iloc[-1]").set_index("feature").r2
    best = probe.groupby(["model", "feature"], sort=False).accuracy.max().unstack()
    rsa_last = rsa[rsa.site == runs[0].sites[-1]].set_index("feature").rsa
    report.text("1. Easy features take the representation", f"""
Validation accuracy at the end of training ({learned}). At the MLP's last hidden layer the easy
feature explains {last['easy']:.1%} of the representation's variance and the hard one
{last['hard']:.1%} (encoding R² on held-out rows):

{markdown_table(table)}

{figure_link('variance_by_layer_MLP', 'variance explained by layer, MLP')}
{figure_link('variance_by_layer_transformer', 'variance explained by layer, transformer')}

Over training (checkpoints at log-spaced steps):

{figure_link('variance_over_training', 'variance explained over training')}

The first principal component of the MLP's last layer: the easy feature explains
{pc1['easy']:.1%} of it, the hard one {pc1['hard']:.1%}.

{figure_link('pc_attribution', 'PC attribution')}
""")
    report.text("2. Probes, CKA and RSA", f"""
The best linear probe accuracy over layers, per model and feature:

{markdown_table(best.reset_index())}

{figure_link('probe_accuracy', 'probe accuracy by layer')}

RSA (Spearman) of the MLP's last layer with each feature's own dissimilarity matrix: easy
{rsa_last['easy']:.3f}, hard {rsa_last['hard']:.3f}. RSA and PCA weigh a feature by the variance
it gets, not by whether the network computes it.

{figure_link('cka', 'CKA between layers')}
{figure_link('training_curves', 'training curves')}
""")


def _narrate_erasure(report, site, probes, outputs) -> None:
    mean = probes.groupby(["eraser", "probe", "site", "feature"], sort=False).accuracy.mean()
    at = mean.xs(site, level="site").unstack(["probe", "feature"])
    at.columns = [f"{p} probe, {f}" for p, f in at.columns]
    out = outputs.pivot(index="eraser", columns="feature", values="accuracy")
    out.columns = [f"network output, {c}" for c in out.columns]
    chance = probes.query("site == @site and feature == 'easy'").chance_accuracy.mean()
    easy = mean.xs((site, "easy"), level=("site", "feature")).unstack("probe")
    report.text(f"3. Erasing the easy feature at {site}", f"""
Held-out probe accuracy at the erased layer (mean over folds), and the network's own accuracy
with the erasure in place:

{markdown_table(at.join(out).reset_index(), digits=3)}

LEACE takes the linear probe for the easy feature from {easy.linear['none']:.1%} to
{easy.linear['LEACE']:.1%} (chance {chance:.1%}); a quadratic probe still reads
{easy.quadratic['LEACE']:.1%} there, which QLEACE brings to {easy.quadratic['QLEACE']:.1%} by
also matching the class-conditional covariances.

{figure_link('erasure_probes', 'probes after erasure')}
""")
