"""Every example in README.md's "Use" section runs: each ```python block and each `nerfprune ...` line.

They run at a tiny scale, in `tmp_path` (the examples' relative `outputs/` land there), after
these rewrites, and no others (`SCALE_DOWN` below):
- Python: `iterations=N` -> `iterations=2` with the tiny preset, batch 64 and 8 + 8 samples;
- shell: `--iterations N` -> `--iterations 2` with the same sizes; `--scale X` (the study) ->
  `--scale 0.0001 --preset tiny --views 1 --repeats 1`; `../shared/datasets` -> the datasets
  folder (`conftest.datasets_dir`, NERFPRUNE_DATASETS overrides it).
Lines that name a real dataset are skipped, with the reason, when that folder is absent.
The shell lines run in this process (`nerfprune.cli.main`); tests/test_cli.py checks that the
console script is the same program.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO, datasets_dir

TINY_PY = "batch_size=64, model=nerfprune.NerfModelConfig(preset='tiny'), render=nerfprune.RenderConfig(n_coarse=8, n_fine=8)"
TINY_CLI = "--preset tiny --batch-size 64 --n-coarse 8 --n-fine 8"
SCALE_DOWN = [  # (pattern, replacement, applies to "python" | "shell")
    (r"\biterations=\d+", f"iterations=2, {TINY_PY}", "python"),
    (r"--iterations \d+", f"--iterations 2 {TINY_CLI}", "shell"),
    (r"--scale [0-9.]+", "--scale 0.0001 --preset tiny --views 1 --repeats 1", "shell"),
    (r"\.\./shared/datasets", lambda _: str(datasets_dir()), "shell"),
]


def use_section() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Use\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has a '## Use' section"
    return match.group(1)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", use_section(), re.S)


def shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", use_section(), re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()  # a comment after the command is prose
            if command.startswith("nerfprune "):
                lines.append(command)
    return lines


def scaled(code: str, kind: str) -> str:
    for pattern, replacement, applies in SCALE_DOWN:
        if applies == kind:
            code = re.sub(pattern, replacement, code)
    return code


def test_the_use_section_has_examples():
    assert len(python_blocks()) >= 1 and len(shell_lines()) >= 5
    assert any("nerfprune.prune(" in block for block in python_blocks())
    assert all(scaled(line, "shell") != line or "--iterations" not in line for line in shell_lines())


@pytest.mark.parametrize("index", range(len(python_blocks())), ids=lambda i: f"python-block-{i}")
def test_python_example_runs(index, tmp_path, monkeypatch):
    import nerfprune

    code = scaled(python_blocks()[index], "python")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"nerfprune": nerfprune}
    exec(compile(code, f"README.md python block {index}", "exec"), namespace)  # noqa: S102 - our own README
    if "summary" in namespace:  # the pruning example: rounds ran and the final model is loadable
        summary = namespace["summary"]
        assert len(summary["rounds"]) == 3 and Path(summary["final"]).is_dir()
        assert summary["rounds"][-1]["sparsity"] == pytest.approx(0.95, abs=0.01)
    if "metrics" in namespace:
        assert {"psnr", "ssim", "l2", "render_time"} <= set(namespace["metrics"])


def needs_datasets(line: str) -> bool:
    return "../shared/datasets" in line


def test_shell_examples_run_in_order(tmp_path, monkeypatch, capsys):
    """The lines on the built-in scene depend on each other (train, then render/eval/prune the result),
    so they run in order, in one folder."""
    from nerfprune.cli import main

    monkeypatch.chdir(tmp_path)
    for line in [line for line in shell_lines() if not needs_datasets(line)]:
        assert main(shlex.split(scaled(line, "shell"))[1:]) == 0, f"README line failed: {line}\n{capsys.readouterr().err}"
    out = capsys.readouterr().out
    assert "trained 2 iterations" in out and "PSNR" in out and "pruned model:" in out
    assert (tmp_path / "outputs" / "eval-pruned" / "metrics.json").exists()
    assert list((tmp_path / "outputs" / "render").glob("orbit.*")), "the orbit video was written"


@pytest.mark.parametrize("line", [line for line in shell_lines() if needs_datasets(line)] or ["(none)"])
def test_shell_examples_on_real_datasets_run(line, tmp_path, monkeypatch):
    """Each line that names a real dataset runs on its own (a study at 1-2 iterations: about a minute)."""
    from nerfprune.cli import main

    if line == "(none)":
        pytest.skip("the Use section names no real dataset")
    if not datasets_dir().is_dir():
        pytest.skip(f"{datasets_dir()} is absent (set NERFPRUNE_DATASETS): cannot run {line!r}")
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(scaled(line, "shell"))[1:]) == 0, f"README line failed: {line}"
