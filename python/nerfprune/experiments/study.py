"""The 2022 "Pruning NeRFs" study, reproduced as a resumable grid of cells.

The study trained a 2x128 NeRF for 5k/10k/20k iterations, pruned each model to
95 % (global magnitude) and fine-tuned it for as many iterations again, and
reported L2/PSNR on train and validation views and one render time per model.
Here every grid point is a *cell* that writes `cells/<name>.json` when it has
finished, so a re-run skips it (a finished study re-runs in seconds):

- `dense-<k>`: one dense run trained to the largest k; at each grid point its
  checkpoint is copied to `dense-<k>/` and evaluated. The learning-rate schedule
  is fixed (`lr_decay_steps` = 250k, the original NeRF's), so the copy at k is
  exactly what a separate k-iteration run gives.
- `pruned-<method>-<k>`: `run_pruning` from `dense-<k>` to `sparsity`, fine-tuned
  k iterations; "global" is the study's method, "structured" (whole neurons,
  ours) lets compaction shrink the matrices. Each is timed per inference variant.
- `sweep-<s>`: global pruning to other sparsities at the smallest k (PSNR and
  render time vs sparsity).
- `profile`: per-stage render profile of dense, masked, baked and compacted models.

`scale` multiplies the iteration counts (for quick looks and CI) and, when it is
small, divides the image resolution by an integer (see `resolution_divisor`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from nerfprune.config import atomic_write_json, save_config, to_dict
from nerfprune.errors import ConfigError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.config import NerfModelConfig
from nerfprune.metrics import psnr, time_repeated
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Scene
from nerfprune.training import TrainConfig, Trainer, load_model

log = logging.getLogger(__name__)
NERF_LR_DECAY_STEPS = 250_000  # the original NeRF's schedule: lr x0.1 over 250k steps


@dataclass
class StudyConfig:
    """The grid of the 2022 study and how to measure it."""

    scene: str = "builtin"  # scene folder/file, or "builtin" for the generated scene
    factor: int = 1  # integer image downscale of the scene (mic at 100x100: 8)
    scale: float = 1.0  # multiplies every iteration count; small values also lower the resolution
    iterations: tuple[int, ...] = (5000, 10000, 20000)  # dense training lengths (the study's grid)
    sparsity: float = 0.95  # fraction of prunable weights removed (the study's 95 %)
    methods: tuple[str, ...] = ("global", "structured")  # pruning methods: "global" is the study's, "structured" ours
    sweep: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98)  # sparsities tried at the smallest grid point (global)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr_decay_steps=NERF_LR_DECAY_STEPS, val_views=0, model=NerfModelConfig(preset="small"),
        render=RenderConfig(n_coarse=64, n_fine=64),
    ))  # every run's training settings (network, samples, batch, lr, seed); iterations and checkpoints follow the grid
    train_views: int = 8  # train views evaluated per cell (the study used all; 8 keeps 2 CPU cores busy for minutes, not hours)
    val_views: int = 8  # validation views evaluated per cell
    timing_repeats: int = 5  # timed renders of one val view per model (median and spread reported)
    profile_repeats: int = 5  # renders per per-stage profile (median per stage)
    variants: tuple[str, ...] = ("masked", "baked", "compacted", "sparse", "int8")  # inference paths timed per pruned model
    image_views: int = 3  # val views shown as rendered | ground truth | error in the report

    def validate(self) -> None:
        from nerfprune.pruning.methods import METHODS
        from nerfprune.pruning.variants import VARIANTS

        if not self.scale > 0:
            raise ConfigError(f"scale must be > 0, got {self.scale}")
        if not self.iterations or min(self.iterations) < 1:
            raise ConfigError(f"iterations must be a non-empty list of counts >= 1, got {self.iterations}")
        if not all(0 < s < 1 for s in (self.sparsity, *self.sweep)):
            raise ConfigError("sparsity and sweep values must lie in (0, 1)")
        if self.factor < 1 or self.train_views < 1 or self.val_views < 1 or self.timing_repeats < 1 or self.profile_repeats < 1:
            raise ConfigError("factor, train_views, val_views, timing_repeats and profile_repeats must be >= 1")
        unknown = [v for v in self.variants if v not in VARIANTS] + [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown variant/method {unknown}: variants {list(VARIANTS)}, methods {list(METHODS)}")
        if "global" not in self.methods:
            raise ConfigError("methods must include 'global' (the study's method)")
        self.train.validate()

    @property
    def resolution_divisor(self) -> int:
        """Extra integer image downscale for small scales: 1 at scale >= 0.05, 2 down to 0.005, else 4."""
        return 1 if self.scale >= 0.05 else 2 if self.scale >= 0.005 else 4

    @property
    def grid(self) -> tuple[int, ...]:
        """The iteration counts actually run: `iterations` x `scale`, at least 1, without repeats."""
        return tuple(sorted({max(1, round(k * self.scale)) for k in self.iterations}))

    def train_config(self) -> TrainConfig:
        """`train` with the grid's length and a checkpoint at least every quarter of it."""
        return replace(self.train, iterations=max(self.grid), checkpoint_every=max(1, min(500, max(self.grid) // 4)))


def load_study_scene(cfg: StudyConfig) -> Scene:
    """The study's scene at the resolution `cfg` asks for (the built-in one shrinks with the divisor)."""
    from nerfprune.scene import load_scene
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    div = cfg.resolution_divisor
    if cfg.scene == "builtin":
        base = BuiltinSceneConfig()
        size = max(8, base.width // (cfg.factor * div))
        return make_builtin_scene(BuiltinSceneConfig(width=size, height=size))
    return load_scene(cfg.scene, factor=cfg.factor * div)


def machine_description() -> dict:
    """CPU model, cores, thread settings and library versions: what the timings were measured on."""
    import taichi

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


class Study:
    """Runs the cells of one study into `out_dir`; finished cells are read back, not re-run."""

    def __init__(self, cfg: StudyConfig, out_dir: str | Path, scene: Scene | None = None):
        cfg.validate()
        self.cfg, self.out = cfg, Path(out_dir)
        self.scene = scene if scene is not None else load_study_scene(cfg)
        self.train_cfg = cfg.train_config()
        self.render_cfg = self.train_cfg.render
        self.timing_view = int(self.scene.split("val")[0])
        self.ran: list[str] = []  # cells computed by this run (the others were read back)

    # -- cells ---------------------------------------------------------------
    def cell_path(self, name: str) -> Path:
        return self.out / "cells" / f"{name}.json"

    def cell(self, name: str, compute) -> dict:
        path = self.cell_path(name)
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        result = {"name": name, **compute()}
        result["seconds"] = time.perf_counter() - start
        atomic_write_json(path, result)
        self.ran.append(name)
        log.info("study cell %s done in %.1f s", name, result["seconds"])
        return result

    def evaluate(self, model, images: bool = False) -> dict:
        """Quality on the train and val views (no timing: that is done per inference path)."""
        out = {}
        for split, n in (("train", self.cfg.train_views), ("val", self.cfg.val_views)):
            images_dir = self.out / "images" / "tmp" if images and split == "val" else None
            out[split] = evaluate_views(model, self.scene, self.render_cfg, EvalConfig(split=split, max_views=n, timing_repeats=0),
                                        images_dir=images_dir)
        return out

    def time_model(self, model) -> dict:
        """Median and spread of `timing_repeats` renders of one val view, plus that view's PSNR."""
        v = self.timing_view
        first = render_view(model, self.scene.cameras, v, self.render_cfg, self.scene.background)  # also the warm-up
        timing = time_repeated(lambda: render_view(model, self.scene.cameras, v, self.render_cfg, self.scene.background),
                               repeats=self.cfg.timing_repeats, warmup=0)
        return {"view": v, "psnr": psnr(first["rgb"], self.scene.images_float([v])[0]), **timing.as_dict()}

    def time_variants(self, checkpoint: Path) -> dict:
        from nerfprune.pruning.variants import build_variant

        model, _, ckpt = load_model(checkpoint)
        timings = {}
        for variant in self.cfg.variants:
            try:
                net = build_variant(model, ckpt.masks, variant)
            except RuntimeError as e:  # int8 missing from this torch build
                timings[variant] = {"unavailable": str(e)}
                continue
            timings[variant] = self.time_model(net)
        return timings

    def dense_cell(self, k: int) -> dict:
        def compute() -> dict:
            target = self.out / f"dense-{k}"
            if not (target / "checkpoint.safetensors").exists():
                Trainer(self.scene, self.train_cfg, self.out / "dense").run(resume=True, until=k)
                tmp = self.out / f".dense-{k}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                for name in ("checkpoint.safetensors", "config.json"):
                    shutil.copy2(self.out / "dense" / name, tmp / name)
                tmp.rename(target)
            model, _, ckpt = load_model(target)
            if ckpt.iteration != k:
                raise ConfigError(f"{target}: checkpoint is at iteration {ckpt.iteration}, expected {k}; delete it")
            return {"kind": "dense", "method": None, "iterations": k, "sparsity": 0.0, "checkpoint": str(target),
                    "seed": self.cfg.train.seed, **self.evaluate(model, images=k == max(self.cfg.grid)),
                    "timing": {"dense": self.time_model(model)}}
        return self._with_images(f"dense-{k}", compute)

    def pruned_cell(self, name: str, k: int, method: str, sparsity: float, variants: bool = True) -> dict:
        from nerfprune.pruning.lottery import PruneConfig, run_pruning

        def compute() -> dict:
            pcfg = PruneConfig(sparsity=sparsity, method=method, retrain_iterations=k, eval_views=0, seed=self.cfg.train.seed)
            summary = run_pruning(self.out / f"dense-{k}", self.scene, pcfg, self.out / name)
            final = Path(summary["final"])
            model, _, _ = load_model(final)
            quality = self.evaluate(model, images=variants and method == "global" and k == max(self.cfg.grid))
            return {"kind": "pruned", "method": method, "iterations": k, "retrain_iterations": k,
                    "sparsity": summary["rounds"][-1]["sparsity"], "target_sparsity": sparsity, "checkpoint": str(final),
                    "seed": self.cfg.train.seed, "prune_config": to_dict(pcfg), **quality,
                    "timing": self.time_variants(final)}
        return self._with_images(name, compute)

    def _with_images(self, name: str, compute) -> dict:
        """Run a cell; comparison images written during it go to images/<name>/ (first `image_views`)."""
        result = self.cell(name, compute)
        tmp = self.out / "images" / "tmp"
        if tmp.exists():
            keep = sorted(tmp.glob("*.png"))[: self.cfg.image_views]
            dest = self.out / "images" / name
            dest.mkdir(parents=True, exist_ok=True)
            for p in keep:
                shutil.move(str(p), dest / p.name)
            shutil.rmtree(tmp)
        return result

    def profile_cell(self, dense_ckpt: str, pruned: dict[str, str]) -> dict:
        from nerfprune.experiments.profile import profile_render
        from nerfprune.pruning.variants import build_variant

        def compute() -> dict:
            dense, _, _ = load_model(dense_ckpt)
            models = {"dense": dense}
            pruned_model, _, ckpt = load_model(pruned["global"])
            for variant in ("masked", "baked", "compacted"):
                models[variant] = build_variant(pruned_model, ckpt.masks, variant)
            if "structured" in pruned:
                s_model, _, s_ckpt = load_model(pruned["structured"])
                models["compacted (structured)"] = build_variant(s_model, s_ckpt.masks, "compacted")
            stages = {name: profile_render(m, self.scene.cameras, self.timing_view, self.render_cfg,
                                           self.cfg.profile_repeats, self.scene.background)
                      for name, m in models.items()}
            return {"kind": "profile", "view": self.timing_view, "repeats": self.cfg.profile_repeats,
                    "models": {"dense": dense_ckpt, **pruned}, "stages": stages}
        return self.cell("profile", compute)

    # -- the whole grid ----------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.out, "study_config.json")
        cells = {}
        for k in cfg.grid:
            cells[f"dense-{k}"] = self.dense_cell(k)
        for k in cfg.grid:
            for method in cfg.methods:
                cells[f"pruned-{method}-{k}"] = self.pruned_cell(f"pruned-{method}-{k}", k, method, cfg.sparsity)
        k0 = min(cfg.grid)
        for s in cfg.sweep:
            if abs(s - cfg.sparsity) < 1e-9:
                continue
            cells[f"sweep-{s:g}"] = self.pruned_cell(f"sweep-{s:g}", k0, "global", s)
        kmax = max(cfg.grid)
        cells["profile"] = self.profile_cell(
            cells[f"dense-{kmax}"]["checkpoint"], {m: cells[f"pruned-{m}-{kmax}"]["checkpoint"] for m in cfg.methods})
        return {
            "config": to_dict(cfg), "grid": list(cfg.grid), "resolution_divisor": cfg.resolution_divisor,
            "train_config": to_dict(self.train_cfg),
            "scene": {"source": self.scene.source, "width": self.scene.width, "height": self.scene.height,
                      "splits": {k: len(v) for k, v in self.scene.splits.items()}},
            "machine": machine_description(), "cells": cells, "ran_this_time": list(self.ran),
        }


def run_study(cfg: StudyConfig, out_dir: str | Path, scene: Scene | None = None) -> dict:
    """Run (or resume) the study into `out_dir`; writes report.md, plots, images and results.json.

    Returns the results dict written to `out_dir/results.json` (plus "report": the report's path).
    """
    from nerfprune.experiments.report import write_report

    results = Study(cfg, out_dir, scene).run()
    results["report"] = str(write_report(results, out_dir))
    atomic_write_json(Path(out_dir) / "results.json", results)
    return results


def study(scene: str | Path = "builtin", config: StudyConfig | None = None, *, out_dir: str | Path = "outputs/study") -> dict:
    """Reproduce (or resume) the 2022 study's grid on `scene`; writes `out_dir/report.md`.

    `config` is a `StudyConfig` (default: the study's settings, 2x128, 5k/10k/20k
    dense, 95 % + equal fine-tuning); `scene` overrides its `scene` field. Finished
    cells in `out_dir` are skipped. Returns the dict written to `out_dir/results.json`
    ("report" holds the report's path). Public as `nerfprune.study`.
    """
    cfg = replace(config or StudyConfig(), scene=str(scene))
    return run_study(cfg, out_dir)
