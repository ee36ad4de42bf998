"""The public Python API: load_scene, train, render, evaluate, prune (and study, demo from `experiments`).

The CLI (`nerfprune.cli`) is a thin layer over these functions: both do the same thing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from nerfprune.config import atomic_write_json, save_config
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.mlp import NerfModel
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Cameras, Scene
from nerfprune.training import TrainConfig, Trainer, load_model

log = logging.getLogger(__name__)


def load_scene(path: str | Path = "builtin", **options) -> Scene:
    """A scene from a folder/file (format auto-detected) or "builtin" for the generated one."""
    from nerfprune.scene import load_scene as _load

    return _load(path, **options)


def _as_scene(scene: Scene | str | Path) -> Scene:
    return scene if isinstance(scene, Scene) else load_scene(scene)


def _as_model(model: NerfModel | str | Path) -> NerfModel:
    if isinstance(model, NerfModel):
        return model
    loaded, cfg, _ = load_model(model)
    loaded.train_config = cfg
    return loaded


def train(
    scene: Scene | str | Path = "builtin", config: TrainConfig | None = None, *,
    out_dir: str | Path = "outputs/train", resume: bool = True, progress: bool = False,
) -> NerfModel:
    """Train a NeRF on `scene`'s train split; checkpoints and logs go to `out_dir`.

    With `resume` (default) an existing checkpoint in `out_dir` is continued up to
    `config.iterations`. The returned model carries its config as `model.train_config`.
    """
    cfg = config or TrainConfig()
    model = Trainer(_as_scene(scene), cfg, out_dir, progress=progress).run(resume=resume)
    model.train_config = cfg
    model.eval()
    return model


def _render_config(model: NerfModel, config: RenderConfig | None) -> RenderConfig:
    if config is not None:
        return config
    cfg = getattr(model, "train_config", None)
    return cfg.render if cfg is not None else RenderConfig()


def render(
    model: NerfModel | str | Path, cameras: Cameras, config: RenderConfig | None = None, *,
    out_dir: str | Path | None = None, video: str | None = None, background=(1.0, 1.0, 1.0), prefix: str = "view",
) -> list[dict[str, np.ndarray]]:
    """Render every camera -> list of {"rgb" [H,W,3], "depth" [H,W], "opacity" [H,W]}.

    With `out_dir`: writes `<prefix>_NNN_{rgb,depth,opacity}.png`, the render config,
    and, if `video` is a file name (".mp4" or ".gif"), the RGB frames as a video.
    """
    net = _as_model(model)
    cfg = _render_config(net, config)
    cfg.validate()
    frames = []
    with torch.no_grad():
        for i in range(len(cameras)):
            frames.append(render_view(net, cameras, i, cfg, background=background))
    if out_dir is not None:
        from nerfprune.outputs import depth_to_image, write_png, write_video

        out = Path(out_dir)
        for i, f in enumerate(frames):
            write_png(out / f"{prefix}_{i:03d}_rgb.png", f["rgb"])
            write_png(out / f"{prefix}_{i:03d}_depth.png", depth_to_image(f["depth"], cameras.near, cameras.far))
            write_png(out / f"{prefix}_{i:03d}_opacity.png", f["opacity"])
        if video:
            write_video(out / video, [f["rgb"] for f in frames])
        save_config(cfg, out, "render_config.json")
    return frames


def evaluate(
    model: NerfModel | str | Path, scene: Scene | str | Path = "builtin", config: EvalConfig | None = None, *,
    render_config: RenderConfig | None = None, out_dir: str | Path | None = None,
) -> dict:
    """PSNR / SSIM / L2 (mean and median over views) and render time (median of repeats) on a split."""
    net = _as_model(model)
    cfg = config or EvalConfig()
    rcfg = _render_config(net, render_config)
    result = evaluate_views(net, _as_scene(scene), rcfg, cfg, images_dir=None if out_dir is None else Path(out_dir) / "images")
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "metrics.json", result)
        save_config(cfg, out_dir, "eval_config.json")
        save_config(rcfg, out_dir, "render_config.json")
    return result


def prune(
    model: str | Path, scene: Scene | str | Path = "builtin", config=None, *,
    out_dir: str | Path = "outputs/prune", progress: bool = False,
) -> dict:
    """Lottery-ticket pruning of the model trained in `model` (folder or checkpoint).

    `config` is a `nerfprune.pruning.PruneConfig` (default: one-shot global magnitude
    pruning to 95 %, survivors fine-tuned from the pre-trained weights for as many
    iterations as the pre-training). Returns the summary written to
    `out_dir/summary.json`; `out_dir/round-<n>` holds each round's checkpoint,
    masks and metrics, and is accepted by `evaluate` and `render`.
    """
    from nerfprune.pruning.lottery import PruneConfig, run_pruning

    if isinstance(model, NerfModel):
        raise TypeError("prune() takes the training output folder or checkpoint of the model, not the module")
    return run_pruning(model, _as_scene(scene), config or PruneConfig(), out_dir, progress=progress)
