"""Computing one cell of the study: the function every engine runs, in any process or machine.

`run_cell(out_dir, name)` needs nothing but the study folder: it reads `study_config.json`,
re-plans the grid (`grid.plan_cells`), loads the scene once per process, computes the cell from
its parents' outputs and writes `cells/<name>.json` atomically: that file is the cell's "done"
mark. Everything else a cell writes (its checkpoint folder) is resumable, so a cell killed half
way continues from its last checkpoint when it runs again, and a finished cell is never redone.
`run-log.jsonl` gets a "start" and a "done" line per cell computed (pid, host, seconds).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from nerfprune.config import atomic_write_json, from_dict
from nerfprune.errors import CheckpointError, ConfigError
from nerfprune.experiments.grid import Cell, StudyConfig, plan_cells
from nerfprune.scene.types import Scene

log = logging.getLogger(__name__)
CONFIG_NAME = "study_config.json"
RUN_LOG = "run-log.jsonl"


@dataclass
class StudyContext:
    """What every cell of one study folder shares: the config, the grid and the scene."""

    out: Path
    cfg: StudyConfig
    plan: dict[str, Cell]
    scene: Scene

    def result_path(self, name: str) -> Path:
        return self.out / "cells" / f"{name}.json"

    def read(self, name: str) -> dict:
        return json.loads(self.result_path(name).read_text())


def read_config(out_dir: str | Path) -> StudyConfig:
    path = Path(out_dir) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the study's config ({e}); run the study into {out_dir} first") from None
    return from_dict(StudyConfig, data, str(path))


def load_study_scene(cfg: StudyConfig) -> Scene:
    """The study's scene at the resolution `cfg` asks for (the built-in one shrinks with the divisor)."""
    from nerfprune.api import load_scene
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    div = cfg.resolution_divisor
    if cfg.scene == "builtin":
        size = max(8, BuiltinSceneConfig().width // (cfg.factor * div))
        return make_builtin_scene(BuiltinSceneConfig(width=size, height=size))
    return load_scene(cfg.scene, factor=cfg.factor * div)


_CONTEXTS: dict[tuple[str, str], StudyContext] = {}  # per process: (folder, config text) -> context


def context(out_dir: str | Path, scene: Scene | None = None) -> StudyContext:
    """The context of the study in `out_dir`, built once per process (and again if its config changed)."""
    out = Path(out_dir).resolve()
    key = (str(out), (out / CONFIG_NAME).read_text() if (out / CONFIG_NAME).exists() else "")
    if key not in _CONTEXTS:
        cfg = read_config(out)
        _CONTEXTS.clear()  # one study per process at a time: a scene can be large
        _CONTEXTS[key] = StudyContext(out, cfg, plan_cells(cfg), scene if scene is not None else load_study_scene(cfg))
    return _CONTEXTS[key]


def finished(ctx: StudyContext, name: str) -> dict | None:
    """The result of cell `name` if it has finished with its current spec; `CheckpointError` if it finished
    with another spec (the settings changed since: its numbers would not be this study's)."""
    path = ctx.result_path(name)
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable cell result ({e}); delete it to re-run cell {name}") from None
    if result.get("spec") != ctx.plan[name].spec:
        raise CheckpointError(f"{path}: cell {name} finished with other settings than this study's "
                              f"({', '.join(_differences(result.get('spec') or {}, ctx.plan[name].spec))}); "
                              f"delete it and the folder {ctx.out / name} to re-run it, or use another --out")
    return result


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out[:6]


def _log_event(out: Path, name: str, event: str, **fields) -> None:
    """One line of `run-log.jsonl` (appended in one write: lines from concurrent workers do not interleave)."""
    line = json.dumps({"time": time.time(), "cell": name, "event": event, "pid": os.getpid(),
                       "host": socket.gethostname(), **fields}) + "\n"
    fd = os.open(out / RUN_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def set_threads(threads: int) -> None:
    """torch and Taichi threads of this process (Taichi reads its count once, when it first starts)."""
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["TI_CPU_MAX_NUM_THREADS"] = str(threads)


def run_cell(out_dir: str, name: str, threads: int = 0) -> dict:
    """Compute cell `name` of the study in `out_dir` unless it has finished; returns its result.

    `threads` > 0 sets this process's torch/Taichi threads first (engine workers); 0 leaves them.
    """
    if threads:
        set_threads(threads)
    ctx = context(out_dir)
    if name not in ctx.plan:
        raise ConfigError(f"{ctx.out}: the study has no cell {name!r}")
    done = finished(ctx, name)
    if done is not None:
        return done
    cell = ctx.plan[name]
    missing = [d for d in cell.deps if finished(ctx, d) is None]
    if missing:
        raise CheckpointError(f"cell {name} needs {', '.join(missing)} to have finished first")
    _log_event(ctx.out, name, "start")
    start = time.perf_counter()
    result = {"name": name, "kind": cell.kind, "spec": cell.spec, "info": cell.info, **COMPUTE[cell.kind](ctx, cell)}
    result["seconds"] = time.perf_counter() - start
    result["worker"] = {"pid": os.getpid(), "host": socket.gethostname(), "threads": _torch_threads()}
    atomic_write_json(ctx.result_path(name), result)
    _log_event(ctx.out, name, "done", seconds=result["seconds"])
    log.info("study cell %s done in %.1f s", name, result["seconds"])
    return result


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# -- the computations ------------------------------------------------------------------------

def _evaluate(ctx: StudyContext, cell: Cell, model) -> dict:
    """Quality on the first `train_views` train and `val_views` val views (0: all); with `info["images"]`,
    the first that many val views as rendered | ground truth | error in images/<cell>/."""
    from nerfprune.evaluation import EvalConfig, evaluate_views

    out = {}
    images = cell.info.get("images", 0)
    tmp = ctx.out / "images" / f".tmp-{cell.name}"
    for split in ("train", "val"):
        n = cell.spec["eval"][f"{split}_views"]
        out[split] = evaluate_views(model, ctx.scene, model.train_config.render,
                                    EvalConfig(split=split, max_views=n, timing_repeats=0),
                                    images_dir=tmp if images and split == "val" else None)
    if tmp.exists():
        dest = ctx.out / "images" / cell.name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for p in sorted(tmp.glob("*.png"))[:images]:
            shutil.move(str(p), dest / p.name)
        shutil.rmtree(tmp)
    return out


def _load(ctx: StudyContext, folder: str):
    from nerfprune.training import load_model

    model, train_cfg, ckpt = load_model(ctx.out / folder)
    model.train_config = train_cfg
    return model, ckpt


def _dense(ctx: StudyContext, cell: Cell) -> dict:
    """Train to `iterations`, continuing the checkpoint of the shorter dense cell it depends on (or its own
    checkpoint, if it was interrupted)."""
    from nerfprune.api import train
    from nerfprune.training import CHECKPOINT_NAME, TrainConfig

    cfg = from_dict(TrainConfig, cell.spec["train"], f"{cell.name}.train")
    target = ctx.out / cell.name
    own = target / CHECKPOINT_NAME
    if cell.deps and not own.exists():
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{CHECKPOINT_NAME}.tmp"
        shutil.copy2(ctx.out / cell.deps[0] / CHECKPOINT_NAME, tmp)
        os.replace(tmp, own)  # atomic: a half-copied checkpoint is never resumed
    started_at = _checkpoint_iteration(own) if own.exists() else 0
    train(ctx.scene, cfg, out_dir=target, resume=True)
    model, ckpt = _load(ctx, cell.name)
    if ckpt.iteration != cfg.iterations:
        raise CheckpointError(f"{own}: checkpoint is at iteration {ckpt.iteration}, expected {cfg.iterations}")
    return {"iterations": cfg.iterations, "total_iterations": cfg.iterations, "seed": cfg.seed, "sparsity": 0.0,
            "resumed_from": started_at, "checkpoint": cell.name, **_evaluate(ctx, cell, model)}


def _checkpoint_iteration(path: Path) -> int:
    from nerfprune.checkpoint import load_checkpoint

    return load_checkpoint(path).iteration


def _pruned(ctx: StudyContext, cell: Cell) -> dict:
    """`api.prune` of the parent with the recipe's PruneConfig (run_pruning resumes inside a round)."""
    from nerfprune.api import prune
    from nerfprune.pruning.lottery import PruneConfig

    pcfg = from_dict(PruneConfig, cell.spec["prune"], f"{cell.name}.prune")
    summary = prune(ctx.out / cell.spec["parent"], ctx.scene, pcfg, out_dir=ctx.out / cell.name)
    final = Path(summary["final"]).relative_to(ctx.out).as_posix()
    model, _ = _load(ctx, final)
    parent = ctx.read(cell.spec["parent"])
    return {"iterations": parent["iterations"], "total_iterations": parent["iterations"] + pcfg.rounds * pcfg.retrain_iterations,
            "seed": parent["seed"], "sparsity": summary["rounds"][-1]["sparsity"], "target_sparsity": pcfg.sparsity,
            "rounds": summary["rounds"], "checkpoint": final, **_evaluate(ctx, cell, model)}


def _time(ctx: StudyContext, cell: Cell) -> dict:
    """Render time of one val view on each inference path, interleaved with the dense parent's
    (`compare.compare_paths`: a change in machine load hits every path alike), and its PSNR."""
    from nerfprune.experiments.compare import compare_paths
    from nerfprune.metrics import Timing
    from nerfprune.pruning.variants import build_variant

    source = ctx.read(cell.spec["model"])
    model, ckpt = _load(ctx, source["checkpoint"])
    paths, unavailable = {}, {}
    if cell.spec["parent"] is None:
        paths[("dense", 0.0)] = model
    else:
        paths[("dense", 0.0)] = _load(ctx, ctx.read(cell.spec["parent"])["checkpoint"])[0]
        for variant in cell.spec["variants"]:
            try:
                paths[(variant, source["sparsity"])] = build_variant(model, ckpt.masks, variant)
            except RuntimeError as e:  # int8 missing from this torch build
                unavailable[variant] = str(e)
    results = compare_paths(paths, ctx.scene, model.train_config.render, split="val", views=1,
                            repeats=cell.spec["repeats"])
    timed = {r.label: {**Timing(r.seconds).as_dict(), "psnr": r.psnr, "samples_per_ray": r.samples_per_ray} for r in results}
    return {"model": cell.spec["model"], "sparsity": source["sparsity"], "view": int(ctx.scene.split("val")[0]),
            "paths": timed, "unavailable": unavailable}


def _profile(ctx: StudyContext, cell: Cell) -> dict:
    """Per-stage render profile of the dense model, the global-pruned one on masked / baked / compacted
    paths, and every other recipe's compacted model."""
    from nerfprune.experiments.profile import profile_render
    from nerfprune.pruning.variants import build_variant

    names = cell.spec["models"]
    dense, _ = _load(ctx, ctx.read(names["dense"])["checkpoint"])
    models = {"dense": dense}
    for recipe, name in names.items():
        if recipe == "dense":
            continue
        model, ckpt = _load(ctx, ctx.read(name)["checkpoint"])
        for variant in ("masked", "baked", "compacted") if recipe == "global" else ("compacted",):
            models[variant if recipe == "global" else f"compacted ({recipe})"] = build_variant(model, ckpt.masks, variant)
    view = int(ctx.scene.split("val")[0])
    stages = {label: profile_render(m, ctx.scene.cameras, view, dense.train_config.render, cell.spec["repeats"],
                                    ctx.scene.background)
              for label, m in models.items()}
    return {"view": view, "repeats": cell.spec["repeats"], "models": names, "stages": stages}


COMPUTE = {"dense": _dense, "pruned": _pruned, "time": _time, "profile": _profile}  # Cell.kind -> computation
