"""The representation-bias analysis end to end at its tiny config: the bias, tables, figures,
narrative numbers, written report, CLI and config validation."""

from __future__ import annotations

import dataclasses
import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from featurebias.analyses import representation_bias as rb  # noqa: E402
from featurebias.analyses._config import as_dict  # noqa: E402
from featurebias.analyses._repbias_text import show  # noqa: E402
from featurebias.cli import main  # noqa: E402
from featurebias.errors import ConfigError  # noqa: E402

TINY = rb.tiny()
LAST = f"layers.{TINY.depth - 1}.hook_post"
MEASURED = {"site", "feature", "measure", "value", "seed"}
TABLES = {
    "complexity_variance": MEASURED,
    "complexity_over_training": MEASURED | {"step"},
    "complexity_pcs": {"site", "component", "feature", "variance_fraction", "r2",
                       "cumulative_fraction", "seed"},
    "complexity_units": {"site", "unit", "feature", "r2", "selectivity", "seed"},
    "complexity_unit_density": {"site", "feature", "threshold", "density", "seed"},
    "complexity_subcomponents": MEASURED | {"kind"},
    "prevalence_variance": MEASURED | {"prevalence"},
    "order_variance": MEASURED | {"condition"},
    "order_over_training": MEASURED | {"step", "condition"},
    "position_variance": MEASURED | {"order", "layer", "position", "decoded"},
    "colour_shape_variance": MEASURED | {"arch"},
    "confounds_similarity": {"x", "y", "measure", "value", "site"},
    "confounds_layer_probes": {"site", "feature", "fold", "accuracy", "seed"},
    "confounds_pc_probes": {"site", "feature", "fold", "accuracy", "seed", "components"},
    "training_curves": {"step", "split", "feature", "loss", "accuracy", "experiment", "model",
                        "condition", "seed"},
    "final_accuracy": {"experiment", "condition", "seed", "feature", "accuracy"},
    "headline": {"experiment", "quantity", "value", "kind"},
}
FIGURES = {"complexity_by_layer", "complexity_over_training", "complexity_pcs",
           "complexity_subcomponents", "prevalence", "order", "order_over_training",
           "position", "colour_shape", "confounds_similarity", "confounds_probes"}


@pytest.fixture(scope="module")
def report(analysis_checks):
    return analysis_checks.run(rb.run, TINY)


def _r2(frame: pd.DataFrame, **equal) -> pd.Series:
    rows = frame[frame.measure == "r2"]
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    return rows.groupby("feature")["value"].mean()


def test_easy_feature_explains_more_variance_than_hard_at_the_last_layer(report):
    r2 = _r2(report.tables["complexity_variance"], site=LAST)
    assert r2["easy"] > r2["hard"]
    # ... although the network computes both (the bias is not a failure to learn).
    acc = report.tables["final_accuracy"].query("experiment == 'complexity'")
    assert acc.groupby("feature").accuracy.mean().min() > 0.9
    assert set(report.tables["complexity_variance"].seed) == {0, 1}


@pytest.mark.parametrize(("name", "columns"), TABLES.items())
def test_tables_are_tidy_with_the_expected_columns(report, name, columns):
    frame = report.tables[name]
    assert len(frame) > 0
    assert columns <= set(frame.columns), f"{name} lacks {columns - set(frame.columns)}"
    measured = [c for c in ("value", "accuracy", "r2", "density", "loss") if c in frame]
    assert np.isfinite(frame[measured].to_numpy(dtype=float)).all()


def test_every_figure_is_drawn_and_linked_from_the_narrative(report, analysis_checks):
    analysis_checks.figures_linked(report, FIGURES)


def test_every_stated_number_is_in_the_headline_table_and_the_text(report):
    headline, text = report.tables["headline"], report.markdown()
    assert set(headline.experiment) == set(rb.EXPERIMENTS)
    for row in headline.itertuples():
        assert show(row.value, row.kind) in text, row.quantity


def _said(report, experiment: str, quantity: str) -> float:
    rows = report.tables["headline"].query("experiment == @experiment and quantity == @quantity")
    assert len(rows) >= 1, quantity
    return float(rows.value.iloc[0])


def _recomputed(report) -> list[tuple[str, str, float]]:
    """Headline numbers recomputed from the raw tables, independently of the analysis code."""
    t = report.tables
    out = []
    r2 = _r2(t["complexity_variance"], site=LAST)
    out += [("complexity", "R2 easy, last layer", r2["easy"]),
            ("complexity", "R2 hard, last layer", r2["hard"])]
    acc = t["final_accuracy"].query("experiment == 'complexity'").groupby("feature").accuracy
    out.append(("complexity", "val accuracy hard", acc.mean()["hard"]))
    dens = t["complexity_unit_density"].query("site == @LAST").groupby("feature").density.mean()
    out.append(("complexity", "unit density easy", dens["easy"]))
    for p in TINY.prevalences:
        out.append(("prevalence", f"R2 hard at p={p:g}",
                    _r2(t["prevalence_variance"], site=LAST, prevalence=p)["hard"]))
    order = t["order_variance"]
    for condition in ("default", "hard first"):
        v = _r2(order, site=LAST, condition=condition)
        out.append(("order", f"gap, {condition}", v["easy"] - v["hard"]))
    pos = t["position_variance"].query("measure == 'r2' and feature == 'easy'")
    out.append(("position", "mean R2 easy, decoded first", pos[pos.decoded == 1].value.mean()))
    for arch in ("small_cnn", "small_resnet"):
        out.append(("colour_shape", f"R2 colour, {arch}",
                    _r2(t["colour_shape_variance"], arch=arch)["colour"]))
    sim = t["confounds_similarity"].query("measure == 'rsa'").set_index(["x", "y"]).value
    out.append(("confounds", "rsa easy+hard vs easy+hard", sim["easy+hard s0", "easy+hard s1"]))
    out.append(("confounds", "rsa easy+hard vs easy only",
                (sim["easy+hard s0", "easy only"] + sim["easy+hard s1", "easy only"]) / 2))
    probes = t["confounds_layer_probes"].query("site == @LAST and feature == 'hard'")
    out.append(("confounds", f"probe accuracy hard, {LAST}", probes.accuracy.mean()))
    k = min(TINY.pc_counts)
    pcs = t["confounds_pc_probes"].query("components == @k and feature == 'easy'")
    out.append(("confounds", f"probe accuracy easy, top {k} PCs", pcs.accuracy.mean()))
    return out


def test_narrative_numbers_match_the_tables(report):
    text = report.markdown()
    for experiment, quantity, value in _recomputed(report):
        assert _said(report, experiment, quantity) == pytest.approx(value, abs=1e-12), quantity
        kind = report.tables["headline"].query("quantity == @quantity").kind.iloc[0]
        assert show(value, kind) in text, quantity


def test_write_produces_readable_pngs_tables_and_links(report, tmp_path, analysis_checks):
    path = analysis_checks.written(report, tmp_path, FIGURES)
    assert path == tmp_path / "report.md"


def test_cli_runs_the_tiny_settings_and_reproduces_the_same_numbers(report, tmp_path,
                                                                   analysis_checks):
    # The MLP experiments only, to keep the test fast; seeds and sizes are the tiny ones.
    config = dataclasses.replace(TINY, experiments=("complexity",))
    argv = ["run", "representation_bias", *analysis_checks.overrides(config), "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "report.md").read_text().startswith("# Representation bias")
    assert json.loads((tmp_path / "config.json").read_text()) == as_dict(config)
    again = pd.read_csv(tmp_path / "tables" / "complexity_variance.csv")
    first = report.tables["complexity_variance"]
    # Same seeds, same numbers: the run is deterministic.
    np.testing.assert_allclose(again.value.to_numpy(), first.value.to_numpy(), atol=1e-9)
    assert list(again.site) == list(first.site)


@pytest.mark.parametrize(("changes", "message"), [
    ({"experiments": ("complexity", "nope")}, "experiments must be"),
    ({"experiments": ()}, "experiments must be"),
    ({"seeds": 0}, "seeds must be"),
    ({"sizes": (1024, 256)}, "sizes must be three"),
    ({"image_sizes": (16, 16, 16)}, "image_sizes must be three"),
    ({"probe_folds": 1}, "probe_folds must be"),
    ({"prevalences": (0.5, 1.5)}, "prevalences must be"),
    ({"prevalences": (0.5, 1.0)}, "prevalences must be"),
    ({"first": "medium"}, "first must be"),
    ({"prevalence_mode": "often"}, "prevalence_mode must be"),
    ({"d_model": 30, "n_heads": 4}, "multiple of n_heads"),
    ({"confound_site": 4}, "confound_site must index"),
    ({"pc_counts": (0, 2)}, "pc_counts must be"),
    ({"lr": 0.0}, "lr must be"),
    ({"cnn_lr": -1.0}, "cnn_lr must be"),
    ({"transformer_hard_bits": 1}, "transformer_hard_bits must"),
    ({"device": "gpu"}, "device must be"),
    ({"shapes": ("square", "blob")}, "shapes must be"),
    ({"colours": ("red",)}, "colours must be"),
    ({"image_size": 3}, "image_size must be"),
    ({"unit_threshold": 1.0}, "unit_threshold must"),
    ({"steps": 2.5}, "steps must be an int"),
])
def test_nonsense_configs_raise_config_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(rb.Config(), **changes)


def test_cli_rejects_a_bad_override_before_any_work(tmp_path, capsys):
    assert main(["run", "representation_bias", "--set", "seeds=0", "--out",
                 str(tmp_path)]) == 2
    assert "seeds must be" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
