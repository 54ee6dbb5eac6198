"""`featurebias demo`: the main job writes its report, figures and tables, and the report's
numbers are the tables' numbers."""

from __future__ import annotations

import json
import re

import matplotlib.image as mpimg
import pandas as pd
import pytest

from featurebias.analyses import _config, demo
from featurebias.cli import main


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    config = folder / "tiny.json"
    config.write_text(json.dumps(_config.as_dict(demo.tiny())))
    assert main(["demo", "--config", str(config), "--out", str(folder / "run"),
                 "--no-progress"]) == 0
    return folder / "run"


def test_writes_report_figures_tables_and_config(out):
    report = (out / "report.md").read_text()
    figures = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert {"variance_by_layer_MLP", "variance_over_training", "probe_accuracy", "cka",
            "pc_attribution", "erasure_probes", "mdl", "erased_images"} <= set(figures)
    for name in figures:  # every figure is embedded and is a real image
        assert f"figures/{name}.png" in report
        image = mpimg.imread(out / "figures" / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0
    for name in ("variance_explained", "probe_accuracy", "erasure_probes", "cka"):
        assert f"tables/{name}.csv" in report
        assert len(pd.read_csv(out / "tables" / f"{name}.csv")) > 0
    assert json.loads((out / "config.json").read_text())["mlp_steps"] == demo.tiny().mlp_steps


def test_report_numbers_match_the_tables(out):
    report = (out / "report.md").read_text()
    ve = pd.read_csv(out / "tables" / "variance_explained.csv")
    last = ve.query("model == 'MLP' and measure == 'r2'")
    last = last[last.site == last.site.iloc[-1]].set_index("feature").value
    easy, hard = map(float, re.search(
        r"easy\s+feature explains ([\d.]+)% of the representation's variance and the hard one"
        r"\s+([\d.]+)%", report).groups())
    assert easy == pytest.approx(100 * last["easy"], abs=0.051)
    assert hard == pytest.approx(100 * last["hard"], abs=0.051)
    probes = pd.read_csv(out / "tables" / "erasure_probes.csv")
    site = re.search(r"## 3\. Erasing the easy feature at (\S+)", report).group(1)
    rows = probes[(probes.site == site) & (probes.feature == "easy")
                  & (probes.probe == "linear") & (probes.eraser == "LEACE")]
    leace = rows.accuracy.mean()
    assert f"to\n{100 * leace:.1f}%" in report or f"to {100 * leace:.1f}%" in report


def test_erasure_removes_the_linear_trace_at_the_erased_layer(out):
    probes = pd.read_csv(out / "tables" / "erasure_probes.csv")
    linear = probes.query("feature == 'easy' and probe == 'linear'")
    site = linear.site.iloc[0]  # the erased layer comes first
    by = linear[linear.site == site].groupby("eraser").accuracy.mean()
    assert by["none"] > 0.9
    assert by["LEACE"] < by["none"] - 0.25


def test_step_four_leace_lengthens_the_code_on_erased_digits(out):
    report = (out / "report.md").read_text()
    assert "## 4. Training on erased digits" in report
    mdl = pd.read_csv(out / "tables" / "mdl.csv").query("arch == 'mlp'")
    by = mdl.groupby("eraser").bits_per_sample.mean()
    assert by["leace"] > by["control"] + 0.5
