"""The study at its smallest scale: report structure, numbers traced to the run, resume, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.experiments.report import PLOTS
from nerfprune.experiments.study import StudyConfig, load_study_scene, run_study
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import load_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## Setting", "## The 2022 study beside ours", "## Dense vs pruned (ours)", "## Inference paths of each pruned model",
            "## Sparsity sweep", "## Where the time goes: per-stage profile", "## Plots", "## Rendered | ground truth | error",
            "## Reproduce")


def tiny_config(**overrides) -> StudyConfig:
    """Grid (5, 10) at scale 0.001 on a 16x16 built-in scene, tiny network, few views."""
    train = replace(StudyConfig().train, batch_size=64, model=NerfModelConfig(preset="tiny"),
                    render=RenderConfig(n_coarse=8, n_fine=8))
    base = dict(iterations=(5000, 10000), scale=0.001, train=train,
                train_views=2, val_views=2, timing_repeats=5, profile_repeats=2, image_views=1, sweep=(0.8, 0.95))
    return StudyConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cfg = tiny_config()
    return cfg, out, run_study(cfg, out)


def test_report_structure(study):
    cfg, out, results = study
    report = (out / "report.md").read_text()
    positions = [report.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    for name in PLOTS:
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"plots/{name}.png" in report
    images = sorted((out / "images").glob("*/*.png"))
    assert {p.parent.name for p in images} == {"dense-10", "pruned-global-10"}
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in images)
    # The quality table: one row per grid cell (2 grid points x dense + 2 methods), 11 columns.
    quality = report.split("## Dense vs pruned (ours)")[1].split("##")[0]
    rows = [line for line in quality.splitlines() if line.startswith("| ") and "iterations" not in line]
    assert len(rows) == 6 and all(r.count("|") == 12 for r in rows)
    assert "2.06 s" in report and "24.5" in report  # the 2022 figures, cited


def test_results_json_keys(study):
    cfg, out, results = study
    saved = json.loads((out / "results.json").read_text())
    assert {"config", "grid", "machine", "cells", "scene", "train_config", "report"} <= set(saved)
    assert saved["grid"] == [5, 10] and saved["resolution_divisor"] == 4
    assert {"cpu", "cores", "torch", "taichi", "torch_threads"} <= set(saved["machine"])
    names = set(saved["cells"])
    assert names == {"dense-5", "dense-10", "pruned-global-5", "pruned-global-10", "pruned-structured-5",
                     "pruned-structured-10", "sweep-0.8", "profile"}
    for name in names - {"profile"}:
        cell = saved["cells"][name]
        assert cell["seed"] == cfg.train.seed
        for t in cell["timing"].values():
            assert "unavailable" in t or t["repeats"] == cfg.timing_repeats
    for model, stages in saved["cells"]["profile"]["stages"].items():
        parts = sum(v for k, v in stages.items() if k != "total")
        assert parts == pytest.approx(stages["total"], rel=0.05), model
    assert saved["cells"]["profile"]["stages"]["masked"]["mask multiply"] > 0
    assert "mask multiply" not in saved["cells"]["profile"]["stages"]["dense"]


@pytest.mark.parametrize("cell_name", ["dense-10", "pruned-global-5"])
def test_numbers_are_the_evaluation(study, cell_name):
    """Re-evaluate the cell's saved checkpoint: the report must print what the evaluation returns."""
    cfg, out, results = study
    cell = results["cells"][cell_name]
    model, train_cfg, _ = load_model(cell["checkpoint"])
    scene = load_study_scene(cfg)
    val = evaluate_views(model, scene, train_cfg.render, EvalConfig(split="val", max_views=cfg.val_views, timing_repeats=0))
    assert val["psnr"]["mean"] == pytest.approx(cell["val"]["psnr"]["mean"], abs=1e-6)
    assert val["l2"]["median"] == pytest.approx(cell["val"]["l2"]["median"], abs=1e-9)
    row = next(line for line in (out / "report.md").read_text().splitlines()
               if line.startswith(f"| {'dense' if cell['kind'] == 'dense' else 'pruned'}") and f"| {cell['iterations']} |" in line
               and (cell["kind"] == "dense" or "(global)" in line))
    cols = [c.strip() for c in row.strip("|").split("|")]
    assert cols[4] == f"{val['l2']['mean']:.5f}" and cols[8] == f"{val['psnr']['mean']:.2f}"
    timing = cell["timing"]["dense" if cell["kind"] == "dense" else "masked"]
    assert re.match(rf"{timing['median_s']:.4f} ± ", cols[10])


def test_resume_skips_every_cell(study):
    cfg, out, first = study
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.safetensors")}
    again = run_study(cfg, out)
    assert again["ran_this_time"] == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.safetensors")} == mtimes  # no training happened
    assert again["cells"]["dense-10"]["val"] == first["cells"]["dense-10"]["val"]


def test_cli_help_and_bad_flag():
    run = [sys.executable, "-m", "nerfprune", "study"]
    help_out = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=60)
    assert help_out.returncode == 0 and "--scale" in help_out.stdout and "--scene" in help_out.stdout
    bad = subprocess.run(run + ["--scale", "lots"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--scale" in bad.stderr and "Traceback" not in bad.stderr
    zero = subprocess.run(run + ["--scale", "0"], capture_output=True, text=True, timeout=60)
    assert zero.returncode == 2 and "--scale must be > 0" in zero.stderr


def test_cli_from_scratch_then_resumed(tmp_path):
    """One command writes the report; the same command again resumes every cell."""
    run = [sys.executable, "-m", "nerfprune", "study", "--scale", "0.0005", "--preset", "tiny", "--views", "1",
           "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "s")]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "0 resumed" in first.stdout and str(tmp_path / "s" / "report.md") in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "0 cells run" in second.stdout, second.stdout + second.stderr
