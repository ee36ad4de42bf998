"""The command line: help for every subcommand, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from nerfprune.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerfprune", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"nerfprune {command}" in out and "--threads" in out


def test_bad_flag_is_one_line_and_exit_2():
    result = run_cli("train", "--no-such-flag")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments: --no-such-flag" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_model_path_is_one_line_and_exit_2(tmp_path):
    result = run_cli("eval", "--model", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"nerfprune eval: error: --model {tmp_path / 'missing'}: no such file or folder"


def test_missing_scene_path_is_one_line_and_exit_2(tmp_path):
    result = run_cli("train", "--scene", str(tmp_path / "nowhere"), "--iterations", "1")
    assert result.returncode == 2
    assert "--scene" in result.stderr and "no such file or folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_value_is_exit_2(capsys):
    assert main(["train", "--iterations", "5", "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_unknown_preset_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:  # the choices come from the preset registry
        main(["train", "--iterations", "5", "--preset", "huge"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'huge'" in err and "'small'" in err and len(err.strip().splitlines()) == 1


def test_console_script_and_module_agree():
    from pathlib import Path

    script = Path(sys.executable).with_name("nerfprune")
    assert script.exists(), "the console script is installed beside the interpreter"
    a = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    b = run_cli("--help")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_cuda_backend_without_a_gpu_is_one_line_and_exit_2(how, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the error is for machines without one")
    args = ["train", "--iterations", "1", "--out", str(tmp_path)]
    if how == "flag":
        result = run_cli(*args, "--ti-arch", "cuda")
    else:
        import os

        result = subprocess.run([sys.executable, "-m", "nerfprune", *args], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "NERFPRUNE_TI_ARCH": "cuda"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("nerfprune train: error: Taichi backend 'cuda'") and "no CUDA GPU" in lines[0]
    assert not (tmp_path / "checkpoint.safetensors").exists()
