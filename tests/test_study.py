"""The study at a tiny scale: the report and its numbers, the DAG order, resumption, workers and engines, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest
import torch

import nerfprune.experiments.cells as cells_module
from nerfprune.errors import CheckpointError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.experiments.engines import RunConfig
from nerfprune.experiments.plots import PLOTS
from nerfprune.experiments.report_data import Stat
from nerfprune.experiments.study import StudyConfig, load_study_scene, run_study
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import Trainer, load_model
from test_report_doc import Links, external_refs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## Status", "## Answers", "## Setting", "## The 2022 table beside ours", "## Quality of every model",
            "## Render time of every model", "## Where the time goes: per-stage profile", "## Plots",
            "## Rendered | ground truth | error", "## Reproduce")
MODEL_RESULT_KEYS = ("train", "val", "sparsity", "iterations", "total_iterations", "seed")


def tiny_config(**overrides) -> StudyConfig:
    """Grid N = (5, 10) at scale 0.001 on a 16x16 built-in scene, tiny network, 2 seeds at N = 5, few views."""
    train = replace(StudyConfig().train, batch_size=64, model=NerfModelConfig(preset="tiny"),
                    render=RenderConfig(n_coarse=8, n_fine=8))
    base = dict(iterations=(5000, 10000), scale=0.001, train=train, seeds=(0, 1), train_views=2, val_views=2,
                timing_repeats=3, profile_repeats=1, image_views=1, sweep=(0.8,))
    return StudyConfig(**{**base, **overrides})


def one_point(**overrides) -> StudyConfig:
    """N = 5 only, global pruning only, no sweep: dense 5 and 10, pruned 5 + 5, their timings, the profile."""
    return tiny_config(**{"iterations": (5000,), "recipes": tiny_config().recipes[:1], "sweep": (), "seeds": (0,),
                          **overrides})


def run_log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "run-log.jsonl").read_text().splitlines()]


def model_numbers(results: dict) -> dict:
    return {n: {k: c[k] for k in MODEL_RESULT_KEYS} for n, c in results["cells"].items() if c["kind"] in ("dense", "pruned")}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cfg = tiny_config()
    return cfg, out, run_study(cfg, out)


def test_the_grid_has_the_2022_cells_and_the_controls(study):
    cfg, out, results = study
    assert set(results["cells"]) == set(results["plan"]) and set(results["status"].values()) == {"done"}
    dense = {c["total_iterations"] for c in results["cells"].values() if c["kind"] == "dense"}
    assert dense == {5, 10, 20}  # N, and the equal-budget controls 2N
    seeds = Counter(c["info"]["group"] for c in results["cells"].values() if c["kind"] in ("dense", "pruned"))
    assert seeds["dense-5"] == seeds["pruned-global-5"] == seeds["pruned-structured-5"] == seeds["dense-10"] == 2
    assert seeds["pruned-global-10"] == seeds["dense-20"] == 1
    pruned = results["cells"]["pruned-global-10-s0"]
    assert (pruned["iterations"], pruned["total_iterations"]) == (10, 20) and pruned["sparsity"] == pytest.approx(0.95, abs=0.01)
    timed = results["cells"]["time-pruned-global-10-s0"]["paths"]
    assert {"dense", "masked", "compacted"} == set(timed)
    # the sample count beside the time: masked and compacted share one grid and one function
    assert all(p["samples_per_ray"] > 0 for p in timed.values())
    assert timed["masked"]["samples_per_ray"] == pytest.approx(timed["compacted"]["samples_per_ray"], rel=0.02)
    assert results["cells"]["pruned-structured-10-s0"]["spec"]["prune"]["method"] == "structured"


def test_cells_ran_after_their_dependencies(study):
    cfg, out, results = study
    log = run_log(out)
    position = {(e["cell"], e["event"]): i for i, e in enumerate(log)}
    assert Counter(e["event"] for e in log) == {"start": len(results["plan"]), "done": len(results["plan"])}
    for name, plan in results["plan"].items():
        for dep in plan["deps"]:
            assert position[(dep, "done")] < position[(name, "start")], (dep, name)
    assert results["cells"]["dense-10-s0"]["resumed_from"] == 5  # the chain: dense 10 continued dense 5


def test_a_continued_dense_cell_is_the_fresh_run(study):
    """The chain rests on exact resumption with a fixed lr schedule: dense-10 equals 10 iterations from scratch."""
    cfg, out, results = study
    fresh = Trainer(load_study_scene(cfg), cfg.train_config(10, 1), out / "fresh-10").run()
    chained, _, _ = load_model(out / "dense-10-s1")
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, chained.state_dict()[name]), name


def test_report_sections_plots_and_self_contained_html(study):
    cfg, out, results = study
    report = (out / "report.md").read_text()
    positions = [report.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    for name in PLOTS:
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        assert f"plots/{name}.png" in report
    images = sorted((out / "images").glob("*/*.png"))
    assert {p.parent.name for p in images} == {"dense-10-s0", "dense-20-s0", "pruned-global-10-s0", "pruned-structured-10-s0"}
    page = (out / "report.html").read_text()
    assert external_refs(page) == []
    assert page.count('src="data:image/png;base64,') == len(PLOTS) + len(images)
    parser = Links()
    parser.feed(page)
    text = " ".join(parser.text)
    for row in (line for line in report.splitlines() if line.startswith("| ") and "---" not in line):
        for cell in row.strip("|").split(" | "):
            assert cell.strip().replace("\\|", "|") in text, cell
    assert "23.62" in report and "26.20" in report and "2.06 s" in report and "2.50 s" in report  # the 2022 figures
    assert "pending" not in report
    timing = report.split("## Render time of every model")[1].split("## ")[0]
    rows = [line for line in timing.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(set(rows)) == sum(len(c["paths"]) for c in results["cells"].values() if c["kind"] == "time")


def test_report_numbers_are_the_cells(study):
    """Re-evaluate a checkpoint: the cell holds what the evaluation returns, the report prints its seed mean ± sd."""
    cfg, out, results = study
    cell = results["cells"]["pruned-global-5-s1"]
    model, train_cfg, _ = load_model(out / cell["checkpoint"])
    val = evaluate_views(model, load_study_scene(cfg), train_cfg.render, EvalConfig(split="val", max_views=2, timing_repeats=0))
    assert val["psnr"]["mean"] == pytest.approx(cell["val"]["psnr"]["mean"], abs=1e-6)
    seeds = [results["cells"][f"pruned-global-5-s{s}"]["val"]["psnr"]["mean"] for s in (0, 1)]
    expected = Stat(seeds, 2).fmt()
    assert re.search(r"\d ± \d", expected) and "(2 seeds)" in expected
    row = next(line for line in (out / "report.md").read_text().splitlines()
               if line.startswith("| pruned global 95% | 5 | 5 | 10 |"))
    assert row.split(" | ")[4] == expected
    answer = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("- **At equal budget** (global"))
    dense10 = Stat([results["cells"][f"dense-10-s{s}"]["val"]["psnr"]["mean"] for s in (0, 1)], 2)
    assert f"{Stat(seeds, 2).mean:.2f} vs {dense10.mean:.2f} dB after 5 + 5 vs 10" in answer


def test_a_finished_study_runs_nothing_again(study):
    cfg, out, first = study
    mtimes = {p: p.stat().st_mtime_ns for p in [*out.rglob("checkpoint.safetensors"), *(out / "cells").glob("*.json")]}
    again = run_study(cfg, out)
    assert again["ran_this_time"] == []
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert model_numbers(again) == model_numbers(first)


def test_changed_settings_are_refused_before_anything_is_written(study):
    cfg, out, _ = study
    before = (out / "study_config.json").read_text()
    with pytest.raises(CheckpointError, match=r"time-dense-5-s0 finished with other settings .*repeats"):
        run_study(replace(cfg, timing_repeats=cfg.timing_repeats + 1), out)
    assert (out / "study_config.json").read_text() == before


def test_interrupted_between_and_inside_cells_resumes(tmp_path, monkeypatch):
    """A dense cell stopped half way resumes from its checkpoint; a run killed between cells keeps what finished,
    reports the rest as pending, and the next run computes only those."""
    cfg, out = one_point(), tmp_path / "s"
    # What an interrupted dense-5-s0 leaves: its checkpoint at iteration 2 (the Trainer saves one on Ctrl-C).
    Trainer(load_study_scene(cfg), cfg.train_config(5, 0), out / "dense-5-s0").run(until=2)

    def killed(ctx, cell):
        raise KeyboardInterrupt

    monkeypatch.setitem(cells_module.COMPUTE, "pruned", killed)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, out)
    partial = json.loads((out / "results.json").read_text())
    assert {n for n, s in partial["status"].items() if s == "done"} == {"dense-5-s0", "dense-10-s0"}
    assert partial["cells"]["dense-5-s0"]["resumed_from"] == 2
    report, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "| pruned-global-5-s0 | pending | - |" in report and "pending (needs pruned-global-5)" in report
    assert "pending" in page and external_refs(page) == []
    done_at = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}

    monkeypatch.undo()
    final = run_study(cfg, out)
    assert "dense-5-s0" not in final["ran_this_time"] and "pruned-global-5-s0" in final["ran_this_time"]
    assert set(final["status"].values()) == {"done"}
    assert all(p.stat().st_mtime_ns == t for p, t in done_at.items())
    assert Counter(e["cell"] for e in run_log(out) if e["event"] == "done") == Counter(list(final["plan"]))  # each once
    fresh = Trainer(load_study_scene(cfg), cfg.train_config(5, 0), tmp_path / "fresh").run()
    resumed, _, _ = load_model(out / "dense-5-s0")
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in fresh.state_dict().items())


@pytest.fixture(scope="module")
def serial_two_seeds(tmp_path_factory):
    cfg = one_point(seeds=(0, 1))
    out = tmp_path_factory.mktemp("serial")
    return cfg, run_study(cfg, out, RunConfig(workers=1, threads=1))


def test_two_workers_give_the_results_of_one(serial_two_seeds, tmp_path):
    cfg, serial = serial_two_seeds
    parallel = run_study(cfg, tmp_path / "p", RunConfig(workers=2, threads=1))
    assert model_numbers(parallel) == model_numbers(serial)
    log = run_log(tmp_path / "p")
    training = [e for e in log if not e["cell"].startswith(("time-", "profile"))]
    assert os.getpid() not in {e["pid"] for e in training}  # in worker processes
    assert {e["pid"] for e in log if e["cell"].startswith(("time-", "profile"))} == {os.getpid()}  # timings in the driver
    spans = {}
    for e in training:
        spans.setdefault(e["cell"], {})[e["event"]] = e["time"]
    assert any(a["start"] < b["done"] and b["start"] < a["done"]
               for x, a in spans.items() for y, b in spans.items() if x < y), "no two cells ran at the same time"


def test_submitit_local_mode_gives_the_results_of_one_process(serial_two_seeds, tmp_path):
    """The cluster engine in its local mode (one subprocess per job); seed 0 only: its cells are the serial run's."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'nerfprune[cluster]'): "
                                           "the SLURM engine cannot be tested in its local mode")
    cfg, serial = serial_two_seeds
    out = tmp_path / "q"
    jobs = run_study(replace(cfg, seeds=(0,)), out, RunConfig(engine="submitit", cluster="local", workers=2, threads=1,
                                                              poll_s=0.2))
    expected = {n: v for n, v in model_numbers(serial).items() if n.endswith("-s0")}
    assert model_numbers(jobs) == expected and len(expected) == 3
    assert len(list((out / "submitit").glob("*/*_result.pkl"))) == 3  # one submitit job per training cell
    assert os.getpid() not in {e["pid"] for e in run_log(out) if e["cell"] in expected}


def test_cli_help_and_bad_flags():
    run = [sys.executable, "-m", "nerfprune", "study"]
    help_out = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=60)
    assert help_out.returncode == 0
    assert all(flag in help_out.stdout for flag in ("--scale", "--scene", "--workers", "--engine", "--recipe", "--seeds"))
    for flags, message in ((["--scale", "lots"], "--scale"), (["--scale", "0"], "--scale must be > 0"),
                           (["--recipe", "x"], "expected NAME=METHOD"), (["--engine", "ray"], "--engine")):
        bad = subprocess.run(run + flags, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, (flags, bad.stderr)


def test_cli_from_scratch_then_resumed(tmp_path):
    """One command writes the report; the same command again runs no cell; --report-only runs none either."""
    out = tmp_path / "s"
    run = [sys.executable, "-m", "nerfprune", "study", "--scale", "0.0005", "--iterations", "5000", "--preset", "tiny",
           "--views", "1", "--repeats", "1", "--seeds", "0", "--sweep", "--recipe", "global=global", "--threads", "1",
           "--out", str(out)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "0 resumed, 0 pending" in first.stdout and str(out / "report.md") in first.stdout
    computed = json.loads((out / "results.json").read_text())
    machine_line = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("- Machine:"))
    again = subprocess.run([sys.executable, "-m", "nerfprune", "study", "--config", str(out / "study_config.json"),
                            "--out", str(out), "--report-only", "--threads", "2", "--workers", "3"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 cells run" in again.stdout and "0 pending" in again.stdout, again.stdout + again.stderr
    reported = json.loads((out / "results.json").read_text())  # the report describes the run that computed the cells
    assert reported["machine"] == computed["machine"] and reported["run"] == computed["run"]
    assert machine_line in (out / "report.md").read_text() and "with 1 worker(s)" in machine_line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_workers_and_the_next_run_resumes(tmp_path):
    """`kill` of the driver takes Ctrl-C's path: exit 130, no worker left training, checkpoints kept, and the
    same command again finishes the grid (before, the workers outlived the driver and kept writing)."""
    import signal
    import time

    out = tmp_path / "s"
    run = [sys.executable, "-m", "nerfprune", "study", "--scale", "0.04", "--iterations", "5000", "--preset", "tiny",
           "--views", "1", "--repeats", "1", "--seeds", "0", "--sweep", "--recipe", "global=global", "--threads", "1",
           "--no-equal-budget", "--out", str(out)]
    driver = subprocess.Popen(run + ["--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / "dense-200-s0" / "checkpoint.safetensors").exists():  # a worker is training, past a save
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
            time.sleep(0.2)
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=120)
    finally:  # whatever happens, nothing of this test keeps running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    workers = {e["pid"] for e in run_log(out)} - {driver.pid}
    assert workers and not any(_alive(pid) for pid in workers), "a worker outlived the driver"
    assert (out / "report.md").exists() and "pending" in (out / "report.md").read_text()
    # the dense cell was stopped past a save, unless it ran to its end before the signal came (a race: 150
    # tiny-net iterations can take less than the poll interval); then the checkpoint it left is its last
    finished = json.loads((out / "results.json").read_text())["status"].get("dense-200-s0") == "done"
    again = subprocess.run(run, capture_output=True, text=True, timeout=600)  # in this process: no pool to start
    assert again.returncode == 0, again.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["status"].values()) == {"done"}
    assert finished or results["cells"]["dense-200-s0"].get("resumed_from", 0) > 0, "the stopped cell started over"
