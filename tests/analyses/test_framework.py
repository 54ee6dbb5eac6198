"""Analysis configs (files and key=value overrides) and reports (markdown, CSV, PNG)."""

from __future__ import annotations

import dataclasses
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from featurebias.analyses._config import as_dict, load_config  # noqa: E402
from featurebias.analyses._report import Report, figure_link, markdown_table  # noqa: E402
from featurebias.errors import ConfigError  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Cfg:
    steps: int = 10
    lr: float = 1e-3
    fast: bool = False
    name: str = "a"
    seeds: tuple[int, ...] = (0, 1)
    every: int | None = 5


def test_defaults_and_typed_overrides():
    assert load_config(Cfg) == Cfg()
    cfg = load_config(Cfg, overrides=["steps=20", "lr=0.5", "fast=yes", "name=b",
                                      "seeds=3,4,5", "every=none"])
    assert cfg == Cfg(20, 0.5, True, "b", (3, 4, 5), None)
    assert load_config(Cfg, overrides=["seeds=[7]", "every=2"]).seeds == (7,)


def test_files_then_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('steps = 30\nseeds = [1, 2]\nname = "t"\n')
    assert load_config(Cfg, toml, ["name=u"]) == Cfg(steps=30, seeds=(1, 2), name="u")
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"fast": True, "every": None}))
    assert load_config(Cfg, js) == Cfg(fast=True, every=None)
    assert as_dict(Cfg()) == {"steps": 10, "lr": 1e-3, "fast": False, "name": "a",
                              "seeds": [0, 1], "every": 5}


@pytest.mark.parametrize(("overrides", "message"), [
    (["stepz=3"], "unknown config key"),
    (["steps=abc"], "expects int"),
    (["steps=1.5"], "expects int"),
    (["fast=maybe"], "expects bool"),
    (["steps"], "key=value"),
])
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, overrides=overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Cfg, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(Cfg, bad)


def test_report_writes_tables_figures_and_markdown(tmp_path):
    report = Report("A title", config={"steps": 3})
    frame = report.table("per site", pd.DataFrame({"site": ["a", "b"], "value": [0.5, 0.25]}))
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    report.figure("curve", fig)
    report.text("Finding", f"The value is {frame.value[0]:.2f}.\n\n{figure_link('curve', 'c')}")
    path = report.write(tmp_path / "out")
    plt.close(fig)
    text = path.read_text()
    assert text.startswith("# A title") and "The value is 0.50." in text
    assert "![c](figures/curve.png)" in text and "tables/per_site.csv" in text
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out/tables/per_site.csv"), frame)
    assert (tmp_path / "out/figures/curve.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out/config.json").read_text()) == {"steps": 3}


def test_markdown_table_and_unwritable_folder(tmp_path):
    md = markdown_table(pd.DataFrame({"a": ["x"], "b": [0.12345]}), digits=2)
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x | 0.12 |"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write to output folder"):
        Report("t").write(blocker / "sub")
