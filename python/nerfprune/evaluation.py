"""Evaluate a model on a split: PSNR, SSIM, L2 per view, their mean and median, and render time."""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfprune.config import check_fields, check_range
from nerfprune.errors import ConfigError, SceneError
from nerfprune.field.mlp import NerfModel
from nerfprune.metrics import l2, psnr, ssim, time_repeated
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Scene

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """What to evaluate and how to time it."""

    split: str = "test"  # scene split to evaluate on (falls back to "val" when the scene has no test split)
    max_views: int = 0  # evaluate at most this many views of the split (0: all)
    timing_repeats: int = 5  # timed renders of one view after the warm-up (median and spread are reported)
    timing_warmup: int = 1  # untimed renders before timing

    def validate(self) -> None:
        """Types and ranges (bounds: docs/validation.md)."""
        check_fields(self)
        if not self.split:
            raise ConfigError("split must name a split of the scene, got ''")
        check_range("max_views", self.max_views, 0, 10**6)
        check_range("timing_repeats", self.timing_repeats, 0, 1000)
        check_range("timing_warmup", self.timing_warmup, 0, 100)


def summarize(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(statistics.median(values))} if values else {}


def evaluate_views(
    model: NerfModel, scene: Scene, render_cfg: RenderConfig, cfg: EvalConfig, *, images_dir: str | Path | None = None,
) -> dict:
    """Render the split's views, compare with ground truth, time one view. Returns a JSON-able dict."""
    cfg.validate()
    split = cfg.split if cfg.split in scene.splits or cfg.split != "test" else "val"
    views = scene.split(split)
    if cfg.max_views:
        views = views[: cfg.max_views]
    if len(views) == 0:  # before anything is rendered or written: no metrics.json of empty means
        raise SceneError(f"{scene.source}: split '{split}' has no views; nothing to evaluate (choose another split)")
    model.eval()
    per_view = []
    rendered = {}
    for v in views:
        v = int(v)
        out = render_view(model, scene.cameras, v, render_cfg, background=scene.background)
        gt = scene.images_float([v])[0]
        per_view.append({"view": v, "psnr": psnr(out["rgb"], gt), "ssim": ssim(out["rgb"], gt), "l2": l2(out["rgb"], gt)})
        rendered[v] = out
    result = {
        "split": split,
        "views": [int(v) for v in views],
        "per_view": per_view,
        **{metric: summarize([p[metric] for p in per_view]) for metric in ("psnr", "ssim", "l2")},
    }
    if len(views) and cfg.timing_repeats > 0:
        first = int(views[0])
        with torch.no_grad():
            timing = time_repeated(lambda: render_view(model, scene.cameras, first, render_cfg, scene.background),
                                   repeats=cfg.timing_repeats, warmup=cfg.timing_warmup)
        result["render_time"] = {"view": first, "width": scene.width, "height": scene.height, **timing.as_dict()}
    if images_dir is not None:
        from nerfprune.outputs import write_comparison

        for v, out in rendered.items():
            write_comparison(Path(images_dir) / f"{split}_{v:03d}.png", out["rgb"], scene.images_float([v])[0])
    return result
