"""Smoke test of benchmarks/linearisation.py at quick sizes: JSON rows, ratios, modes agree."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "linearisation.py"


def test_quick_linearisation_benchmark(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_linearisation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "linearisation.json"
    returned = module.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))

    cfg = module.QUICK
    assert written["quick"] is True and written["device"] == "cpu"
    assert written["config"]["ntk_n"] == cfg.ntk_n and written["torch"] and written["date"]
    rows = {row["task"]: row for row in written["rows"]}
    assert set(rows) == {"step_mlp", "step_small_cnn", "ntk_jacobian", "ntk_ntk_vp"}
    for name in ("step_mlp", "step_small_cnn"):
        row = rows[name]
        assert row["standard_step_s"] > 0 and row["linearised_step_s"] > 0
        assert math.isclose(row["ratio"], row["linearised_step_s"] / row["standard_step_s"])
    for name in ("ntk_jacobian", "ntk_ntk_vp"):
        row = rows[name]
        assert row["examples"] == cfg.ntk_n and row["seconds"] > 0
        assert row["peak_rss_increase_bytes"] >= 0
        assert row["max_rel_diff_between_modes"] < 1e-4  # the two recipes, one kernel
    assert "ratio" in capsys.readouterr().out
