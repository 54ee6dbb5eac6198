"""Smoke test of benchmarks/erasure.py: quick sizes, JSON into a temporary folder."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "erasure.py"
TASKS = ["leace_fit", "leace_apply", "qleace_fit", "qleace_apply"]


def load_benchmark(monkeypatch):
    """Import the script as a module (registered, as dataclasses need, for this test only)."""
    spec = importlib.util.spec_from_file_location("benchmark_erasure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_expected_json(tmp_path, capsys, monkeypatch):
    bench = load_benchmark(monkeypatch)
    out = tmp_path / "nested" / "erasure.json"
    returned = bench.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))

    assert written["quick"] is True
    assert written["config"] == {**written["config"], "n": bench.QUICK.n, "d": bench.QUICK.d,
                                 "k": bench.QUICK.k}
    assert written["threads"] >= 1
    assert written["torch"] and written["date"]
    assert [row["task"] for row in written["rows"]] == TASKS
    for row in written["rows"]:
        assert row["featurebias_s"] > 0 and row["concept_erasure_s"] > 0
        assert math.isclose(row["speedup"], row["concept_erasure_s"] / row["featurebias_s"])
        assert row["repeats"] >= 3
        # Both libraries computed the same erased data (float32 outputs).
        assert row["max_abs_diff"] <= 1e-4 * max(1.0, row["output_scale"])

    printed = capsys.readouterr().out
    for task in TASKS:
        assert task in printed
