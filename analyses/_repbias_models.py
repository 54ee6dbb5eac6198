"""Experiments `position` (tiny transformer) and `colour_shape` (plain CNN vs ResNet).

`position`: the same features emitted as tokens in either order; the residual stream is read
after every layer at `[SEP]` (which predicts the first feature) and at each later output
position. `colour_shape`: colour (easy) and shape (hard) of one object per image, read at the
pooled layer of a non-residual CNN and of a ResNet (SCIENCE §6.1, [S]: colour bias for the
plain CNN, shape bias for the ResNet).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from featurebias import plots

from ._common import Trained, test_features
from ._repbias_lab import Lab, mean_accuracy
from ._repbias_text import Say, unlearned
from ._report import Report, figure_link, markdown_table

FEATURES = ["easy", "hard"]
ORDERS = {"easy first": ("easy", "hard"), "hard first": ("hard", "easy")}
ARCHS = ("small_cnn", "small_resnet")


def _position_name(slot: int) -> str:
    """Slot 0 reads at `[SEP]`; slot j > 0 at the j-th output token (it predicts output j+1)."""
    return "[SEP]" if slot == 0 else f"out {slot}"


def _positions(lab: Lab, run: Trained, label: str, seed: int) -> pd.DataFrame:
    """Variance explained per layer × read position of one transformer run."""
    positions = run.task.info["output_positions"]
    acts, where = {}, {}
    for layer, site in enumerate(run.sites):
        for slot, pos in enumerate(positions):
            name = f"L{layer} {_position_name(slot)}"
            acts[name] = run.acts[site][:, pos]
            where[name] = (layer, _position_name(slot))
    frame = lab.variance(acts, test_features(run.task), seed)
    decoded = {f: ORDERS[label].index(f) + 1 for f in FEATURES}
    return frame.assign(order=label, seed=seed,
                        layer=frame.site.map(lambda s: where[s][0]),
                        position=frame.site.map(lambda s: where[s][1]),
                        decoded=frame.feature.map(decoded).astype("Int64"))  # <NA>: joint


def position(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    runs = {label: [lab.transformer(order, s) for s in lab.slow_seeds]
            for label, order in ORDERS.items()}
    ve = report.table("position_variance", pd.concat(
        [_positions(lab, r, label, s) for label, rs in runs.items()
         for s, r in zip(lab.slow_seeds, rs, strict=True)], ignore_index=True))
    names = list(dict.fromkeys(ve.site))
    fig, axes = plt.subplots(1, len(ORDERS), figsize=(4.2 * len(ORDERS) + 1.5, 3.8),
                             sharey=True, layout="constrained")
    for i, (axis, label) in enumerate(zip(axes, ORDERS, strict=True)):
        plots.representation_bias(ve[ve.order == label], features=FEATURES, sites=names,
                                  legend=i == len(ORDERS) - 1, ax=axis, title=label)
        axis.set_xlabel("layer and read position")
    fig.suptitle("Transformer: variance explained per feature at each output position")
    report.figure("position", fig)

    r2 = ve[ve.measure == "r2"]
    last_layer = int(r2.layer.max())
    table = r2[(r2.layer == last_layer) & r2.feature.isin(FEATURES)].pivot_table(
        index=["order", "position"], columns="feature", values="value", sort=False).reset_index()
    by_slot = r2[r2.feature.isin(FEATURES)].groupby(["feature", "decoded"])["value"].mean()
    lines = []
    for label, rs in runs.items():
        acc = mean_accuracy(rs)
        lines.append(f"- {label}: validation accuracy easy "
                     f"{say(f'val accuracy easy, {label}', acc['easy'])}, hard "
                     f"{say(f'val accuracy hard, {label}', acc['hard'])}.{unlearned(acc)}")
    feats = "\n".join(
        f"- {f}: {say(f'mean R2 {f}, decoded first', by_slot[f, 1])} when decoded first, "
        f"{say(f'mean R2 {f}, decoded second', by_slot[f, 2])} when decoded second"
        for f in FEATURES)
    accuracy = "\n".join(lines)
    earlier = [f for f in FEATURES if by_slot[f, 1] > by_slot[f, 2]]
    verdict = ("both features are" if len(earlier) == 2 else
               f"only '{earlier[0]}' is" if earlier else "neither feature is")
    report.text("4. Output position: the transformer", f"""
A tiny transformer ({c.n_layers} layer(s), d_model {c.d_model}) reads the input bits,
`[SEP]`, then emits the two features as tokens, in either order ({len(lab.slow_seeds)} seed(s)
per order). Here the hard feature is the parity of {c.transformer_hard_bits} bits
(`transformer_hard_bits`; the MLPs' is of 4).

{accuracy}

Mean R² over layers and read positions, by when the feature is decoded:

{feats}

So {verdict} represented more strongly when decoded earlier. At the last layer
({last_layer}), per read position (`[SEP]` predicts the first output):

{markdown_table(table)}

{figure_link('position', 'variance explained by output position')}
""")


def colour_shape(lab: Lab, report: Report, say: Say) -> None:
    c = lab.config
    runs = {arch: [lab.cnn(arch, s) for s in lab.slow_seeds] for arch in ARCHS}
    ve = report.table("colour_shape_variance", pd.concat(
        [lab.variance(r.acts, test_features(r.task), s).assign(arch=arch, seed=s)
         for arch, rs in runs.items() for s, r in zip(lab.slow_seeds, rs, strict=True)],
        ignore_index=True))
    features = list(runs[ARCHS[0]][0].task.feature_names)
    bars = ve.assign(site=ve.arch)
    fig = plots.representation_bias(bars, features=features, kind="bar", sites=list(ARCHS),
                                    title="Variance explained at the pooled layer (hook_pooled)")
    fig.axes[0].set_xlabel("architecture")
    report.figure("colour_shape", fig)
    lines = []
    for arch, rs in runs.items():
        r2 = ve[(ve.arch == arch) & (ve.measure == "r2")].groupby("feature")["value"].mean()
        acc = mean_accuracy(rs)
        lines.append(
            f"- {arch}: colour {say(f'R2 colour, {arch}', r2['colour'])}, shape "
            f"{say(f'R2 shape, {arch}', r2['shape'])} (validation accuracy colour "
            f"{say(f'val accuracy colour, {arch}', acc['colour'])}, shape "
            f"{say(f'val accuracy shape, {arch}', acc['shape'])}); it favours "
            f"{'colour' if r2['colour'] > r2['shape'] else 'shape'}.{unlearned(acc)}")
    body = "\n".join(lines)
    report.text("5. Colour vs shape: plain CNN and ResNet", f"""
{c.image_size}×{c.image_size} images of one {'/'.join(c.shapes)} in {'/'.join(c.colours)};
a plain CNN ({c.cnn_depth} conv layers) and a ResNet ({c.resnet_blocks} residual block(s)),
{c.cnn_width} channels, {c.cnn_steps} steps, {len(lab.slow_seeds)} seed(s). Variance explained
at the pooled layer:

{body}

{figure_link('colour_shape', 'colour vs shape at the pooled layer')}
""")
