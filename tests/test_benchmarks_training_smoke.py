"""Smoke test of benchmarks/training.py at quick sizes: rows, ratios, and agreeing curves."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training.py"


def test_quick_training_benchmark(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "training.json"
    returned = module.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))

    cfg = module.QUICK
    assert written["quick"] is True and written["device_used"] == "cpu"
    assert written["config"]["steps"] == cfg.steps and written["torch"] and written["date"]
    rows = {row["scenario"]: row for row in written["rows"]}
    assert set(rows) == {"no_val", f"val_every_{cfg.eval_every}"}
    for row in rows.values():
        assert row["featurebias_s"] > 0 and row["bare_s"] > 0
        assert math.isclose(row["overhead_ratio"], row["featurebias_s"] / row["bare_s"])
        assert math.isclose(row["featurebias_steps_per_s"], cfg.steps / row["featurebias_s"])
    # the same model, data, batch order and optimiser: both loops see the same val curve
    assert rows[f"val_every_{cfg.eval_every}"]["max_abs_val_loss_diff"] < 1e-5
    assert rows["no_val"]["max_abs_val_loss_diff"] == 0
    assert "ratio" in capsys.readouterr().out
