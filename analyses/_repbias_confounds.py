"""Experiment `confounds`: what the bias does to RSA, CKA and linear probes (SCIENCE §6.4).

RSA/CKA compare models trained on the same easy + hard task (different seeds) with models
trained on the easy (or hard) feature alone, on one shared stimulus set: RSA uses
correlation-distance RDMs over the conditions defined by the task-relevant bits (distractors
averaged out), compared with Spearman. Linear probes read each feature per layer, and from
only the top-k principal components of the last layer.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import pandas as pd
import torch

from featurebias import plots
from featurebias.probes import LinearProbe, probe_sites
from featurebias.similarity import similarity_matrix

from ._common import Trained, activations, test_features
from ._repbias_lab import Lab, Variant, relevant_codes
from ._repbias_text import Say
from ._report import Report, figure_link

FEATURES = ["easy", "hard"]


def _models(lab: Lab) -> tuple[dict[str, Trained], dict[str, int]]:
    """Two or more easy + hard models (seeds), one easy-only and one hard-only model.

    Returns the models by name, and the seeds of the easy + hard ones by name.
    """
    seeds = lab.seeds if len(lab.seeds) >= 2 else (lab.seeds[0], lab.seeds[0] + 1)
    same = {f"easy+hard s{s}": s for s in seeds}
    models = {name: lab.mlp(Variant(s), "confounds") for name, s in same.items()}
    for only in FEATURES:
        models[f"{only} only"] = lab.mlp(Variant(seeds[0], only=only), "confounds")
    return models, same


def _similarity(lab: Lab, models: dict[str, Trained]) -> tuple[pd.DataFrame, str]:
    """RSA and CKA between every pair of models at one layer, on the first seed's test items."""
    stimuli = next(iter(models.values()))
    site = stimuli.sites[lab.config.confound_site]
    x = stimuli.task.test[0]
    acts = {name: activations(run.model, x, [site])[site] for name, run in models.items()}
    rsa = similarity_matrix(acts, measure="rsa", conditions=relevant_codes(stimuli.task),
                            progress=False)
    cka = similarity_matrix(acts, measure="cka", progress=False)
    return pd.concat([rsa, cka], ignore_index=True).assign(site=site), site


def _pc_probe_acts(run: Trained, site: str, counts) -> dict[str, torch.Tensor]:
    """The test activations at `site` projected on the top-k PCs of the validation ones."""
    fit = activations(run.model, run.task.val[0], [site])[site].to(torch.float64)
    mean = fit.mean(0)
    basis = torch.linalg.svd(fit - mean, full_matrices=False).Vh  # rows: PCs, largest first
    scores = (run.acts[site].to(torch.float64) - mean) @ basis.T
    return {f"top {k}": scores[:, :k] for k in counts}


def _probes(lab: Lab, models: dict[str, Trained],
            seeds: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probe scores per layer, and on the top PCs of the last layer, of the easy+hard models."""
    c = lab.config
    layer, pcs = [], []
    for name, seed in seeds.items():
        run = models[name]
        feats = test_features(run.task)
        layer.append(probe_sites(run.acts, feats, LinearProbe(), cv=c.probe_folds, seed=seed,
                                 progress=False).assign(seed=seed))
        site = run.sites[-1]
        frame = probe_sites(_pc_probe_acts(run, site, c.pc_counts), feats, LinearProbe(),
                            cv=c.probe_folds, seed=seed, progress=False)
        pcs.append(frame.assign(seed=seed, components=frame.site.str.split().str[1].astype(int),
                                layer=site))
    return pd.concat(layer, ignore_index=True), pd.concat(pcs, ignore_index=True)


def _mean_pair(sim: pd.DataFrame, measure: str, left, right) -> float:
    """Mean `measure` over the pairs (a, b), a in `left`, b in `right`, a ≠ b."""
    rows = sim[sim.measure == measure].set_index(["x", "y"])["value"]
    pairs = [(a, b) for a, b in itertools.product(left, right) if a != b]
    return float(sum(rows[p] for p in pairs) / len(pairs))


def _verdict(stat: dict) -> str:
    """Whether RSA/CKA rate the same-task pair below the easy-only comparison."""
    below = [m.upper() for m in ("rsa", "cka") if stat[m, "same"] < stat[m, "easy only"]]
    if not below:
        return ("Here both measures rate the two easy+hard models as more alike than either is "
                "to the easy-only model.")
    return (f"{' and '.join(below)} rate{'s' if len(below) == 1 else ''} the two models that "
            "compute the same features as less alike than one of them is to a model that "
            "ignores the hard feature: the easy feature dominates the comparison.")


def _probe_verdict(hard_on_top: float, k: int) -> str:
    """Whether a probe on the top-k PCs misses the hard feature the network computes."""
    if hard_on_top < 0.75:
        return (f"The networks compute the hard feature, yet a probe restricted to the top {k} "
                "PC(s), the dominant directions, would call it (nearly) absent.")
    return f"Here even the top {k} PC(s) carry the hard feature."


def confounds(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    models, seeds = _models(lab)
    sim, site = _similarity(lab, models)
    sim = report.table("confounds_similarity", sim)
    layer, pcs = _probes(lab, models, seeds)
    layer = report.table("confounds_layer_probes", layer)
    pcs = report.table("confounds_pc_probes", pcs)

    names = list(models)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    for axis, measure in zip(axes, ("rsa", "cka"), strict=True):
        plots.similarity_heatmap(sim[sim.measure == measure], order=names, ax=axis,
                                 title=f"{measure.upper()} at {site}")
    axes[1].set_yticklabels([])  # the same models, in the same order, as on the left
    report.figure("confounds_similarity", fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    plots.probe_accuracy(layer, hue_order=FEATURES, legend=False, ax=axes[0],
                         title="Linear probes per layer")
    plots.probe_accuracy(pcs, hue_order=FEATURES, ax=axes[1],
                         title=f"Linear probes on the top PCs of {pcs.layer.iloc[0]}")
    axes[1].set_xlabel("principal components kept")
    report.figure("confounds_probes", fig)

    same = list(seeds)
    stat = {(m, other): _mean_pair(sim, m, same, same if other == "same" else [other])
            for m in ("rsa", "cka") for other in ("same", "easy only", "hard only")}
    acc_layer = layer.groupby(["site", "feature"], sort=False)["accuracy"].mean()
    acc_pc = pcs.groupby(["components", "feature"], sort=False)["accuracy"].mean()
    first_site, last_site = layer.site.iloc[0], layer.site.iloc[-1]
    k_lo, k_hi = min(c.pc_counts), max(c.pc_counts)

    def sims(m: str) -> str:
        return (f"{say(f'{m} easy+hard vs easy+hard', stat[m, 'same'], 'correlation')} "
                f"between easy+hard models, "
                f"{say(f'{m} easy+hard vs easy only', stat[m, 'easy only'], 'correlation')} "
                f"from an easy+hard model to the easy-only model and "
                f"{say(f'{m} easy+hard vs hard only', stat[m, 'hard only'], 'correlation')} "
                f"to the hard-only one")

    def probe(feature: str, where: str, value: float) -> str:
        return say(f"probe accuracy {feature}, {where}", value)

    report.text("6. Confounds: RSA, CKA and probes", f"""
Models compared at {site} on the same {len(next(iter(models.values())).task.test[0])} test
items: {', '.join(names)}. Mean RSA (Spearman correlation of correlation-distance RDMs): {sims(
'rsa')}. Mean linear CKA: {sims('cka')}. {_verdict(stat)}

{figure_link('confounds_similarity', 'RSA and CKA between models')}

Linear probes (held-out accuracy, {c.probe_folds}-fold, mean over easy+hard models): at
{first_site} easy {probe('easy', first_site, acc_layer[first_site, 'easy'])}, hard
{probe('hard', first_site, acc_layer[first_site, 'hard'])}; at {last_site} easy
{probe('easy', last_site, acc_layer[last_site, 'easy'])}, hard
{probe('hard', last_site, acc_layer[last_site, 'hard'])}. Restricted to the top {k_lo} PC(s) of
{last_site}: easy {probe('easy', f'top {k_lo} PCs', acc_pc[k_lo, 'easy'])}, hard
{probe('hard', f'top {k_lo} PCs', acc_pc[k_lo, 'hard'])}; with {k_hi}: easy
{probe('easy', f'top {k_hi} PCs', acc_pc[k_hi, 'easy'])}, hard
{probe('hard', f'top {k_hi} PCs', acc_pc[k_hi, 'hard'])} (chance: 50 %). {_probe_verdict(
acc_pc[k_lo, 'hard'], k_lo)}

{figure_link('confounds_probes', 'linear probes per layer and on top PCs')}
""")
