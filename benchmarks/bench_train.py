"""Seconds per training iteration: nerfprune (Rust batcher + Taichi kernels) vs a pure-torch pipeline.

Every pipeline runs the real `Trainer.step` (`nerfprune.training`); the pipelines differ
only in their configs and batcher. The pure-torch pipeline is what the original NeRF
code does: the torch references (`taichi_kernels.reference`: torch ray generation,
`searchsorted` importance sampling, `cumprod` compositing), a torch random-pixel
batcher, one forward pass over the whole batch followed by one backward pass, and the
autograd MLP gradient. nerfprune runs the forward and backward a block of rays at a
time (`nerfprune.loss`), so the MLP's activations stay in cache, on two block
workers, with the MLP's gradient written by hand (`nerfprune.field.training_backward`:
the view-direction term once per ray, no concatenations). Ablation rows show where
the difference comes from; a last row runs nerfprune with the opt-in bfloat16 MLP
(`--mlp-precision bf16`): different arithmetic, so it is not the headline ratio.

Stage shares: the step's batcher and rendering-math object (`Trainer.math`, a
`RenderMath`) are wrapped with timers (`experiments.profile.TimedMath`), so ray
generation, sampling, compositing forward and encoding are timed inside the real
step; "mlp + backward + adam" is the rest of the step (MLP forward, the whole
backward pass, the optimizer). With two block workers the stages of two blocks
overlap, so shares are read from the one-worker row.

    python benchmarks/bench_train.py [--iterations N] [--presets small,nerf] [--threads T]

Prints a table, then as the very last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from types import SimpleNamespace

import nerfprune  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, nerfprune/__init__.py)
import torch

from nerfprune.experiments.profile import MATH_STAGES, TimedMath, StageClock
from nerfprune.field import MLPConfig, NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.scene.batching import RayBatcher
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.training import OccupancyConfig, TrainConfig, Trainer, camera_tensors

SETTINGS = {"small": (64, 64), "nerf": (64, 128)}  # preset -> (coarse, fine) samples per ray
REST = "mlp + backward + adam"
STAGES = ("batching", *dict.fromkeys(MATH_STAGES.values()), REST)


class TorchBatcher:
    """The original NeRF code's batching: random pixels drawn with torch from float images."""

    def __init__(self, scene, batch_size: int, seed: int):
        self.views = torch.from_numpy(scene.split("train"))
        self.images = torch.from_numpy(scene.images_float())  # [N, H, W, 3]
        self.batch_size, self.seed = batch_size, seed

    def batch(self, iteration: int):
        g = torch.Generator().manual_seed(self.seed * 7919 + iteration)
        n, (h, w) = self.batch_size, self.images.shape[1:3]
        view = self.views[torch.randint(len(self.views), (n,), generator=g)]
        row, col = torch.randint(h, (n,), generator=g), torch.randint(w, (n,), generator=g)
        batch = SimpleNamespace(view=view, row=row, col=col, rgb=self.images[view, row, col], background=torch.ones(n, 3))
        batch.to_torch = lambda device="cpu": SimpleNamespace(**{k: v.to(device) for k, v in vars(batch).items()
                                                                 if torch.is_tensor(v)})
        return batch


class TimedBatcher:
    """A batcher whose `batch` calls are timed into a clock."""

    def __init__(self, batcher, clock: StageClock):
        self.batch = clock.timed("batching", batcher.batch)


def timed_step(trainer: Trainer, batcher: TimedBatcher, cams, clock: StageClock) -> dict[str, float]:
    """One real `Trainer.step`, with the seconds of each stage (see the module docstring)."""
    clock.seconds.clear()
    start = time.perf_counter()
    trainer.step(batcher, cams)
    total = time.perf_counter() - start
    stages = {s: clock.seconds.get(s, 0.0) for s in STAGES if s != REST}
    stages[REST] = max(total - sum(stages.values()), 0.0)
    return stages


# pipeline -> (rendering-math backend, batcher, forward+backward in blocks?, MLP precision, MLP backward, block workers)
PIPELINES = {
    "nerfprune": ("taichi", "rust", True, "fp32", "handwritten", 2),  # what `nerfprune train` runs
    "torch": ("torch", "torch", False, "fp32", "autograd", 1),  # the original NeRF code's way: whole batch forward, then backward
    # Ablations: what each part contributes. The one-worker row also gives the stage shares.
    "nerfprune_1worker": ("taichi", "rust", True, "fp32", "handwritten", 1),
    "nerfprune_1block": ("taichi", "rust", False, "fp32", "handwritten", 1),
    "nerfprune_autograd": ("taichi", "rust", True, "fp32", "autograd", 2),
    "torch_blocked": ("torch", "torch", True, "fp32", "autograd", 1),
    # Opt-in, not the same arithmetic: the MLP's products in bfloat16 (`--mlp-precision bf16`; autograd backward).
    "nerfprune_bf16": ("taichi", "rust", True, "bf16", "autograd", 2),
}
ABLATIONS = {"nerfprune_1worker": "one block worker", "nerfprune_1block": "no blocks", "nerfprune_autograd": "autograd MLP",
             "torch_blocked": "torch + blocks", "nerfprune_bf16": "opt-in bf16 MLP"}
SHARES_FROM = "nerfprune_1worker"  # stage shares of nerfprune's step, from the row whose stages do not overlap


def pipeline_config(preset: str, pipeline: str, batch_size: int = 1024, block_points: int | None = None) -> TrainConfig:
    """The TrainConfig of `pipeline` (a PIPELINES key) for `preset` (a SETTINGS key); block_points None: the default."""
    backend, _, blocked, precision, mlp_backward, workers = PIPELINES[pipeline]
    n_coarse, n_fine = SETTINGS[preset]
    cfg = TrainConfig(iterations=10**6, batch_size=batch_size, model=NerfModelConfig(preset=preset),
                      mlp=MLPConfig(precision=precision, backward=mlp_backward),
                      render=RenderConfig(n_coarse=n_coarse, n_fine=n_fine, backend=backend), block_workers=workers,
                      occupancy=OccupancyConfig(enabled=False))  # the per-sample pipeline: every ray pays n_coarse + n_fine
    cfg.block_points = (block_points if block_points is not None else cfg.points_per_block()) if blocked else 0
    return cfg


def pipeline_batcher(scene, pipeline: str, batch_size: int = 1024):
    """The batcher `pipeline` draws its rays with: nerfprune's Rust one, or the torch one of the original code."""
    if PIPELINES[pipeline][1] == "rust":
        return RayBatcher(scene, "train", batch_size, 0)
    return TorchBatcher(scene, batch_size, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per pipeline (after 2 warm-up)")
    p.add_argument("--presets", default="small,nerf", help="comma-separated presets: small (2x128, 64+64), nerf (8x256, 64+128)")
    p.add_argument("--threads", type=int, default=0, help="torch and Taichi threads (0: leave torch's default)")
    p.add_argument("--batch-size", type=int, default=1024, help="rays per iteration")
    p.add_argument("--block-points", type=int, default=None,
                   help="sample points per forward+backward block of the blocked pipelines (default: nerfprune's default for the preset)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = make_builtin_scene(BuiltinSceneConfig(width=100, height=100, n_views=40, n_test=0))
    results: dict[str, dict] = {}
    for preset in args.presets.split(","):
        runs = {}
        for pipeline in PIPELINES:
            trainer = Trainer(scene, pipeline_config(preset, pipeline, args.batch_size, args.block_points),
                              "/tmp/nerfprune-bench-train")
            clock = StageClock()
            trainer.math = TimedMath(trainer.math, clock)
            batcher = pipeline_batcher(scene, pipeline, args.batch_size)
            runs[pipeline] = (trainer, TimedBatcher(batcher, clock), camera_tensors(scene, trainer.device), clock)
        samples: dict[str, list[dict]] = {name: [] for name in runs}
        for it in range(args.iterations + 2):  # alternate the pipelines so load changes hit all of them
            for pipeline, (trainer, batcher, cams, clock) in runs.items():
                t = timed_step(trainer, batcher, cams, clock)
                if it >= 2:
                    samples[pipeline].append(t)
        results[preset] = {}
        for pipeline, rows in samples.items():
            totals = [sum(r.values()) for r in rows]
            stage_median = {s: statistics.median(r[s] for r in rows) for s in STAGES}
            results[preset][pipeline] = {"s_per_it": statistics.median(totals), "stages": stage_median,
                                         "spread": [min(totals), max(totals)]}
    print(f"{'preset':8s} {'pipeline':18s} {'s/it':>7s} {'min-max':>13s}  " + " ".join(f"{s[:13]:>13s}" for s in STAGES))
    figures = {}
    for preset, by_pipe in results.items():
        for pipeline, r in by_pipe.items():
            shares = " ".join(f"{100 * r['stages'][s] / r['s_per_it']:12.1f}%" for s in STAGES)
            spread = f"{r['spread'][0]:.3f}-{r['spread'][1]:.3f}"
            print(f"{preset:8s} {pipeline:18s} {r['s_per_it']:7.3f} {spread:>13s}  {shares}")
        torch_s = by_pipe["torch"]["s_per_it"]
        ratio = by_pipe["nerfprune"]["s_per_it"] / torch_s
        ablations = "; ".join(f"{label} {by_pipe[name]['s_per_it'] / torch_s:.2f}" for name, label in ABLATIONS.items())
        print(f"{preset:8s} ratio nerfprune/torch = {ratio:.2f} (goal <= 0.67); ablations: {ablations}")
        for pipeline, r in by_pipe.items():
            figures[f"{preset}_s_per_it_{pipeline}"] = round(r["s_per_it"], 4)
        figures[f"{preset}_ratio"] = round(ratio, 3)
        for name in ABLATIONS:
            figures[f"{preset}_ratio_{name}"] = round(by_pipe[name]["s_per_it"] / torch_s, 3)
        for s in STAGES:
            key = re.sub(r"\W+", "_", s).strip("_")
            figures[f"{preset}_share_{key}"] = round(by_pipe[SHARES_FROM]["stages"][s] / by_pipe[SHARES_FROM]["s_per_it"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
