"""Side-by-side comparison of inference paths: PSNR and render time in one run.

Timings interleave the paths round-robin (each repeat renders the same view
with every path in turn), so a change in machine load hits all paths alike;
each path's figure is the median of its repeats after one warm-up.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.mlp import NerfModel
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Scene


@dataclass
class PathResult:
    """One inference path's figures."""

    label: str  # e.g. "dense", "masked", "structured"
    sparsity: float  # fraction of prunable weights removed (0 for dense)
    psnr: float  # mean PSNR over the evaluated views, dB
    seconds: list[float]  # render time of the timed view, every repeat
    samples_per_ray: float  # MLP evaluations per ray of the timed view (coarse + fine, after early termination)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


def compare_paths(
    models: dict[tuple[str, float], NerfModel], scene: Scene, render_cfg: RenderConfig, *,
    split: str = "test", views: int = 4, repeats: int = 7,
) -> list[PathResult]:
    """PSNR on `views` views of `split` and interleaved render timings of its first view, per path."""
    split = split if split in scene.splits else "val"
    timed_view = int(scene.split(split)[0])
    psnr = {
        key: evaluate_views(model, scene, render_cfg, EvalConfig(split=split, max_views=views, timing_repeats=0))["psnr"]["mean"]
        for key, model in models.items()
    }
    seconds: dict[tuple[str, float], list[float]] = {key: [] for key in models}
    samples: dict[tuple[str, float], float] = {}
    with torch.no_grad():
        for key, model in models.items():  # warm-up: kernel compilation, buffer pools; the sample count
            samples[key] = float(render_view(model, scene.cameras, timed_view, render_cfg, scene.background)["mlp_samples_per_ray"])
        for _ in range(repeats):
            for key, model in models.items():
                start = time.perf_counter()
                render_view(model, scene.cameras, timed_view, render_cfg, scene.background)
                seconds[key].append(time.perf_counter() - start)
    return [PathResult(key[0], key[1], psnr[key], seconds[key], samples[key]) for key in models]


def format_table(results: list[PathResult], baseline: str = "dense") -> str:
    """A plain-text table with ratios of time and PSNR differences to `baseline`."""
    base = next(r for r in results if r.label == baseline)
    lines = [f"{'path':18s} {'sparsity':>8s} {'time s':>8s} {'x dense':>8s} {'PSNR dB':>8s} {'vs dense':>8s} {'samples/ray':>11s}"]
    for r in results:
        lines.append(f"{r.label:18s} {r.sparsity:8.2f} {r.median_s:8.3f} {r.median_s / base.median_s:8.2f} "
                     f"{r.psnr:8.2f} {r.psnr - base.psnr:+8.2f} {r.samples_per_ray:11.1f}")
    return "\n".join(lines)
