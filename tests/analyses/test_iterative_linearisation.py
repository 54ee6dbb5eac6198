"""The iterative-linearisation analysis end to end at its tiny config: K = ∞ learns least and
its kernel never moves, K = 1 is standard training, tables, figures, narrative numbers,
written report, CLI and config validation."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from featurebias import models  # noqa: E402
from featurebias.analyses import iterative_linearisation as il  # noqa: E402
from featurebias.analyses._config import as_dict  # noqa: E402
from featurebias.analyses._itlin_jobs import load_task, probe_batch, train_config  # noqa: E402
from featurebias.analyses._itlin_report import show  # noqa: E402
from featurebias.cli import main  # noqa: E402
from featurebias.errors import ConfigError  # noqa: E402
from featurebias.training import checkpoint_steps, train  # noqa: E402

TINY = il.tiny()
KS = [math.inf if k is None else float(k) for k in TINY.every]
RUN = {"every", "arch", "seed"}
TABLES = {
    "final": RUN | {"train_loss", "test_loss", "test_accuracy", "network_test_loss",
                    "network_test_accuracy", "relinearisations"},
    "kernels": RUN | {"step", "kernel_distance", "relative_change", "kernel_velocity",
                      "alignment", "relinearisations"},
    "curves": RUN | {"step", "split", "feature", "loss", "accuracy"},
    "gaps": RUN | {"step", "relinearisations", "gap"},
    "headline": {"arch", "quantity", "value", "kind"},
}
FIGURES = {"accuracy_vs_k", "train_loss_vs_k", "training_loss", "kernels_mlp"}


@pytest.fixture(scope="module")
def report(analysis_checks):
    return analysis_checks.run(il.run, TINY)


def _name(k: float) -> str:
    return "∞" if math.isinf(k) else f"{k:g}"


def test_k_infinity_has_the_highest_training_loss_and_a_frozen_kernel(report):
    final = report.tables["final"]
    for seed, runs in final.groupby("seed"):
        losses = runs.set_index("every").train_loss
        assert losses.idxmax() == math.inf, f"seed {seed}: {losses.to_dict()}"
    kernels = report.tables["kernels"]
    frozen = kernels[kernels.every == math.inf]
    assert len(frozen) == TINY.kernel_logs * TINY.seeds
    assert frozen.kernel_distance.max() < 1e-8
    assert (frozen.relinearisations == 0).all()
    # ... while standard training's kernel does move.
    moving = kernels[(kernels.every == 1) & (kernels.step == TINY.steps)]
    assert (moving.kernel_distance > 1e-4).all()


def test_k_one_is_standard_training(report):
    # Independent check: plain `train` of the same seeded MLP (no Linearised anywhere).
    task = load_task(TINY)
    model = models.mlp(64, TINY.mlp_hidden, 10, seed=TINY.seed)
    train(model, task.train, train_config(TINY, TINY.seed), progress=False)
    model.eval()
    with torch.no_grad():
        logits = model(task.test[0])
    loss = float(torch.nn.functional.cross_entropy(logits.double(), task.test[1]))
    accuracy = float((logits.argmax(1) == task.test[1]).double().mean())
    row = report.tables["final"].query("every == 1 and seed == @TINY.seed").iloc[0]
    assert row.test_loss == pytest.approx(loss, rel=1e-3)
    assert row.test_accuracy == pytest.approx(accuracy, abs=2 / len(task.test[1]))
    assert row.network_test_loss == pytest.approx(row.test_loss, abs=1e-3)


def _traced_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Σ_o J_o(x) J_o(x')ᵀ from one autograd backward per example and output."""
    params = [p for p in model.parameters()]
    rows = []
    for xi in x:
        out = model(xi[None])[0]
        rows.append(torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            out[o], params, retain_graph=True)]) for o in range(out.shape[0])]))
    j = torch.stack(rows).double()  # [n, o, P]
    return torch.einsum("aop,bop->ab", j, j)


def test_initial_alignment_matches_an_autograd_kernel(report):
    task = load_task(TINY)
    x, y = probe_batch(task, TINY.probe_size, TINY.seed)
    k = _traced_ntk(models.mlp(64, TINY.mlp_hidden, 10, seed=TINY.seed), x).numpy()
    n = len(y)
    h = np.eye(n) - 1 / n
    yc = h @ np.eye(10)[y.numpy()]
    kc, target = h @ k @ h, yc @ yc.T
    expected = (kc * target).sum() / (np.linalg.norm(kc) * np.linalg.norm(target))
    start = report.tables["kernels"].query("step == 0 and seed == @TINY.seed")
    np.testing.assert_allclose(start.alignment, expected, atol=1e-5)


def test_kernels_are_logged_where_asked_with_the_run_s_feature_updates(report):
    kernels, final = report.tables["kernels"], report.tables["final"]
    logged = checkpoint_steps(TINY.steps, TINY.kernel_logs)
    for (k, _, _), run in kernels.groupby(["every", "arch", "seed"]):
        assert run.step.tolist() == logged
        # Feature updates happen after steps K, 2K, ... before T; never at step T itself.
        expected = [0 if math.isinf(k) else min(s, TINY.steps - 1) // int(k) for s in logged]
        assert run.relinearisations.tolist() == expected
        assert np.isnan(run.kernel_velocity.iloc[0]) and (run.kernel_velocity.iloc[1:] >= 0).all()
    updates = final.every.map(lambda k: 1 if math.isinf(k) else math.ceil(TINY.steps / k))
    assert (final.relinearisations == updates - 1).all()


@pytest.mark.parametrize(("name", "columns"), TABLES.items())
def test_tables_are_tidy_with_the_expected_columns(report, name, columns):
    frame = report.tables[name]
    assert set(frame.columns) == columns
    if "seed" in columns:
        assert set(frame.seed) == set(range(TINY.seed, TINY.seed + TINY.seeds))
        assert set(frame.every) == set(KS)
        keys = [c for c in ("every", "arch", "seed", "step", "split", "feature") if c in frame]
        assert not frame.duplicated(keys).any()
    measured = [c for c in ("train_loss", "test_accuracy", "kernel_distance", "loss", "gap",
                            "value") if c in frame]
    assert np.isfinite(frame[measured].to_numpy(dtype=float)).all()


def test_every_figure_is_drawn_and_linked_from_the_narrative(report, analysis_checks):
    analysis_checks.figures_linked(report, FIGURES)


def _recomputed(report) -> dict[str, float]:
    """Every number the narrative states, recomputed from the raw tables."""
    t = report.tables
    final, kernels, gaps = t["final"], t["kernels"], t["gaps"]
    means = final.groupby("every").mean(numeric_only=True)
    out = {}
    for k in KS:
        out[f"train loss, K={_name(k)}"] = means.train_loss[k]
        out[f"test loss, K={_name(k)}"] = means.test_loss[k]
        out[f"test accuracy, K={_name(k)}"] = means.test_accuracy[k]
        out[f"network test accuracy, K={_name(k)}"] = means.network_test_accuracy[k]
        out[f"feature updates, K={_name(k)}"] = 1 if math.isinf(k) else math.ceil(TINY.steps / k)
        if k != 1:
            out[f"accuracy gap, K={_name(k)}"] = means.test_accuracy[1] - means.test_accuracy[k]
        end = kernels.query("every == @k and step == @TINY.steps")
        out[f"final kernel distance, K={_name(k)}"] = end.kernel_distance.mean()
        out[f"mean gap, K={_name(k)}"] = gaps.query("every == @k").gap.mean()
    out["largest kernel distance, K=∞"] = kernels.query("every == inf").kernel_distance.max()
    one = kernels.query("every == 1")
    out["relative change, K=1"] = one.query("step == @TINY.steps").relative_change.mean()
    curve = one.groupby("step").kernel_distance.mean()
    out["half distance step, K=1"] = float(next(s for s, d in curve.items()
                                                if d >= curve.iloc[-1] / 2))
    out["half distance fraction, K=1"] = out["half distance step, K=1"] / TINY.steps
    out["initial alignment"] = kernels.query("step == 0").alignment.mean()
    for k in (1.0, math.inf):
        out[f"final alignment, K={_name(k)}"] = kernels.query(
            "every == @k and step == @TINY.steps").alignment.mean()
    return out


def test_narrative_numbers_match_the_tables(report):
    headline, text = report.tables["headline"], report.markdown()
    said = dict(zip(headline.quantity, headline.value, strict=True))
    expected = _recomputed(report)
    assert set(said) == set(expected)
    for quantity, value in expected.items():
        assert said[quantity] == pytest.approx(value, rel=1e-12, abs=1e-15), quantity
        kind = headline.set_index("quantity").kind[quantity]
        assert show(value, kind) in text, quantity


def test_narrative_verdicts_follow_the_numbers(report):
    text = report.markdown()
    means = report.tables["final"].groupby("every").mean(numeric_only=True)
    worst = means.train_loss.idxmax()
    assert f"The highest final training loss is K = {_name(worst)}'s" in text
    gap = (means.test_accuracy[1] - means.test_accuracy).drop(1.0).sort_index()
    steady = bool((gap.diff().dropna() >= 0).all())
    assert ("closes steadily as K shrinks" in text) == steady
    assert ("does not close steadily" in text) == (not steady)


def test_write_produces_readable_pngs_tables_and_links(report, tmp_path, analysis_checks):
    path = analysis_checks.written(report, tmp_path, FIGURES)
    assert path == tmp_path / "report.md"
    # K = ∞ survives the CSV round trip as a number.
    assert math.inf in set(pd.read_csv(tmp_path / "tables" / "final.csv").every)


def test_the_small_cnn_runs_through_the_same_grid():
    config = dataclasses.replace(TINY, archs=("small_cnn",), every=(1, None), seeds=1,
                                 steps=20, cnn_width=4, cnn_depth=1, probe_size=8,
                                 kernel_logs=3, eval_every=10)
    out = il.run(config, progress=False)
    assert set(out.figures) == {"accuracy_vs_k", "train_loss_vs_k", "training_loss",
                                "kernels_small_cnn"}
    kernels = out.tables["kernels"]
    assert set(kernels.arch) == {"small_cnn"}
    assert kernels.query("every == inf").kernel_distance.max() < 1e-8
    assert kernels.query("every == 1 and step == 20").kernel_distance.iloc[0] > 0
    assert "## small CNN: accuracy and loss against K" in out.markdown()


def test_the_job_pickles_for_worker_processes():
    # The default runs the grid in spawned workers: the job and its config must pickle.
    job = il.functools.partial(il.cell, config=il.Config())
    back = pickle.loads(pickle.dumps(job))
    assert back.func is il.cell and back.keywords["config"] == il.Config()


def test_cli_runs_the_tiny_settings_and_reproduces_the_numbers(report, tmp_path,
                                                               analysis_checks):
    # Seed 0 of K = 1 and K = ∞ only, to keep the test fast.
    config = dataclasses.replace(TINY, every=(1, None), seeds=1)
    argv = ["run", "iterative_linearisation", *analysis_checks.overrides(config),
            "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "report.md").read_text().startswith("# Iterative linearisation")
    assert json.loads((tmp_path / "config.json").read_text()) == as_dict(config)
    again = pd.read_csv(tmp_path / "tables" / "final.csv")
    first = report.tables["final"].query("seed == 0 and every in (1, inf)")
    # Same seeds, same numbers: the run is deterministic.
    assert again.every.tolist() == first.every.tolist()
    np.testing.assert_allclose(again.train_loss, first.train_loss, rtol=1e-6)
    np.testing.assert_allclose(again.test_accuracy, first.test_accuracy, rtol=1e-6)


@pytest.mark.parametrize(("changes", "message"), [
    ({"every": ()}, "every must be"),
    ({"every": (1, 1)}, "every must be"),
    ({"every": (0, None)}, "every must be"),
    ({"every": (True,)}, "every must be"),
    ({"archs": ("mlp", "lenet")}, "archs must be"),
    ({"seeds": 0}, "seeds must be"),
    ({"seed": -1}, "seed must be"),
    ({"steps": 2.5}, "steps must be an int"),
    ({"kernel_logs": 1}, "kernel_logs must be"),
    ({"kernel_logs": 400, "steps": 100}, "must not exceed steps"),
    ({"probe_size": 0}, "probe_size must be"),
    ({"mlp_hidden": ()}, "mlp_hidden must be"),
    ({"device": "gpu"}, "device must be"),
    ({"dataset": "mnist"}, "dataset must be"),
    ({"dataset": "cifar10"}, "set data_dir"),
    ({"optimizer": "lbfgs"}, "optimizer must be"),
    ({"ntk_mode": "exact"}, "ntk_mode must be"),
    ({"lr": 0.0}, "lr must be"),
    ({"momentum": 0.9, "optimizer": "adam"}, "momentum must"),
    ({"val_fraction": 0.5, "test_fraction": 0.45}, "val_fraction and test_fraction"),
    ({"max_train": 1}, "max_train must be"),
])
def test_nonsense_configs_raise_config_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(il.Config(), **changes)


def test_a_probe_larger_than_the_training_set_is_refused_before_any_training():
    with pytest.raises(ConfigError, match="probe_size"):
        il.run(dataclasses.replace(TINY, max_train=20, probe_size=24), progress=False)


def test_cli_rejects_a_bad_override_before_any_work(tmp_path, capsys):
    assert main(["run", "iterative_linearisation", "--set", "every=0,10", "--out",
                 str(tmp_path)]) == 2
    assert "every must be" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
