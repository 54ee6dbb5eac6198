"""Smoke test of benchmarks/distributed.py at quick sizes: one torchrun job, JSON consistent."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed.py"


def test_quick_distributed_benchmark(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_distributed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "distributed.json"
    returned = module.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))

    cfg = module.QUICK
    assert written["quick"] is True and written["config"]["n"] == cfg.n
    assert written["torch"] and written["date"]
    rows = written["rows"]
    assert [(r["processes"], r["threads_per_process"]) for r in rows] == [(1, 1), (1, 2), (2, 1)]
    for row in rows:
        assert row["rows"] == cfg.n  # every row fitted, the 2-process one after the merge
        assert row["fit_s"] > 0 and row["update_s"] > 0 and row["eraser_s"] > 0
        assert math.isclose(row["speedup_vs_1x1"], rows[0]["fit_s"] / row["fit_s"])
    assert rows[0]["reduce_s"] < rows[2]["reduce_s"]  # one process has nothing to merge
    agree = written["agreement"]
    assert agree["rank"] == cfg.k - 1  # one-hot labels: the full rank of the concept
    assert agree["P_max_abs_diff"] < 1e-10
    assert agree["applied_max_abs_diff"] < 1e-10 * agree["applied_scale"]
    assert "wrote" in capsys.readouterr().out
