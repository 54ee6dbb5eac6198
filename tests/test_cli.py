"""The `featurebias` command: the demo runs end to end and reports every eraser."""

from __future__ import annotations

import re

import pytest

from featurebias.cli import main


def test_demo_runs_and_erasure_lowers_linear_accuracy(capsys):
    assert main(["demo", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    accuracy = {m.group(1): float(m.group(2)) for m in
                re.finditer(r"^\s+(\S+)\s+linear probe\s+([\d.]+)%", out, re.M)}
    assert set(accuracy) == {"none", "LEACE", "QLEACE", "ALF-QLEACE"}
    assert accuracy["none"] > 90
    assert accuracy["LEACE"] < 20


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2
