"""The 2022 "Pruning NeRFs" study at the 2022 schedule, with the controls it lacked, as a DAG of cells.

The 2022 study trained a 2x128 NeRF for 5k / 10k / 20k iterations, pruned each model to 95 % by
global magnitude, fine-tuned it as many iterations again, and reported PSNR and one render time per
model. Its headline (pruned beats dense) compared 2k iterations of training with k. Here:

- the grid (`experiments/grid.py`): dense at N / 2N / 4N and at each pruned cell's total budget (the
  equal-budget control), pruned recipes at every N, seeds, a sparsity sweep, timings and a profile;
- each cell (`experiments/cells.py`) is one run, written to `cells/<name>.json` when finished: the
  unit of work and of resumption (a finished cell is never redone, an interrupted one resumes from
  its checkpoint);
- the cells run as a DAG (`experiments/scheduler.py`) on an engine (`experiments/engines.py`): this
  process, `--workers N` local processes, or submitit jobs (SLURM);
- the report (`experiments/report.py`) assembles whatever has finished and marks the rest pending.

`scale` multiplies every iteration count (and, when small, divides the image resolution), so the
same grid runs at a tenth of the schedule, or in a test.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import replace
from pathlib import Path

from nerfprune.config import atomic_write_json, check_out_dir, make_dir, save_config, to_dict
from nerfprune.experiments.cells import (CONFIG_NAME, RUN_LOG, StudyContext, context, finished, load_study_scene,
                                         run_cell)
from nerfprune.experiments.engines import RunConfig, make_engine
from nerfprune.experiments.grid import NERF_LR_DECAY_STEPS, PruneRecipe, StudyConfig, plan_cells
from nerfprune.experiments.scheduler import DagOutcome, run_dag

__all__ = ["NERF_LR_DECAY_STEPS", "PruneRecipe", "RunConfig", "StudyConfig", "load_study_scene", "run_study", "study"]
log = logging.getLogger(__name__)


def machine_description() -> dict:
    """CPU model, cores, thread settings and library versions: what the timings were measured on."""
    import numpy as np
    import taichi
    import torch

    from taichi_kernels.runtime import current_arch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "taichi": ".".join(map(str, taichi.__version__)), "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "taichi_arch": current_arch(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TI_CPU_MAX_NUM_THREADS", "NERFPRUNE_TI_ARCH")},
        "cuda": torch.cuda.is_available(),
    }


def prepare(cfg: StudyConfig, out_dir: str | Path) -> StudyContext:
    """Validate, plan, check every finished cell against the plan, then write `study_config.json`.

    Nothing is written before the checks: a changed setting that contradicts a finished cell is a
    `CheckpointError` naming the cell and the settings that differ.
    """
    plan = plan_cells(cfg)  # validates
    out = check_out_dir(out_dir, "study folder")
    scene = load_study_scene(cfg)
    ctx = StudyContext(out.resolve() if out.exists() else out, cfg, plan, scene)
    for name in plan:
        finished(ctx, name)
    make_dir(out, "study folder")
    save_config(cfg, out, CONFIG_NAME)
    return context(out, scene=scene)


def compute_summary(out: Path, cells: dict) -> dict:
    """What the finished cells cost: seconds per kind of cell and thread-seconds (a cell's seconds x its
    threads), and the wall span of `run-log.jsonl` (first start to last done, over every run that
    contributed; resumed runs included, the gaps between them too)."""
    kinds: dict[str, dict] = {}
    for cell in cells.values():
        k = kinds.setdefault(cell["kind"], {"cells": 0, "seconds": 0.0, "thread_seconds": 0.0})
        k["cells"] += 1
        k["seconds"] += cell.get("seconds", 0.0)
        k["thread_seconds"] += cell.get("seconds", 0.0) * cell.get("worker", {}).get("threads", 1)
    starts, dones = [], []
    try:
        for line in (out / RUN_LOG).read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the summary is a figure, not a check
            if event.get("event") == "start":
                starts.append(event["time"])
            elif event.get("event") == "done":
                dones.append(event["time"])
    except OSError:
        pass
    span = max(dones) - min(starts) if starts and dones else None
    return {"kinds": kinds, "wall_span_s": span}


def collect(ctx: StudyContext, outcome: DagOutcome | None = None) -> dict:
    """Every finished cell's result, the status of every cell and the setting: what the report reads."""
    cells, status = {}, {}
    for name in ctx.plan:
        result = finished(ctx, name)
        if result is not None:
            cells[name], status[name] = result, "done"
        elif outcome is not None and name in outcome.failed:
            status[name] = f"failed: {outcome.failed[name]}"
        elif outcome is not None and name in outcome.blocked:
            status[name] = f"blocked by {outcome.blocked[name]}"
        else:
            status[name] = "pending"
    scene = ctx.scene
    return {
        "config": to_dict(ctx.cfg), "grid": list(ctx.cfg.grid), "resolution_divisor": ctx.cfg.resolution_divisor,
        "scene": {"source": scene.source, "width": scene.width, "height": scene.height,
                  "splits": {k: len(v) for k, v in scene.splits.items()}},
        "machine": machine_description(),
        "plan": {n: {"kind": c.kind, "deps": list(c.deps), "info": c.info, "exclusive": c.exclusive}
                 for n, c in ctx.plan.items()},
        "cells": cells, "status": status, "ran_this_time": [] if outcome is None else list(outcome.ran),
        "compute": compute_summary(ctx.out, cells),
    }


def _computing_run(out: Path) -> dict:
    """The machine and engine settings of the last run that computed cells in `out` (from its results.json)."""
    try:
        previous = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: previous[k] for k in ("machine", "run") if isinstance(previous, dict) and k in previous}


def run_study(cfg: StudyConfig, out_dir: str | Path, run: RunConfig | None = None, *,
              report_only: bool = False) -> dict:
    """Run (or resume) the study into `out_dir`; writes report.md, report.html, plots, images, results.json.

    `run` says how the cells run (workers, engine); `report_only` runs none and assembles the report
    from the cells finished so far (e.g. while a cluster run is in progress). The report is written
    even when the run is interrupted or a cell fails; then the interruption or a `CellFailed` naming
    the failed cells propagates. Returns the dict written to `results.json` ("report": report.md's path).
    """
    from nerfprune.experiments.report import write_report

    run = run or RunConfig()
    run.validate()
    ctx = prepare(cfg, out_dir)
    outcome = None
    computed_by = _computing_run(ctx.out) if report_only else {}
    try:
        if not report_only:
            done = [n for n in ctx.plan if finished(ctx, n) is not None]
            outcome = run_dag(ctx.plan, done, make_engine(ctx.out, run), lambda name: run_cell(str(ctx.out), name))
    finally:
        results = collect(ctx, outcome)
        results["run"] = to_dict(run)
        results.update(computed_by)  # a report-only pass describes the run that computed the cells, not itself
        results["report"] = str(write_report(results, ctx.out))
        atomic_write_json(ctx.out / "results.json", results)
    if outcome is not None:
        outcome.raise_for_failures()
    return results


def study(scene: str | Path = "builtin", config: StudyConfig | None = None, *, out_dir: str | Path = "outputs/study",
          run: RunConfig | None = None) -> dict:
    """Reproduce (or resume) the 2022 study's grid on `scene`; writes `out_dir/report.md` and `report.html`.

    `config` is a `StudyConfig` (default: the study's settings, 2x128, 5k/10k/20k dense, 95 % + equal
    fine-tuning, the equal-budget controls, 3 seeds at 5k); `scene` overrides its `scene` field;
    `run` a `RunConfig` (workers, engine). Finished cells in `out_dir` are kept. Returns the dict
    written to `out_dir/results.json` ("report" holds the report's path). Public as `nerfprune.study`.
    """
    cfg = replace(config or StudyConfig(), scene=str(scene))
    return run_study(cfg, out_dir, run)
