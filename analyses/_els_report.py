"""Figures and narrative of the erasure learning-speed analysis, every number read from its
tables."""

from __future__ import annotations

import math

import pandas as pd
from torch import Tensor

from featurebias import plots

from ._els_tables import CONTROL
from ._report import Report, figure_link, markdown_table

ARCH_NAMES = {"mlp": "MLP", "resmlp": "ResMLP", "lenet": "LeNet", "small_cnn": "small CNN"}
ERASER_NAMES = {"control": "control", "leace": "LEACE", "orth": "orthogonal projection",
                "oracle": "oracle LEACE", "qleace": "QLEACE", "alf-qleace": "ALF-QLEACE",
                "iterative": "iterative erasure", "random": "random subspace"}
METRIC_NAMES = {"bits_per_sample": "prequential MDL (bits per example)",
                "aulc_bits": "AULC of the validation loss (bits)",
                "test_accuracy": "test accuracy after the training run"}


def number(value: float) -> str:
    """How the narrative prints a measured value."""
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def mean_se(mean: float, se: float) -> str:
    return number(mean) if not math.isfinite(se) else f"{number(mean)} ± {number(se)}"


def figures(report: Report, tables: dict[str, pd.DataFrame], images: dict[str, Tensor],
            erasers: tuple[str, ...], archs: tuple[str, ...], num_classes: int) -> None:
    """Every figure of the report, drawn from its tables."""
    order = dict(hue_order=list(erasers))
    report.figure("mdl", plots.mdl_bars(
        tables["mdl"], x="arch", hue="eraser", order=list(archs), uniform=math.log2(num_classes),
        title="Prequential MDL per eraser and architecture", **order))
    report.figure("learning_curves", plots.learning_curves(
        tables["curves"], y="loss", hue="eraser", col="arch", split="val", col_order=list(archs),
        title="Validation loss while training on erased images", **order))
    chunks = tables["chunks"][tables["chunks"]["coder"] == "model"]
    fig = plots.learning_curves(
        chunks.rename(columns={"train_size": "step"}), y="bits_per_sample", hue="eraser",
        col="arch", split=None, col_order=list(archs), log_x=True,
        title="Prequential code: bits per example of each chunk", **order)
    for axis in fig.axes[:len(archs)]:
        axis.set_xlabel("examples the coding model was trained on")
    report.figure("mdl_chunks", fig)
    did = tables["did"][tables["did"]["metric"] == "bits_per_sample"]
    if len(did):
        a, b = (ARCH_NAMES[g] for g in did[["group_a", "group_b"]].iloc[0])
        report.figure("did", plots.did_plot(
            did, x="eraser", value="value", se="se",
            ylabel=f"DiD of MDL, {a} − {b} (bits per example)",
            title=f"Does erasure cost the {a} more than the {b}? (±1 SE)"))
    report.figure("erased_images", plots.erased_images(
        images, n=len(next(iter(images.values()))),
        title="Test images before and after erasure (each image min–max scaled)"))


def narrative(report: Report, tables: dict[str, pd.DataFrame], setting: str) -> None:
    """The report's text: the protocol, then each finding with its numbers."""
    summary, erasure = tables["summary"], tables["erasure"]
    report.text("What this measures", setting)
    report.text("1. The erasers", _erasers(erasure))
    report.text("2. Prequential MDL: how much slower the erased images are learned",
                _mdl(summary, tables["mdl"]))
    report.text("3. Learning curves", _curves(summary, tables["aulc"]))
    report.text("4. MLP against a convolutional net: difference in differences",
                _did(tables["did"], tables["mdl"]))


def _erasers(erasure: pd.DataFrame) -> str:
    shown = pd.DataFrame({"eraser": erasure["eraser"].map(ERASER_NAMES),
                          "RMS pixel edit": erasure["rms_edit"],
                          "tr Cov after / before": erasure["trace_cov_after"]
                          / erasure["trace_cov_before"],
                          "max class-mean gap": erasure["class_mean_gap"]})
    probes = ""
    if "linear_probe_accuracy" in erasure:
        shown["linear probe acc."] = erasure["linear_probe_accuracy"]
        shown["quadratic probe acc."] = erasure["quadratic_probe_accuracy"]
        prior = erasure["prior_accuracy"].iloc[0]
        probes = (f" The probes are cross-validated on the erased training images; the prior "
                  f"(majority class) reaches {number(prior)}.")
    return f"""
Each eraser is fitted once on the un-augmented training images (float64) and applied to every
split. The edit, the variance left (trace of the pixel covariance, relative to the original),
and the largest gap between a class mean and the overall mean, on the training split.{probes}

{markdown_table(shown)}

{figure_link('erased_images', 'test images before and after erasure')}
"""


def _pivot(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = summary[summary["metric"] == metric]
    cells = rows.assign(cell=[mean_se(m, s) for m, s in zip(rows["mean"], rows["se"],
                                                            strict=True)])
    table = cells.pivot(index="eraser", columns="arch", values="cell")
    table = table.loc[list(dict.fromkeys(rows["eraser"])), list(dict.fromkeys(rows["arch"]))]
    table.index = table.index.map(ERASER_NAMES)
    table.columns = table.columns.map(ARCH_NAMES)
    return table.reset_index()


def _change(summary: pd.DataFrame, eraser: str, metric: str, unit: str) -> str:
    """`LEACE raises ... on the MLP by X (control a → b)` clauses, one per architecture."""
    rows = summary[(summary["metric"] == metric) & (summary["eraser"] == eraser)]
    control = summary[(summary["metric"] == metric) & (summary["eraser"] == CONTROL)]
    base = dict(zip(control["arch"], control["mean"], strict=True))
    clauses = []
    for row in rows.itertuples():
        verb = "raises" if row.minus_control > 0 else "lowers"
        clauses.append(f"on the {ARCH_NAMES[row.arch]} it {verb} it by "
                       f"{number(abs(row.minus_control))} {unit} ({number(base[row.arch])} → "
                       f"{number(row.mean)})")
    return "; ".join(clauses)


def unlearned(mdl: pd.DataFrame, tolerance: float = 0.01) -> list[tuple[str, str]]:
    """(eraser, arch) cells whose mean code is within `tolerance` (relative) of the uniform
    code or longer: the chunk models learned nothing they could use within their budget."""
    ratio = mdl.groupby(["eraser", "arch"], sort=False)["compression"].mean()
    return [key for key, value in ratio.items() if value <= 1 + tolerance]


def _mdl(summary: pd.DataFrame, mdl: pd.DataFrame) -> str:
    erasers = [e for e in dict.fromkeys(summary["eraser"]) if e != CONTROL]
    lines = [f"- {ERASER_NAMES[e]}: {_change(summary, e, 'bits_per_sample', 'bits per example')}."
             for e in erasers]
    lead = ""
    if "leace" in erasers:
        lead = (f"Against the control, LEACE changes the MDL as follows: "
                f"{_change(summary, 'leace', 'bits_per_sample', 'bits per example')}.\n\n")
    return f"""
The prequential code length of the training labels given the (erased) images, in bits per
example (mean ± standard error over seeds); lower means the architecture learns the data from
fewer examples, and the dashed line is the uniform code (nothing learned).

{markdown_table(_pivot(summary, 'bits_per_sample'))}

{lead}Every eraser against the control:

{chr(10).join(lines)}
{_saturated(mdl)}
{figure_link('mdl', 'prequential MDL per eraser and architecture')}
{figure_link('mdl_chunks', 'code length of each chunk')}
"""


def _saturated(mdl: pd.DataFrame) -> str:
    cells = unlearned(mdl)
    if not cells:
        return ""
    names = ", ".join(f"{ERASER_NAMES[e]} on the {ARCH_NAMES[a]}" for e, a in cells)
    return (f"\nNo shorter than the uniform code (compression ≤ 1.01): {names}. There the "
            "chunk models stopped before they learned anything from the erased images (early "
            "stopping keeps the initial model, whose predictions are not quite uniform); a "
            "larger step budget or patience would tell how much slower, not whether.\n")


def _curves(summary: pd.DataFrame, aulc: pd.DataFrame) -> str:
    threshold = aulc["threshold"].iloc[0]
    reached = aulc.assign(reached=~aulc["censored"]).groupby(["eraser", "arch"], sort=False)
    counts = reached["reached"].agg(["sum", "count"]).reset_index()
    counts["runs reaching it"] = [f"{int(s)}/{int(c)}" for s, c in
                                  zip(counts["sum"], counts["count"], strict=True)]
    counts["median steps"] = [f"{v:.0f}" if math.isfinite(v) else "never" for v in
                              reached["steps_to_threshold"].median()]
    counts["eraser"] = counts["eraser"].map(ERASER_NAMES)
    counts["arch"] = counts["arch"].map(ARCH_NAMES)
    return f"""
Every cell also trains one model for a fixed number of steps on the erased training images
(augmented, then erased, when augmentation is on) and records the validation loss. Its area
under the curve (AULC, the step-averaged loss in bits; lower is faster):

{markdown_table(_pivot(summary, 'aulc_bits'))}

Test accuracy at the end of that run:

{markdown_table(_pivot(summary, 'test_accuracy'))}

Steps until the validation accuracy first reaches {number(threshold)} (median over the runs
that reach it):

{markdown_table(counts[["eraser", "arch", "runs reaching it", "median steps"]])}

{figure_link('learning_curves', 'validation loss curves')}
"""


def _did(did: pd.DataFrame, mdl: pd.DataFrame) -> str:
    if did.empty:
        return ("The difference in differences needs both architectures it compares in "
                "`archs` (`did_groups`); it was not computed.")
    a, b = (ARCH_NAMES[g] for g in did[["group_a", "group_b"]].iloc[0])
    saturated = set(unlearned(mdl))
    lines = []
    for row in did[did["metric"] == "bits_per_sample"].itertuples():
        z = row.value / row.se if row.se > 0 else math.nan
        note = ""
        if {(row.eraser, row.group_a), (row.eraser, row.group_b)} <= saturated:
            note = ("; both erased cells sit at the uniform code, so this only restates the "
                    "controls' gap with the sign flipped")
        spread = (f"value/SE = {number(z)}, {row.seeds} seeds per cell" if math.isfinite(z)
                  else "no standard error: one seed in a cell")
        lines.append(f"- {ERASER_NAMES[row.eraser]}: DiD = {mean_se(row.value, row.se)} bits "
                     f"per example ({spread}{note})")
    shown = did.assign(metric=did["metric"].map(METRIC_NAMES),
                       eraser=did["eraser"].map(ERASER_NAMES))
    return f"""
`DiD = (MDL_{a},erased − MDL_{b},erased) − (MDL_{a},control − MDL_{b},control)` (SCIENCE §4.4):
positive when erasing costs the {a} more than the {b}. The standard error is
`sqrt(Σ s²/n)` over the four cells with their own seed counts; with few seeds it is wide.

{chr(10).join(lines)}

For every metric (for test accuracy, where higher is better, a *negative* DiD means that
erasing costs the {a} more):

{markdown_table(shown[["metric", "eraser", "value", "se", "seeds"]])}

{figure_link('did', 'difference in differences')}
"""
