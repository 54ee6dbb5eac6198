"""`featurebias run ANALYSIS --launcher ...`: what reaches the analysis' config, clear refusals."""

from __future__ import annotations

import dataclasses

import pytest

from featurebias import cli
from featurebias.errors import ConfigError
from featurebias.launch import analysis_overrides


@dataclasses.dataclass(frozen=True)
class WithLauncher:
    seeds: int = 2
    launcher: str = "local"


@dataclasses.dataclass(frozen=True)
class WithoutLauncher:
    seeds: int = 2


@pytest.mark.parametrize(("config", "launcher", "expected"), [
    (WithLauncher, "slurm", ["seeds=3", "launcher=slurm"]),
    (WithLauncher, "local", ["seeds=3", "launcher=local"]),
    (WithLauncher, None, ["seeds=3"]),
    (WithoutLauncher, "local", ["seeds=3"]),  # nothing to pass: the analysis runs here
])
def test_the_launcher_reaches_configs_that_have_the_field(config, launcher, expected):
    assert analysis_overrides(config, launcher, ["seeds=3"]) == expected


@pytest.mark.parametrize(("launcher", "match"), [
    ("slurm", "has no sweep to spread over SLURM jobs"),
    ("torchrun", "start the command with torchrun"),
    ("mpi", "launcher must be one of"),
])
def test_launchers_that_cannot_apply_are_refused(launcher, match, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match=match):
        analysis_overrides(WithoutLauncher, launcher)


@pytest.mark.parametrize(("launcher", "match"), [
    ("slurm", "has no sweep to spread over SLURM jobs"),
    ("torchrun", "start the command with torchrun"),
])
def test_the_command_reports_the_refusal_before_any_work(launcher, match, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    code = cli.main(["run", "demo", "--launcher", launcher, "--out", str(tmp_path / "out")])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before the output folder was made


def test_an_unknown_launcher_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "demo", "--launcher", "mpi"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'mpi'" in capsys.readouterr().err
