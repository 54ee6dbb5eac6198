"""The erasure learning-speed analysis end to end at its tiny config: LEACE slows the MLP,
the tables hold consistent code lengths and metrics, the narrative states the tables' numbers,
the report writes, and the CLI runs it in worker processes with the same results."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pickle
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from featurebias.analyses import ANALYSES, get  # noqa: E402
from featurebias.analyses import _els_jobs as jobs  # noqa: E402
from featurebias.analyses import erasure_learning_speed as els  # noqa: E402
from featurebias.analyses._config import as_dict  # noqa: E402
from featurebias.cli import main  # noqa: E402
from featurebias.datasets import CropFlip, EraseTransform, erase_dataset  # noqa: E402
from featurebias.erasure import IterativeEraser  # noqa: E402
from featurebias.errors import ConfigError  # noqa: E402

TINY = els.tiny()
RUN = ["eraser", "arch", "seed"]
TABLES = {
    "mdl": RUN + ["bits_per_sample", "compression", "codelength_bits", "uniform_bits",
                  "mdl_reference_weighting", "n", "heldout", "num_classes"],
    "chunks": RUN + ["chunk", "train_size", "size", "bits", "bits_per_sample", "coder"],
    "curves": RUN + ["step", "split", "feature", "loss", "accuracy"],
    "aulc": RUN + ["aulc_bits", "aulc_log_step_bits", "steps_to_threshold", "censored"],
    "final": RUN + ["split", "loss_bits", "accuracy"],
    "summary": ["eraser", "arch", "metric", "mean", "se", "seeds", "minus_control"],
    "did": ["metric", "eraser", "group_a", "group_b", "value", "se", "seeds"],
    "erasure": ["eraser", "seed", "rms_edit", "class_mean_gap", "linear_probe_accuracy"],
}
# The columns that make a row one measurement.
KEYS = {"mdl": RUN, "chunks": RUN + ["chunk"], "curves": RUN + ["step", "split", "feature"],
        "aulc": RUN, "final": RUN + ["split"], "summary": ["eraser", "arch", "metric"],
        "did": ["metric", "eraser"], "erasure": ["eraser"]}
FIGURES = {"mdl", "mdl_chunks", "learning_curves", "did", "erased_images"}


@pytest.fixture(scope="module")
def report(analysis_checks):
    return analysis_checks.run(els.run, TINY)


def _means(frame: pd.DataFrame, value: str) -> pd.Series:
    return frame.groupby(["eraser", "arch"])[value].mean()


def test_leace_raises_mdl_over_control_on_the_mlp(report):
    mdl = report.tables["mdl"]
    assert set(mdl.seed) == {0, 1}
    mean = _means(mdl, "bits_per_sample")
    assert mean["leace", "mlp"] > mean["control", "mlp"]
    # The control's code is far shorter than the uniform one: the models do learn digits.
    assert (mdl[mdl.eraser == "control"].compression > 1.5).all()


def test_the_grid_is_complete(report):
    mdl = report.tables["mdl"]
    expected = {(e, a, s) for e in TINY.erasers for a in TINY.archs for s in (0, 1)}
    assert set(map(tuple, mdl[RUN].to_numpy().tolist())) == expected
    assert len(mdl) == len(expected)


@pytest.mark.parametrize(("name", "columns"), TABLES.items())
def test_tables_are_tidy_with_the_expected_columns(report, name, columns):
    frame = report.tables[name]
    assert len(frame) > 0
    assert set(columns) <= set(frame.columns), f"{name} lacks {set(columns) - set(frame)}"
    assert not frame.duplicated(KEYS[name]).any(), f"{name}: several rows per measurement"


def test_mdl_rows_are_code_lengths_of_their_chunks(report):
    mdl, chunks = report.tables["mdl"], report.tables["chunks"]
    k = 10
    assert (mdl.num_classes == k).all()
    np.testing.assert_allclose(mdl.uniform_bits, mdl.n * math.log2(k))
    np.testing.assert_allclose(mdl.bits_per_sample * mdl.n, mdl.codelength_bits)
    np.testing.assert_allclose(mdl.compression, mdl.uniform_bits / mdl.codelength_bits)
    per_run = chunks.groupby(RUN).agg(size=("size", "sum"), bits=("bits", "sum"))
    joined = mdl.set_index(RUN).join(per_run)
    assert (joined["size"] == joined["n"]).all()
    np.testing.assert_allclose(joined["bits"], joined["codelength_bits"])
    first = chunks[chunks.coder == "uniform"]
    assert (first["chunk"] == 0).all() and (first["size"] == TINY.first_chunk).all()
    np.testing.assert_allclose(first.bits, first["size"] * math.log2(k))
    assert len(chunks) == len(mdl) * TINY.num_chunks


def test_aulc_is_the_trapezoid_mean_of_the_validation_loss_in_bits(report):
    curves, aulc = report.tables["curves"], report.tables["aulc"].set_index(RUN)
    val = curves[(curves.split == "val") & (curves.feature == "all")]
    for key, run in val.groupby(RUN):
        run = run.sort_values("step")
        s, bits = run.step.to_numpy(float), run.loss.to_numpy() / math.log(2)
        assert s[-1] == TINY.curve_steps
        expected = np.trapezoid(bits, s) / (s[-1] - s[0])
        assert aulc.loc[key, "aulc_bits"] == pytest.approx(expected, rel=1e-12)
        reached = run.accuracy.to_numpy() >= TINY.threshold
        assert aulc.loc[key, "censored"] == (not reached.any())
        if reached.any():  # interpolated between the last miss and the first hit
            j = int(np.argmax(reached))
            assert s[max(j - 1, 0)] <= aulc.loc[key, "steps_to_threshold"] <= s[j]


def test_summary_and_did_match_a_direct_computation(report):
    t = report.tables
    test = t["final"][t["final"].split == "test"]
    sources = {"bits_per_sample": t["mdl"], "aulc_bits": t["aulc"],
               "test_accuracy": test.rename(columns={"accuracy": "test_accuracy"})}
    summary = t["summary"].set_index(["metric", "eraser", "arch"])
    did = t["did"].set_index(["metric", "eraser"])
    for metric, frame in sources.items():
        cells = frame.groupby(["eraser", "arch"])[metric]
        mean, var, n = cells.mean(), cells.var(ddof=1), cells.count()
        for (eraser, arch), m in mean.items():
            row = summary.loc[(metric, eraser, arch)]
            assert row["mean"] == pytest.approx(m, rel=1e-12)
            assert row["se"] == pytest.approx(math.sqrt(var[eraser, arch] / n[eraser, arch]))
            assert row["minus_control"] == pytest.approx(m - mean["control", arch], abs=1e-12)
        # SCIENCE §4.4, with each cell's own seed count.
        value = ((mean["leace", "mlp"] - mean["leace", "lenet"])
                 - (mean["control", "mlp"] - mean["control", "lenet"]))
        se = math.sqrt(sum(var[c] / n[c] for c in var.index))
        assert did.loc[(metric, "leace"), "value"] == pytest.approx(value, abs=1e-12)
        assert did.loc[(metric, "leace"), "se"] == pytest.approx(se, rel=1e-9)


def test_erasure_table_shows_leace_guards_the_training_images(report):
    erasure = report.tables["erasure"].set_index("eraser")
    assert erasure.loc["control", "rms_edit"] == 0.0
    assert erasure.loc["leace", "rms_edit"] > 0.0
    assert erasure.loc["leace", "class_mean_gap"] < 1e-6 < erasure.loc["control",
                                                                        "class_mean_gap"]
    prior = erasure.loc["leace", "prior_accuracy"]
    assert erasure.loc["leace", "linear_probe_accuracy"] < prior + 0.1
    assert erasure.loc["control", "linear_probe_accuracy"] > 0.8


def _f(value: float) -> str:
    return f"{value:.3f}"


def test_narrative_states_the_tables_numbers(report):
    text, mdl = report.markdown(), report.tables["mdl"]
    mean = _means(mdl, "bits_per_sample")
    se = mdl.groupby(["eraser", "arch"]).bits_per_sample.std(ddof=1) / math.sqrt(2)
    for arch, label in (("mlp", "MLP"), ("lenet", "LeNet")):
        control, leace = mean["control", arch], mean["leace", arch]
        verb = "raises" if leace > control else "lowers"
        assert (f"on the {label} it {verb} it by {_f(abs(leace - control))} bits per example "
                f"({_f(control)} → {_f(leace)})") in text
        for eraser in TINY.erasers:  # the MDL table's cells
            assert f"{_f(mean[eraser, arch])} ± {_f(se[eraser, arch])}" in text
    did = report.tables["did"].query("metric == 'bits_per_sample'").iloc[0]
    assert f"DiD = {_f(did.value)} ± {_f(did.se)} bits per example" in text
    erasure = report.tables["erasure"].set_index("eraser")
    assert _f(erasure.loc["leace", "linear_probe_accuracy"]) in text
    assert f"the other {int(mdl.n.iloc[0])} are coded in {TINY.num_chunks}" in " ".join(
        text.split())


def test_every_figure_is_drawn_and_linked(report, analysis_checks):
    analysis_checks.figures_linked(report, FIGURES)


def test_write_produces_png_images_and_csv_tables(report, tmp_path, analysis_checks):
    path = analysis_checks.written(report, tmp_path, FIGURES)
    assert path.read_text() == report.markdown()


def test_cli_runs_it_with_the_same_results(report, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(as_dict(TINY)))
    out = tmp_path / "out"
    # Two jobs: control and LEACE on the MLP, seed 0.
    code = main(["run", "erasure_learning_speed", "--config", str(config), "--set", "archs=mlp",
                 "--set", "seeds=1", "--out", str(out), "--no-progress"])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["archs"] == ["mlp"]
    assert {p.name for p in (out / "figures").iterdir()} == {
        f"{n}.png" for n in FIGURES - {"did"}}  # one architecture: no DiD
    assert "was not computed" in (out / "report.md").read_text()
    # Each job is seeded on its own: the same rows as in the full grid, to the bit.
    for name in ("mdl", "chunks", "curves"):
        cli = pd.read_csv(out / "tables" / f"{name}.csv")
        here = report.tables[name].query("arch == 'mlp' and seed == 0")
        pd.testing.assert_frame_equal(cli, here.reset_index(drop=True), check_dtype=False)


def test_cli_reports_a_bad_config_without_running(tmp_path, capsys):
    code = main(["run", "erasure_learning_speed", "--set", "erasers=leace", "--out",
                 str(tmp_path)])
    assert code == 2
    assert "control" in capsys.readouterr().err


def test_the_job_can_run_in_a_spawned_worker():
    """Workers get the job by pickle: a module-level function with a picklable config."""
    job = functools.partial(jobs.cell, config=TINY, cache="/nowhere")
    back = pickle.loads(pickle.dumps(job))
    assert back.func is jobs.cell and back.keywords["config"] == TINY


def _cache(folder: Path, eraser: str) -> None:
    task = els.load_task(TINY)
    jobs.save_data(folder, task)
    jobs.save_erased(folder, eraser, erase_dataset(task, eraser))


def test_augmented_batches_are_erased_and_coded_rows_are_the_erased_images(monkeypatch):
    """With an identity augmentation the training batches are raw images erased one batch
    at a time (float32, not the split's float64), so the results match training on the
    pre-erased images closely; were the coded rows raw, LEACE's MDL would collapse."""
    # A larger step size, so that the MLP learns something from LEACE'd digits in 200 steps.
    config = dataclasses.replace(TINY, lr=1e-2, mdl_steps=200, patience=4, eval_every=25)
    augmented = dataclasses.replace(config, augment="translate")
    with tempfile.TemporaryDirectory() as cache:
        _cache(Path(cache), "leace")
        plain = jobs.cell("leace", "mlp", 0, config=config, cache=cache)
        shifted = jobs.cell("leace", "mlp", 0, config=augmented, cache=cache)
        monkeypatch.setattr(jobs, "make_augment", lambda name, seed: (lambda x, y: (x, y)))
        identity = jobs.cell("leace", "mlp", 0, config=augmented, cache=cache)

    def mdl(frame):
        return frame.query("table == 'mdl'").bits_per_sample.iloc[0]

    def final(frame):
        return frame.query("table == 'final'").accuracy.to_numpy()

    assert mdl(plain) < 0.95 * math.log2(10)  # learned: a code clearly below the uniform
    assert mdl(identity) == pytest.approx(mdl(plain), rel=0.02)
    np.testing.assert_allclose(final(identity), final(plain), atol=0.03)
    assert mdl(shifted) != mdl(plain)  # the real augmentation does act


def test_whole_split_erasers_only_augment_the_batches(tmp_path):
    eraser = IterativeEraser(mean=torch.zeros(64, dtype=torch.float64),
                             cov=torch.eye(64, dtype=torch.float64))
    eraser.save(tmp_path / "iterative.eraser.safetensors")
    raw, erased = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    config = dataclasses.replace(TINY, augment="translate")
    x, transform = jobs._training_input(tmp_path, "iterative", raw, erased, config, 0)
    assert x is erased and isinstance(transform, CropFlip)
    _, none = jobs._training_input(tmp_path, "iterative", raw, erased, TINY, 0)
    assert none is None
    _cache(tmp_path, "leace")
    x, transform = jobs._training_input(tmp_path, "leace", raw, erased, config, 0)
    assert x is raw and isinstance(transform, EraseTransform)


def _fake_cifar10(folder: Path, per_batch: int = 20) -> None:
    """The CIFAR-10 python format (five training pickles and a test pickle), random pixels,
    every class equally often."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", 10)]:
        batch = {b"labels": [i % 10 for i in range(n)],
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_a_cifar10_folder_runs_with_crop_and_flip_before_erasure(tmp_path):
    _fake_cifar10(tmp_path / "cifar-10-batches-py")
    config = dataclasses.replace(
        TINY, dataset="cifar10", data_dir=str(tmp_path), erasers=("control", "random"),
        augment="auto", seeds=1, first_chunk=16, num_chunks=3, mdl_steps=10, curve_steps=10,
        eval_every=5, batch_size=16, val_fraction=0.1, cache_dir=str(tmp_path / "cache"))
    out = els.run(config, progress=False)
    assert not any((tmp_path / "cache").iterdir())  # the erased splits are cleaned up
    text = " ".join(out.markdown().split())
    assert "is augmented (`crop_flip`), then erased" in text and "3×32×32" in text
    mdl = out.tables["mdl"]
    assert len(mdl) == 4 and np.isfinite(mdl.bits_per_sample).all()
    assert (mdl.n + mdl.heldout == 90).all()  # 100 training images, 10 % held out as val
    assert out.tables["erasure"].set_index("eraser").loc["random", "rms_edit"] > 0
    assert set(out.tables["did"]["metric"]) == {"bits_per_sample", "aulc_bits", "test_accuracy"}
    assert set(out.figures) == FIGURES


@pytest.mark.parametrize(("change", "message"), [
    ({"erasers": ("leace", "qleace")}, "control"),
    ({"erasers": ("control", "blur")}, "erasers"),
    ({"erasers": ("control", "leace", "leace")}, "distinct"),
    ({"archs": ("mlp", "vgg")}, "archs"),
    ({"archs": ()}, "archs"),
    ({"seeds": 0}, "seeds"),
    ({"workers": 0}, "workers"),
    ({"dataset": "cifar10"}, "data_dir"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"augment": "blur"}, "augment"),
    ({"threshold": 1.5}, "threshold"),
    ({"num_chunks": 1}, "num_chunks"),
    ({"first_chunk": 0}, "first_chunk"),
    ({"did_groups": ("mlp",)}, "did_groups"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction"),
    ({"lr": 0.0}, "lr"),
    ({"device": "tpu"}, "device"),
    ({"mlp_hidden": ()}, "mlp_hidden"),
    ({"launcher": "ssh"}, "launcher"),
    ({"launcher": "slurm"}, "cache_dir"),
])
def test_nonsense_configs_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY, **change)


def test_an_mdl_split_the_data_cannot_hold_is_refused_before_training():
    with pytest.raises(ConfigError, match="first_chunk"):
        els.run(dataclasses.replace(TINY, first_chunk=5000), progress=False)


def test_registered_and_the_demo_setting_is_a_small_valid_config():
    assert "erasure_learning_speed" in ANALYSES and get("erasure_learning_speed") is els
    demo = els.demo_config(3)
    assert demo.seeds == 3 and {"control", "leace"} <= set(demo.erasers)
    assert {"mlp", "lenet"} <= set(demo.archs)
    assert demo.mdl_steps <= els.Config().mdl_steps and demo.curve_steps <= els.Config().curve_steps
