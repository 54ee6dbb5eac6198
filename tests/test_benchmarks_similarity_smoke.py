"""Smoke test of benchmarks/similarity.py at quick sizes: every row present, results agree."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "similarity.py"


def test_quick_similarity_benchmark(tmp_path, monkeypatch):
    pytest.importorskip("rsatoolbox")
    spec = importlib.util.spec_from_file_location("benchmark_similarity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "similarity.json"
    module.main(["--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    rows = {row["task"]: row for row in result["rows"]}
    assert set(rows) == {"cka_linear", "rdm_correlation", "rsa_spearman", "rsa_kendall_tau_a"}
    for row in rows.values():
        assert row["featurebias_s"] > 0 and row["baseline_s"] > 0
        assert row["max_abs_diff"] < 1e-10  # the same numbers as the baseline
    cka_row = rows["cka_linear"]
    assert cka_row["matrix_bytes_featurebias"] < cka_row["matrix_bytes_baseline"]
    mem_ours, mem_gram = cka_row["memory_featurebias"], cka_row["memory_baseline"]
    assert mem_ours["value"] == pytest.approx(mem_gram["value"], abs=1e-10)
    assert mem_ours["peak_rss_increase_bytes"] < mem_gram["peak_rss_increase_bytes"]
