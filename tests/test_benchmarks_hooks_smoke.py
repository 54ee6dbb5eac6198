"""Smoke test of benchmarks/hooks.py at quick sizes: every row present, ratios consistent."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hooks.py"


def test_quick_hooks_benchmark(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_hooks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "hooks.json"
    module.main(["--quick", "--out", str(out)])
    rows = {row["task"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"forward_erased_4_sites", "collect_2_sites_mid", "collect_2_sites_last"}
    assert rows["forward_erased_4_sites"]["featurebias_s"] > 0
    for name in ("collect_2_sites_mid", "collect_2_sites_last"):
        assert rows[name]["max_abs_diff"] == 0  # the same activations as run_with_cache
    mid = rows["collect_2_sites_mid"]
    mine, theirs = mid["memory_featurebias"], mid["memory_run_with_cache"]
    assert 0 < mine["kept_bytes"] < theirs["kept_bytes"]
    assert theirs["peak_rss_increase_bytes"] > 0
