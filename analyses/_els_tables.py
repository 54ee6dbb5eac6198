"""Summaries of the erasure grid: what each eraser did to the images, learning-speed metrics of
the training curves, means with standard errors, and the difference-in-differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from featurebias.datasets import ErasedData, TaskData
from featurebias.erasure import check_guardedness
from featurebias.training import area_under_curve, difference_in_differences, steps_to_threshold

KEYS = ["eraser", "arch", "seed"]
CONTROL = "control"
# The measures compared across erasers: (table, column), all "lower is faster" but accuracy.
METRICS = {"bits_per_sample": "mdl", "aulc_bits": "aulc", "test_accuracy": "final"}


def erasure_row(name: str, task: TaskData, erased: ErasedData, *, guard_rows: int | None,
                seed: int) -> dict:
    """How far `name` moved the training images and what a probe still reads from them.

    `guard_rows` rows (None: no probes) are probed by 3-fold cross-validation with a linear
    (logistic) and a quadratic (QDA) classifier, next to the prior's accuracy; the QDA's
    accuracy is NaN when its folds hold fewer rows per class than pixels (it cannot fit).
    """
    x0 = task.train[0].flatten(1).double()
    x1 = erased.train[0].flatten(1).double()
    y = task.train[1]
    k = task.num_classes[0]
    counts = torch.bincount(y, minlength=k).double()
    means = x1.new_zeros(k, x1.shape[1]).index_add_(0, y, x1) / counts[:, None]
    row = {"eraser": name, "seed": seed,
           "rms_edit": float((x1 - x0).square().mean().sqrt()),
           "trace_cov_before": float(x0.var(0).sum()), "trace_cov_after": float(x1.var(0).sum()),
           "class_mean_gap": float((means - x1.mean(0)).abs().max())}
    if guard_rows is not None:
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:guard_rows]
        smallest = int(torch.bincount(y[keep], minlength=k).min())
        quadratic = smallest * 2 // 3 > x1.shape[1]
        report = check_guardedness(x1[keep], y[keep], cv=3, seed=seed, quadratic=quadratic)
        row.update(prior_accuracy=report.prior_accuracy,
                   linear_probe_accuracy=report.linear_accuracy,
                   quadratic_probe_accuracy=report.quadratic_accuracy if quadratic
                   else math.nan)
    return row


def learning_speed(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per run: AULC of the validation loss in bits (linear and log₂ step axis), the steps to
    `threshold` validation accuracy (interpolated; NaN and `censored` if never reached) and
    the final validation loss."""
    rows = []
    val = curves[(curves["split"] == "val") & (curves["feature"] == "all")]
    for key, run in val.groupby(KEYS, sort=False):
        run = run.sort_values("step")
        steps, bits = run["step"].to_numpy(), run["loss"].to_numpy() / math.log(2)
        later = steps >= 1
        reached = steps_to_threshold(steps, run["accuracy"].to_numpy(), threshold,
                                     mode="accuracy", interpolate=True)
        rows.append({**dict(zip(KEYS, key, strict=True)),
                     "aulc_bits": area_under_curve(steps, bits),
                     "aulc_log_step_bits": area_under_curve(steps[later], bits[later],
                                                            log_x=True),
                     "steps_to_threshold": reached.step, "censored": reached.censored,
                     "threshold": threshold, "final_val_loss_bits": float(bits[-1])})
    return pd.DataFrame(rows)


def per_run(mdl: pd.DataFrame, aulc: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """One row per run with every compared metric as a column."""
    test = final[final["split"] == "test"].rename(columns={"accuracy": "test_accuracy"})
    return (mdl[KEYS + ["bits_per_sample"]]
            .merge(aulc[KEYS + ["aulc_bits"]], on=KEYS)
            .merge(test[KEYS + ["test_accuracy"]], on=KEYS))


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard error over seeds (NaN with one) and difference from the control's mean,
    per eraser × architecture × metric."""
    rows = []
    for metric in METRICS:
        stats = runs.groupby(["eraser", "arch"], sort=False)[metric].agg(["mean", "std", "count"])
        control = stats.xs(CONTROL, level="eraser")["mean"]
        for (eraser, arch), s in stats.iterrows():
            rows.append({"eraser": eraser, "arch": arch, "metric": metric, "mean": s["mean"],
                         "se": s["std"] / math.sqrt(s["count"]) if s["count"] > 1 else math.nan,
                         "seeds": int(s["count"]), "minus_control": s["mean"] - control[arch]})
    return pd.DataFrame(rows)


def did(runs: pd.DataFrame, groups: tuple[str, str]) -> pd.DataFrame:
    """Difference-in-differences of every metric, per treated eraser, between `groups`
    (SCIENCE §4.4: positive when erasure costs the first group more); the SE uses each
    cell's own number of seeds."""
    rows = []
    present = set(runs["arch"])
    if not set(groups) <= present:
        return pd.DataFrame(columns=["metric", "eraser", "control", "group_a", "group_b",
                                     "value", "se", "seeds"])
    for metric in METRICS:
        for eraser in [e for e in runs["eraser"].unique() if e != CONTROL]:
            result = difference_in_differences(runs, value=metric, groups=groups,
                                               conditions=(eraser, CONTROL))
            rows.append({"metric": metric, "eraser": eraser, "control": CONTROL,
                         "group_a": groups[0], "group_b": groups[1], "value": result.value,
                         "se": result.se, "seeds": int(np.min(result.cells["n"]))})
    return pd.DataFrame(rows)
