"""The `featurebias` command: listing, sites, and clear errors (the demo has its own test)."""

from __future__ import annotations

import pytest

from featurebias.cli import main


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


def test_list_names_every_analysis(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "erasure_learning_speed", "representation_bias",
                 "iterative_linearisation"):
        assert name in out


def test_sites_lists_hook_points_and_takes_constructor_arguments(capsys):
    assert main(["sites", "lenet"]) == 0
    assert "hook_pooled" in capsys.readouterr().out.split()
    assert main(["sites", "mlp", "--set", "hidden=(8, 8, 8)"]) == 0
    assert "layers.2.hook_post" in capsys.readouterr().out.split()


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "nonsense"], "unknown analysis 'nonsense'"),
    (["sites", "gpt5"], "unknown model 'gpt5'"),
    (["sites", "mlp", "--set", "depth=3"], "cannot build mlp"),
    (["demo", "--set", "mlp_stepz=3"], "unknown config key"),
    (["demo", "--set", "mlp_steps=many"], "expects int"),
    (["demo", "--set", "erase_layer=9"], "erase_layer must index"),
])
def test_bad_input_is_a_clear_error_with_exit_code_2(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_folder_fails_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "--out", str(blocker / "run")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_slurm_launcher_reaches_the_analysis_and_needs_submitit(capsys, tmp_path):
    code = main(["run", "iterative_linearisation", "--launcher", "slurm", "--set", "steps=2",
                 "--set", "seeds=1", "--set", "every=1", "--set", "kernel_logs=2",
                 "--out", str(tmp_path)])
    assert code == 2
    assert "submitit" in capsys.readouterr().err
