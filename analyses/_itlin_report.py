"""Figures and narrative of the iterative-linearisation analysis, every number read from its
tables.

Every number the text states goes through `Headline`, which formats it and keeps a row
(`arch, quantity, value, kind`), so the report's `headline` table holds exactly what the prose
says and a test can check one against the other.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from featurebias import plots
from featurebias.datasets import TaskData
from featurebias.plots.linearisation import k_labels, k_palette

from ._report import Report, figure_link, markdown_table

ARCH_NAMES = {"mlp": "MLP", "small_cnn": "small CNN"}
KINDS = ("loss", "fraction", "points", "number", "step")
# Within this many accuracy points of K_ref counts as "on par" with standard training.
ON_PAR = 0.01


def show(value: float, kind: str) -> str:
    """`value` as the narrative prints it."""
    if not math.isfinite(value):
        return "n/a"
    if kind == "fraction":
        return f"{value:.1%}"
    if kind == "points":
        return f"{100 * value:.1f}"
    if kind == "number":
        return f"{value:.3f}" if abs(value) >= 1e-3 else f"{value:.1e}"
    if kind == "step":
        return f"{value:.0f}"
    return f"{value:.3f}"


def k_name(k: float) -> str:
    return "∞" if math.isinf(k) else f"{k:g}"


class Headline:
    """`say(arch, quantity, value, kind)`: the formatted value, recorded as a row."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def __call__(self, arch: str, quantity: str, value: float, kind: str) -> str:
        assert kind in KINDS, kind
        self.rows.append({"arch": arch, "quantity": quantity, "value": float(value),
                          "kind": kind})
        return show(float(value), kind)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["arch", "quantity", "value", "kind"])


def labelled(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`frame` with `every` as labels ("1", "10", "∞") and the labels in increasing K."""
    named, order = k_labels(frame["every"])
    return frame.assign(every=named), order


def figures(report: Report, tables: dict[str, pd.DataFrame], config) -> None:
    """Every figure of the report, drawn from its tables."""
    final, kernels = tables["final"], tables["kernels"]
    hue = "arch" if len(config.archs) > 1 else None
    report.figure("accuracy_vs_k", plots.accuracy_vs_k(
        final, y="test_accuracy", hue=hue, title="Test accuracy of the linearised model vs K"))
    report.figure("train_loss_vs_k", plots.accuracy_vs_k(
        final, y="train_loss", hue=hue, title="Final training loss (nats) vs K"))
    curves, order = labelled(tables["curves"])
    # The same colour for a K in every figure: the sequential K palette of the kernel plots.
    plots.set_palette(k_palette(order), kind="every")
    report.figure("training_loss", plots.learning_curves(
        curves, y="loss", hue="every", col="arch", split="train", hue_order=order,
        col_order=list(config.archs), log_y=True,
        title="Training loss of the linearised model, one line per K"))
    report.figures["training_loss"].axes[-1].get_legend().set_title("K")
    for arch in config.archs:
        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
        part = kernels[kernels.arch == arch].drop(columns="arch")
        for axis, y in zip(axes, ("kernel_distance", "kernel_velocity", "alignment"),
                           strict=True):
            plots.kernel_distance_plot(part, y=y, log_x=True, ax=axis,
                                       legend=axis is axes[-1])
        axes[1].set_yscale("log")  # velocities span orders of magnitude (K = ∞: rounding, ~1e-14)
        axes[-1].get_legend().set_title("K")
        fig.suptitle(f"{ARCH_NAMES[arch]}: the empirical NTK of f_lin on the probe batch")
        report.figure(f"kernels_{arch}", fig)


def narrative(report: Report, tables: dict[str, pd.DataFrame], config, task: TaskData) -> None:
    """The report's text: the protocol, then each finding with its numbers."""
    say = Headline()
    report.text("What this measures", _setting(config, task))
    final, kernels, gaps = tables["final"], tables["kernels"], tables["gaps"]
    for arch in config.archs:
        name = ARCH_NAMES[arch]
        report.text(f"{name}: accuracy and loss against K",
                    _performance(final[final.arch == arch], arch, say))
        report.text(f"{name}: how far the kernel moves",
                    _kernels(kernels[kernels.arch == arch], arch, config.steps, say))
        if len(gaps):
            report.text(f"{name}: the linearisation gap", _gaps(gaps[gaps.arch == arch], arch,
                                                               say))
    report.table("headline", say.frame())


def _setting(config, task: TaskData) -> str:
    shape = "×".join(str(s) for s in task.train[0].shape[1:])
    ks = sorted(math.inf if k is None else float(k) for k in config.every)
    updates = ", ".join(f"K = {k_name(k)}: U = {_updates(k, config.steps)}" for k in ks)
    archs = ", ".join(ARCH_NAMES[a] for a in config.archs)
    return f"""
Dataset `{config.dataset}`: {len(task.train[1])} training, {len(task.val[1])} validation and
{len(task.test[1])} test images of shape {shape}, {task.num_classes[0]} classes. Each run
trains the linearised network `f_lin(x; θ) = f(x; θ_lin) + J(x; θ_lin)(θ − θ_lin)` for
T = {config.steps} steps ({config.optimizer}, lr {config.lr:g}, batch {config.batch_size};
the same for every K) and sets θ_lin ← θ every K steps, so a run has U = ⌈T/K⌉ linearisation
points ({updates}). K = 1 is standard training; K = ∞ never moves θ_lin from the
initialisation (a fixed empirical NTK). Architectures: {archs}; seeds
{config.seed}–{config.seed + config.seeds - 1}. Losses are cross-entropies in nats; the
final train and test numbers are full passes of `f_lin` at the end of training, means over
seeds.

Kernels (SCIENCE §7.3–7.4): the traced empirical NTK of `f_lin` (the network's NTK at θ_lin)
on {config.probe_size} fixed training images, logged at step 0 and {config.kernel_logs - 1}
log-spaced steps; *kernel distance* `1 − ⟨K₀, K_t⟩ / (‖K₀‖‖K_t‖)` to the initial kernel
(blind to the kernel's scale, which *relative change* `‖K_t − K₀‖/‖K₀‖` sees), *velocity*
the distance between consecutive logged kernels per step, *alignment* the centred
kernel–target alignment with the probe labels.
"""


def _updates(k: float, steps: int) -> int:
    return 1 if math.isinf(k) else math.ceil(steps / k)


def _means(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.groupby("every")[columns].mean().sort_index()


def _listed(say: Headline, arch: str, quantity: str, values: pd.Series, kind: str) -> str:
    """"K = 1: x, K = 10: y, ..." with every value recorded as `"{quantity}, K=…"`."""
    return ", ".join(f"K = {k_name(k)}: {say(arch, f'{quantity}, K={k_name(k)}', v, kind)}"
                     for k, v in values.items())


def _performance(final: pd.DataFrame, arch: str, say: Headline) -> str:
    columns = ["train_loss", "test_loss", "test_accuracy", "network_test_accuracy",
               "relinearisations"]
    m = _means(final, columns)
    ref, top = m.index.min(), m.index.max()

    def cells(column: str, quantity: str, kind: str) -> list[str]:
        return [say(arch, f"{quantity}, K={k_name(k)}", v, kind) for k, v in m[column].items()]

    shown = pd.DataFrame({
        "K": [k_name(k) for k in m.index],
        "feature updates U": [say(arch, f"feature updates, K={k_name(k)}", r + 1, "step")
                              for k, r in m.relinearisations.items()],
        "train loss": cells("train_loss", "train loss", "loss"),
        "test loss": cells("test_loss", "test loss", "loss"),
        "test accuracy": cells("test_accuracy", "test accuracy", "fraction"),
        "plain network's test accuracy": cells("network_test_accuracy",
                                               "network test accuracy", "fraction"),
    })
    reference = "K = 1 (standard training)" if ref == 1 else f"K = {k_name(ref)}, the smallest K"
    worst = m.train_loss.idxmax()
    text = [markdown_table(shown), "",
            f"The highest final training loss is K = {k_name(worst)}'s: "
            f"{show(m.train_loss[worst], 'loss')}, against {show(m.train_loss[ref], 'loss')} "
            f"for {reference}."]
    gap = m.test_accuracy[ref] - m.test_accuracy[m.index != ref]
    if len(gap):
        steady = bool((gap.diff().dropna() >= 0).all())
        verdict = ("so the gap to it closes steadily as K shrinks" if steady else
                   "so the gap does not close steadily as K shrinks (seed noise, or a "
                   "non-monotone effect: compare more seeds)")
        text.append(f"Test accuracy below {reference}, in percentage points: "
                    f"{_listed(say, arch, 'accuracy gap', gap, 'points')}; {verdict}.")
        on_par = [k for k, v in gap.items() if math.isfinite(k) and v <= ON_PAR]
        if on_par:
            k = max(on_par)
            updates = show(m.relinearisations[k] + 1, "step")
            text.append(f"Already with K = {k_name(k)}, only {updates} feature updates, the "
                        f"linearised model's test accuracy is within {100 * ON_PAR:g} percentage "
                        f"point of {reference}'s.")
    if math.isinf(top):
        lin, net = m.test_accuracy[top], m.network_test_accuracy[top]
        why = (": the parameters it learns serve the linear model, not the network" if
               net < lin - ON_PAR else "")
        text.append(f"Linearised at initialisation (K = ∞), `f_lin` reaches "
                    f"{show(lin, 'fraction')} test accuracy; the plain network at the same "
                    f"parameters gets {show(net, 'fraction')}{why}.")
    text += ["", figure_link("accuracy_vs_k", "test accuracy against K"),
             figure_link("train_loss_vs_k", "final training loss against K"),
             figure_link("training_loss", "training loss curves per K")]
    return "\n".join(text)


def _kernels(kernels: pd.DataFrame, arch: str, steps: int, say: Headline) -> str:
    last = kernels[kernels.step == kernels.step.max()]
    m = _means(last, ["kernel_distance", "relative_change", "alignment"])
    ref, top = m.index.min(), m.index.max()
    text = ["Distance of the final kernel to the initial one: "
            f"{_listed(say, arch, 'final kernel distance', m.kernel_distance, 'number')}."]
    if math.isinf(top):
        frozen = kernels[kernels.every == top].kernel_distance.max()
        text.append(f"With K = ∞ the kernel does not move: its largest distance at any logged "
                    f"step is {say(arch, 'largest kernel distance, K=∞', frozen, 'number')}.")
    if ref < top:
        curve = kernels[kernels.every == ref].groupby("step").kernel_distance.mean()
        half = curve.index[curve >= curve.iloc[-1] / 2][0]
        change = say(arch, f"relative change, K={k_name(ref)}", m.relative_change[ref],
                     "number")
        share = say(arch, f"half distance fraction, K={k_name(ref)}", half / steps, "fraction")
        text.append(f"With K = {k_name(ref)} it moves by "
                    f"{show(m.kernel_distance[ref], 'number')} (relative change {change}), "
                    f"and half of that distance is covered by step "
                    f"{say(arch, f'half distance step, K={k_name(ref)}', half, 'step')} of "
                    f"{steps} (the first {share} of training).")
        start = kernels[kernels.step == 0].alignment.mean()
        end = say(arch, f"final alignment, K={k_name(ref)}", m.alignment[ref], "number")
        frozen = (f" ({say(arch, 'final alignment, K=∞', m.alignment[top], 'number')} with "
                  "K = ∞)" if math.isinf(top) else "")
        trend = ("feature learning aligns the kernel with the labels" if m.alignment[ref] > start
                 else "here the kernel does not become more aligned with the labels")
        text.append(f"Kernel–target alignment starts at "
                    f"{say(arch, 'initial alignment', start, 'number')} and ends at {end} "
                    f"with K = {k_name(ref)}{frozen}: {trend}.")
    text += ["", figure_link(f"kernels_{arch}", f"{ARCH_NAMES[arch]}: kernel distance, "
                                                 "velocity and alignment over training"),
             "(`f_lin`'s kernel changes only at feature updates: velocities near 1e-14 are the "
             "rounding error of comparing identical kernels, for K = ∞ throughout and for a "
             "finite K between two logged steps without a feature update.)"]
    return "\n".join(text)


def _gaps(gaps: pd.DataFrame, arch: str, say: Headline) -> str:
    m = gaps.groupby("every").gap.mean().sort_index()
    grows = bool((m.diff().dropna() > 0).all())
    return ("The linearisation gap `‖f(x; θ) − f_lin(x; θ)‖` (root mean square over the probe "
            "batch), measured just before each feature update (and at the end), mean over "
            f"those measurements and seeds: {_listed(say, arch, 'mean gap', m, 'number')}."
            + (" The longer θ moves without a feature update, the further the network is from "
               "its linear model." if grows else ""))
