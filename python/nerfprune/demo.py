"""`nerfprune demo`: the main job on the built-in scene, end to end, in minutes on 2 CPU cores.

Generates the scene, trains the small (2x128) network with a short schedule,
renders the test views and an orbit video, evaluates, and returns the paths
and figures it produced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nerfprune import api
from nerfprune.config import atomic_write_json, save_config
from nerfprune.evaluate import EvalConfig
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.scene.paths import orbit_path
from nerfprune.train import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """The demo's settings: small enough for a few minutes on 2 CPU cores."""

    out_dir: str = "outputs/demo"  # everything the demo writes goes here
    scene: BuiltinSceneConfig = field(default_factory=BuiltinSceneConfig)  # the generated scene
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        iterations=1500, batch_size=1024, log_every=50, checkpoint_every=250,
        model=NerfModelConfig(preset="small"), render=RenderConfig(n_coarse=32, n_fine=32),
    ))  # the short training schedule
    orbit_frames: int = 24  # frames of the orbit video


def run_demo(cfg: DemoConfig | None = None, progress: bool = False) -> dict:
    cfg = cfg or DemoConfig()
    out = Path(cfg.out_dir)
    save_config(cfg, out, "demo_config.json")
    scene = make_builtin_scene(cfg.scene)
    model = api.train(scene, cfg.train, out_dir=out / "train", progress=progress)
    test_cams = scene.cameras.subset(scene.split("test"))
    api.render(model, test_cams, out_dir=out / "render" / "test", background=scene.background, prefix="test")
    orbit = orbit_path(scene.cameras, cfg.orbit_frames)
    api.render(model, orbit, out_dir=out / "render" / "orbit", video="orbit.mp4", background=scene.background, prefix="orbit")
    metrics = api.evaluate(model, scene, EvalConfig(split="test"), out_dir=out / "eval")
    summary = {
        "out_dir": str(out),
        "checkpoint": str(out / "train" / "checkpoint.safetensors"),
        "test_renders": str(out / "render" / "test"),
        "orbit_video": str(next((out / "render" / "orbit").glob("orbit.*"), out / "render" / "orbit")),
        "comparisons": str(out / "eval" / "images"),
        "psnr_test_mean": metrics["psnr"]["mean"],
        "ssim_test_mean": metrics["ssim"]["mean"],
        "render_time_median_s": metrics.get("render_time", {}).get("median_s"),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary
