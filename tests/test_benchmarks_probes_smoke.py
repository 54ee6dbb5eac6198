"""Smoke test of benchmarks/probes.py at quick sizes: JSON rows, totals and ratios consistent."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "probes.py"


def test_quick_probes_benchmark(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_probes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "probes.json"
    returned = module.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))

    cfg = module.QUICK
    assert written["quick"] is True and written["featurebias_device"] == "cpu"
    assert written["config"]["n"] == cfg.n and written["config"]["d"] == cfg.d
    assert written["torch"] and written["scikit_learn"] and written["date"]
    rows = written["rows"]
    assert len(rows) == cfg.sites * len(cfg.tols)
    for row in rows:
        assert row["featurebias_s"] > 0 and row["sklearn_s"] > 0
        assert math.isclose(row["speedup"], row["sklearn_s"] / row["featurebias_s"])
        assert 1 / cfg.k <= row["sklearn_accuracy"] <= 1
        # the same model at the same C and tol: the held-out accuracies agree
        assert abs(row["accuracy_diff_points"]) <= 3
    for summary in written["summary"]:
        assert math.isclose(summary["speedup"],
                            summary["sklearn_total_s"] / summary["featurebias_total_s"])
    assert "total" in capsys.readouterr().out
    sweep = written["sweep_rows"]
    assert [r["site"] for r in sweep] == [r["site"] for r in rows[:cfg.sites]]
    for row in sweep:
        assert math.isclose(row["speedup"], row["sklearn_s"] / row["featurebias_s"])
        # probe_sites and scikit-learn fit the same folds at the same C and tol
        assert 1 / cfg.k <= row["sklearn_accuracy"] <= 1
        assert row["max_abs_fold_diff_points"] <= 3
    assert math.isclose(written["sweep_summary"]["speedup"],
                        written["sweep_summary"]["sklearn_total_s"]
                        / written["sweep_summary"]["featurebias_total_s"])
    cv_rows = written["cv_rows"]
    assert [r["site"] for r in cv_rows] == [r["site"] for r in rows[:cfg.sites]]
    for row in cv_rows:
        assert row["featurebias_C"] in cfg.cv_Cs and row["sklearn_C"] in cfg.cv_Cs
        assert math.isclose(row["speedup"], row["sklearn_s"] / row["featurebias_s"])
        assert abs(row["accuracy_diff_points"]) <= 5
    assert math.isclose(written["cv_summary"]["speedup"], written["cv_summary"]["sklearn_total_s"]
                        / written["cv_summary"]["featurebias_total_s"])
