"""Experiments `prevalence` and `order`: the same MLP, trained on skewed data or a curriculum.

`prevalence` skews one feature's training distribution (evaluation stays balanced) and asks how
its share of the variance moves; `order` trains the hard feature alone first (`first_steps`),
then both, and asks whether that closes the gap to the easy feature (SCIENCE §6.1, [S]: it
narrows it without closing it).
"""

from __future__ import annotations

import pandas as pd

from featurebias import plots

from ._repbias_lab import Lab, Variant, mean_accuracy
from ._repbias_text import Say, unlearned
from ._report import Report, figure_link

FEATURES = ["easy", "hard"]


def _at(frame: pd.DataFrame, site: str, column: str, value) -> pd.Series:
    """Seed-mean R² per feature at `site` on the rows where `column == value`."""
    rows = frame[(frame.site == site) & (frame.measure == "r2") & (frame[column] == value)]
    return rows.groupby("feature", sort=False)["value"].mean()


def _bars(frame: pd.DataFrame, site: str, column: str, labels: dict, xlabel: str, title: str):
    """Bars of R² per feature at `site`, one group per value of `column` (named by `labels`)."""
    rows = frame[frame.site == site].assign(site=frame[column].map(labels))
    fig = plots.representation_bias(rows, features=FEATURES, kind="bar",
                                    sites=list(labels.values()), title=title)
    fig.axes[0].set_xlabel(xlabel)
    return fig


def prevalence(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    name, mode = c.prevalence_feature, c.prevalence_mode
    frames, runs = [], {}
    for p in c.prevalences:
        runs[p] = [lab.mlp(Variant(s, prevalence=(name, p)), "prevalence") for s in lab.seeds]
        frames += [lab.mlp_variance(r, s).assign(prevalence=p)
                   for s, r in zip(lab.seeds, runs[p], strict=True)]
    ve = report.table("prevalence_variance", pd.concat(frames, ignore_index=True))
    last = runs[c.prevalences[0]][0].sites[-1]
    labels = {p: f"p = {p:g}" for p in c.prevalences}
    what = "P(f = 1)" if mode == "positive_rate" else "fraction of items where it varies"
    report.figure("prevalence", _bars(
        ve, last, "prevalence", labels, f"training prevalence of '{name}' ({what})",
        f"MLP {last}: variance explained vs the prevalence of '{name}'"))
    lines = []
    for p in c.prevalences:
        r2, acc = _at(ve, last, "prevalence", p), mean_accuracy(runs[p])
        lines.append(
            f"- p = {p:g}: easy {say(f'R2 easy at p={p:g}', r2['easy'])}, hard "
            f"{say(f'R2 hard at p={p:g}', r2['hard'])} (validation accuracy "
            f"{say(f'val accuracy easy at p={p:g}', acc['easy'])} / "
            f"{say(f'val accuracy hard at p={p:g}', acc['hard'])})"
            f"{unlearned(acc)}")
    body = "\n".join(lines)
    report.text(f"2. Prevalence: skewing '{name}' in training", f"""
The '{name}' feature's training distribution is skewed ({mode}: {what} = p); validation and
test sets stay balanced. Variance explained at {last} (seed means; evaluation on the balanced
test set):

{body}

{figure_link('prevalence', 'variance explained vs prevalence')}
""")


def order(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    first = c.first
    conditions = {"default": {}, f"{first} first": {"first": first}}
    runs = {label: [lab.mlp(Variant(s, **kw), "order") for s in lab.seeds]
            for label, kw in conditions.items()}
    seeds = lab.seeds

    def each(measure) -> pd.DataFrame:
        return pd.concat([measure(r, s).assign(condition=label)
                          for label, rs in runs.items() for s, r in zip(seeds, rs, strict=True)],
                         ignore_index=True)

    ve = report.table("order_variance", each(lab.mlp_variance))
    over = report.table("order_over_training", each(lab.over_training))
    last = runs["default"][0].sites[-1]
    curriculum = f"{first} first"
    panels = over[over.site == last].assign(site=over.condition)
    fig = plots.representation_bias(panels, by="step", log_x=True, features=FEATURES,
                                    sites=list(conditions),
                                    title=f"MLP {last}: variance explained over training")
    for axis in fig.axes:
        if axis.get_title() == curriculum:  # where the other feature's loss switches on
            axis.axvline(c.first_steps, color="0.4", linestyle=":", linewidth=1.2)
    report.figure("order_over_training", fig)
    report.figure("order", _bars(ve, last, "condition", {k: k for k in conditions},
                                 "training order", f"MLP {last}: default vs {curriculum}"))
    r2 = {label: _at(ve, last, "condition", label) for label in conditions}
    gap = {label: v["easy"] - v["hard"] for label, v in r2.items()}
    acc = mean_accuracy(runs[curriculum])
    other = "easy" if first == "hard" else "hard"
    if gap[curriculum] <= 0 < gap["default"]:
        verdict = "closes (or reverses) the gap"
    elif abs(gap[curriculum]) < abs(gap["default"]):
        verdict = "narrows the gap without closing it"
    elif abs(gap[curriculum]) > abs(gap["default"]):
        verdict = "widens the gap, unlike the narrowing reported for the paper [S]"
    else:
        verdict = "leaves the gap as it is"
    report.text(f"3. Learning order: '{first}' first", f"""
The curriculum trains '{first}' alone for {c.first_steps} steps, then both features for
{c.steps} steps (the default run trains both for {c.steps} steps). At {last}, R² easy / hard:
default {say('R2 easy, default', r2['default']['easy'])} /
{say('R2 hard, default', r2['default']['hard'])}, {curriculum}
{say(f'R2 easy, {curriculum}', r2[curriculum]['easy'])} /
{say(f'R2 hard, {curriculum}', r2[curriculum]['hard'])}. The easy-minus-hard gap is
{say('gap, default', gap['default'])} by default and
{say(f'gap, {curriculum}', gap[curriculum])} with the curriculum (validation accuracy after
it: {first} {say(f'val accuracy {first}, {curriculum}', acc[first])}, {other}
{say(f'val accuracy {other}, {curriculum}', acc[other])}): here the curriculum {verdict}.
{unlearned(acc, ' in the curriculum run')}

{figure_link('order', 'variance explained by training order')}
{figure_link('order_over_training', 'variance explained over training, by order')}

(The dotted line marks step {c.first_steps}, where the '{other}' loss switches on.)
""")
