"""Experiment `complexity`: the easy feature takes the MLP's representation (SCIENCE §6.2–6.3).

Per seed, one MLP on the default task; per layer, the variance each feature explains (and its
unique share), the same over training, what the top PCs and single units encode, and how
strongly the hard feature's sub-components (its bits, their XORs) are represented.
"""

from __future__ import annotations

import pandas as pd

from featurebias import plots
from featurebias.datasets import subcomponents
from featurebias.features import pc_attribution, unit_density, unit_selectivity

from ._common import Trained, test_features
from ._repbias_lab import Lab, Variant, mean_accuracy
from ._repbias_text import Say, unlearned
from ._report import Report, figure_link, markdown_table

FEATURES = ["easy", "hard"]


def complexity(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    runs = {s: lab.mlp(Variant(s), "complexity") for s in lab.seeds}
    sites = next(iter(runs.values())).sites
    last = sites[-1]

    def each(measure) -> pd.DataFrame:
        return pd.concat([measure(run, seed).assign(seed=seed) for seed, run in runs.items()],
                         ignore_index=True)

    ve = report.table("complexity_variance", each(lab.mlp_variance))
    over = report.table("complexity_over_training", each(lab.over_training))
    pcs = report.table("complexity_pcs", each(lambda r, s: pc_attribution(
        {last: r.acts[last]}, test_features(r.task), c.components, seed=s, progress=False)))
    units = report.table("complexity_units", each(lambda r, s: unit_selectivity(
        r.acts, test_features(r.task), seed=s, progress=False)))
    density = report.table("complexity_unit_density", each(lambda r, s: unit_density(
        r.acts, test_features(r.task), c.unit_threshold, seed=s, progress=False)))
    subs = report.table("complexity_subcomponents", each(
        lambda r, s: _subcomponents(lab, r, s)))

    first = lab.seeds[0]
    report.figure("complexity_by_layer", plots.representation_bias(
        ve, features=[*FEATURES, "joint"], sites=sites,
        title="MLP: variance explained per feature by layer"))
    report.figure("complexity_over_training", plots.representation_bias(
        over, by="step", log_x=True, sites=[last], features=FEATURES,
        title=f"MLP {last}: variance explained over training"))
    report.figure("complexity_pcs", plots.pc_attribution_plot(
        pcs[pcs.seed == first], site=last, components=c.components,
        title=f"MLP {last} (seed {first}): what the top PCs encode"))
    by_kind = _by_kind(subs)
    report.figure("complexity_subcomponents", plots.representation_bias(
        by_kind, features=list(dict.fromkeys(by_kind.feature)), sites=sites,
        title="Hard feature (parity): sub-components vs the parity itself"))
    _narrate(lab, report, say, runs, sites, ve, over, pcs, units, density, by_kind)


def _subcomponents(lab: Lab, run: Trained, seed: int) -> pd.DataFrame:
    """Variance explained by the hard feature's bits, their XORs, and the parity itself."""
    group = run.task.info["features"]["hard"]["group"]
    order = min(lab.config.subcomponent_order, len(group) - 1)  # the full XOR is the parity
    features = {**subcomponents(run.task, "hard", "test", order=order),
                "hard": test_features(run.task)["hard"]}
    frame = lab.variance(run.acts, features, seed)
    return frame.assign(kind=frame.feature.map(kind_of))


def kind_of(name: str) -> str:
    """The sub-component family of a feature name from `subcomponents` ("hard.b3^b4", ...)."""
    if name == "hard":
        return "parity (hard)"
    if name == "joint":
        return "joint"
    bits = name.count("^") + 1
    return {1: "single bits", 2: "pairwise XORs"}.get(bits, f"{bits}-bit XORs")


def _by_kind(subs: pd.DataFrame) -> pd.DataFrame:
    """Mean R² per sub-component family, site and seed (a variance_explained-shaped frame)."""
    r2 = subs[(subs.measure == "r2") & (subs.kind != "joint")]
    mean = r2.groupby(["seed", "site", "kind"], sort=False)["value"].mean().reset_index()
    return mean.rename(columns={"kind": "feature"}).assign(measure="r2")


def _mean(frame: pd.DataFrame, **equal) -> pd.Series:
    """Mean over seeds of `value`, per feature, on the rows matching `equal`."""
    rows = frame
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    return rows.groupby("feature", sort=False)["value"].mean()


def half_final_step(over: pd.DataFrame, site: str, feature: str) -> float:
    """First checkpoint at which the seed-mean R² of `feature` reaches half its final value."""
    rows = over[(over.site == site) & (over.measure == "r2") & (over.feature == feature)]
    curve = rows.groupby("step")["value"].mean().sort_index()
    final = curve.iloc[-1]
    if not final > 0:
        return float("nan")
    return float(curve[curve >= final / 2].index[0])


def _narrate(lab, report, say, runs, sites, ve, over, pcs, units, density, by_kind) -> None:
    c = lab.config
    last, first_site = sites[-1], sites[0]
    acc = mean_accuracy(runs.values())
    r2 = _mean(ve, site=last, measure="r2")
    unique = _mean(ve, site=last, measure="unique")
    residual = _mean(ve, site=last, measure="residual")["joint"]
    table = ve[ve.measure == "r2"].pivot_table(index="site", columns="feature", values="value",
                                               sort=False)[[*FEATURES, "joint"]].reset_index()
    m = min(c.components, int(pcs.component.max()))
    top = pcs[pcs.component == m].groupby("feature", sort=False)["cumulative_fraction"].mean()
    pc1 = pcs[pcs.component == 1].groupby("feature", sort=False)["cumulative_fraction"].mean()
    dens = density[density.site == last].groupby("feature", sort=False)["density"].mean()
    best = units[units.site == last].groupby("seed")["feature"].apply(
        lambda f: (f == "easy").mean()).mean()
    kinds = by_kind.groupby(["site", "feature"], sort=False)["value"].mean()
    s = say
    sub_lines = "\n".join(
        f"- at {site}: single bits {s(f'single bits R2 at {site}', kinds[site, 'single bits'])}"
        f", pairwise XORs {s(f'pairwise XORs R2 at {site}', kinds[site, 'pairwise XORs'])}"
        f", the parity itself {s(f'parity R2 at {site}', kinds[site, 'parity (hard)'])}"
        for site in dict.fromkeys([first_site, last]))
    above = [site for site in sites if kinds[site, "single bits"] > kinds[site, "parity (hard)"]]
    sub_verdict = (f"The single bits outweigh the parity itself at {len(above)} of the "
                   f"{len(sites)} layers ({', '.join(above) or 'none'}).")
    report.text("1. Complexity: the easy feature takes the representation", f"""
An MLP ({c.depth} × {c.width}, {len(runs)} seed(s)) learns both features: validation accuracy
easy {s('val accuracy easy', acc['easy'])}, hard {s('val accuracy hard', acc['hard'])}. At its
last hidden layer ({last}) the easy feature explains {s('R2 easy, last layer', r2['easy'])} of
the variance and the hard one {s('R2 hard, last layer', r2['hard'])} (unique shares
{s('unique easy, last layer', unique['easy'])} and
{s('unique hard, last layer', unique['hard'])}); {s('residual, last layer', residual)} is
explained by neither (the paper's headline, at 4 × 256: 55 % vs 5 %).{unlearned(acc)}

Mean R² per layer:

{markdown_table(table)}

{figure_link('complexity_by_layer', 'variance explained per feature by layer')}

Over training (denominator: the last checkpoint's variance), the easy feature's R² at {last}
reaches half its final value by step {s('half-final step easy', half_final_step(over, last,
'easy'), 'step')}, the hard feature's by step {s('half-final step hard',
half_final_step(over, last, 'hard'), 'step')}.

{figure_link('complexity_over_training', 'variance explained over training')}

The top {m} principal components at {last}: {s(f'top-{m} PC share easy', top['easy'])} of their
variance is due to the easy feature and {s(f'top-{m} PC share hard', top['hard'])} to the hard
one (PC 1 alone: {s('PC1 share easy', pc1['easy'])} vs {s('PC1 share hard', pc1['hard'])}).
Units: {s('unit density easy', dens['easy'])} of the units at {last} have R² > {c.unit_threshold:g}
with the easy feature, {s('unit density hard', dens['hard'])} with the hard one, and
{s('units best explained by easy', best)} of the units are best explained by the easy feature.

{figure_link('complexity_pcs', 'PC attribution')}

The hard feature's sub-components against the parity itself (mean R² per family):

{sub_lines}

{sub_verdict}

{figure_link('complexity_subcomponents', 'sub-components of the hard feature')}
""")
