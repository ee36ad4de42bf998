"""The GPU check's dry run (scripts/gpu_check.py --dry-run): the code paths of the CUDA check, on the CPU.

The real check runs only on the GPU machine (docs/gpu.md); this keeps its driver from rotting in between.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PHASES = {"tests", "kernels", "train", "render", "bench"}
KERNELS = {"rays", "view_rays", "stratified", "importance", "composite_forward", "composite_backward", "encoding"}


def test_dry_run_walks_every_phase_and_the_loss_falls(tmp_path):
    # A budget far above the dry run's ~50 s, so that a busy machine slows the test down but does not fail it.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path),
                           "--budget-s", "600"], capture_output=True, text=True, timeout=900, cwd=REPO,
                          env={**os.environ, "NERFPRUNE_TI_ARCH": "cpu"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])  # the last line of stdout is the JSON
    assert last == json.loads((tmp_path / "gpu_check.json").read_text())
    assert {"mode", "device", "taichi_arch", "versions", "phases", "elapsed_s", "ok"} <= set(last)
    assert last["mode"] == "dry-run" and last["device"] == "cpu" and last["ok"] is True
    phases = last["phases"]
    assert set(phases) == PHASES and all(p["ok"] and p["seconds"] > 0 for p in phases.values())
    assert phases["tests"]["passed"] > 0 and phases["tests"].get("failed", 0) == 0
    assert set(phases["kernels"]["max_abs_diff"]) == KERNELS and phases["kernels"]["wrong_device_refused"]
    for preset in ("small", "nerf"):
        train = phases["train"][preset]
        assert train["fell"] and train["loss_last"] < train["loss_first"] and train["checkpoint_roundtrip"]
        for pipeline in ("nerfprune", "torch"):
            row = phases["bench"]["rows"][f"{preset}/{pipeline}"]
            assert row["train_it_per_s"] > 0 and row["render_s_per_view"] > 0
    assert (tmp_path / phases["render"]["png"]).stat().st_size > 0


def test_without_cuda_the_real_check_refuses_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the refusal is for machines without one")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--dry-run" in lines[0], proc.stderr
