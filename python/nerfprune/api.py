"""The public Python API: load_scene, train, render, evaluate, prune (and study, demo from `experiments`).

The CLI (`nerfprune.cli`) is a thin layer over these functions: both do the same thing.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from nerfprune.config import atomic_write_json, check_out_dir, nested, save_config
from nerfprune.errors import ConfigError, SceneError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.mlp import NerfModel
from nerfprune.outputs import VIDEO_SUFFIXES
from nerfprune.provenance import SceneMismatchWarning, load_recorded_scene, scene_mismatch
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Cameras, Scene
from nerfprune.scene.validate import validate_background
from nerfprune.checkpoint import load_checkpoint
from nerfprune.training import CHECKPOINT_NAME, TrainConfig, Trainer, load_model

log = logging.getLogger(__name__)

def load_scene(path: str | Path = "builtin", **options) -> Scene:
    """A scene from a folder/file (format auto-detected) or "builtin" for the generated one.

    The path as given is kept in `scene.meta["path"]` (and `allow_outside_paths` beside it): a model
    trained on the scene records them (`nerfprune.provenance`), so `evaluate` and `render` find the
    scene again.
    """
    from nerfprune.scene import load_scene as _load

    if not isinstance(path, (str, Path)):
        raise ConfigError(f"load_scene: path must be a str or Path, got {type(path).__name__}")
    scene = _load(path, **options)
    scene.meta.setdefault("path", str(path))
    scene.meta.setdefault("allow_outside_paths", options.get("allow_outside_paths", False))
    return scene


def _as_scene(scene: Scene | str | Path, caller: str) -> Scene:
    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, (str, Path)):
        return load_scene(scene)
    raise ConfigError(f"{caller}: scene must be a Scene, a path or 'builtin', got {type(scene).__name__}")


def _as_model(model: NerfModel | str | Path, caller: str, variant: str = "auto") -> NerfModel:
    """A model, or one loaded from a checkpoint / training folder, carrying `train_config` and where it came
    from (`checkpoint_path`, `scene_record`, `trained_fingerprint`) when known. A loaded checkpoint runs as
    `variant` (`pruning.variants.RUN_VARIANTS`; "auto": a pruned one compacted)."""
    from nerfprune.pruning.variants import AUTO_VARIANT, RUN_VARIANTS, run_variant

    if variant not in RUN_VARIANTS:
        raise ConfigError(f"{caller}: variant must be one of {', '.join(RUN_VARIANTS)}, got {variant!r}")
    if isinstance(model, NerfModel):
        if variant != AUTO_VARIANT:
            raise ConfigError(f"{caller}: variant={variant!r} applies to a checkpoint path; build a variant of a "
                              f"model object with nerfprune.pruning.variants.build_variant")
        return model
    if not isinstance(model, (str, Path)):
        raise ConfigError(f"{caller}: model must be a NerfModel or a checkpoint / training folder path, "
                          f"got {type(model).__name__}")
    loaded, cfg, ckpt = load_model(model)
    try:
        loaded, loaded.variant = run_variant(loaded, ckpt.masks, variant, source=str(model))
    except ValueError as e:
        raise ConfigError(f"{caller}: {e}") from None
    loaded.train_config = cfg
    loaded.checkpoint_path = str(model)
    loaded.scene_record, loaded.trained_fingerprint = ckpt.scene, ckpt.scene_fingerprint
    return loaded


def _config(value, cls: type, caller: str, name: str = "config"):
    """`value` (None: the default `cls()`) validated; anything but a `cls` is a `ConfigError` naming `name`."""
    if value is None:
        value = cls()
    if not isinstance(value, cls):
        raise ConfigError(f"{caller}: {name} must be a {cls.__name__}, got {type(value).__name__}")
    with nested(name):
        value.validate()
    return value


def scene_for(model: NerfModel | str | Path, scene: Scene | str | Path | None = None, *, strict: bool = False,
              caller: str = "evaluate") -> Scene:
    """The scene to evaluate or render `model` on: `scene`, or when None the one it was trained on.

    Given a scene whose images are not the ones the model was trained on, warns
    (`SceneMismatchWarning`, naming both scenes) or, with `strict`, raises `SceneError`.
    A model without a record (older checkpoints, a hand-built model) defaults to the built-in scene.
    """
    if isinstance(model, NerfModel):
        record, trained = getattr(model, "scene_record", None), getattr(model, "trained_fingerprint", None)
        name = getattr(model, "checkpoint_path", None) or "the model"
    else:  # a checkpoint path: its metadata is enough, the network is not built
        path = Path(model)
        ckpt = load_checkpoint(path / CHECKPOINT_NAME if path.is_dir() else path)
        record, trained, name = ckpt.scene, ckpt.scene_fingerprint, str(model)
    if scene is None:
        scene = load_recorded_scene(record, name) if record is not None else load_scene("builtin")
    else:
        scene = _as_scene(scene, caller)
    if trained is not None:
        problem = scene_mismatch(record, trained, scene, name)
        if problem and strict:
            raise SceneError(problem)
        if problem:
            warnings.warn(problem, SceneMismatchWarning, stacklevel=3)
    return scene


def train(
    scene: Scene | str | Path = "builtin", config: TrainConfig | None = None, *,
    out_dir: str | Path = "outputs/train", resume: bool = True, progress: bool = False,
) -> NerfModel:
    """Train a NeRF on `scene`'s train split; checkpoints and logs go to `out_dir`.

    With `resume` (default) an existing checkpoint in `out_dir` is continued up to
    `config.iterations`. The returned model carries its config as `model.train_config`
    and the scene it was trained on as `model.scene_record`. Nothing is written before
    the config, the scene and any checkpoint to resume have been checked.
    """
    cfg = _config(config, TrainConfig, "train")
    check_out_dir(out_dir)
    trainer = Trainer(_as_scene(scene, "train"), cfg, out_dir, progress=progress)
    model = trainer.run(resume=resume)
    model.train_config = cfg
    model.checkpoint_path = str(out_dir)
    model.scene_record, model.trained_fingerprint = trainer.scene_record, trainer.fingerprint
    model.eval()
    return model


def _render_config(model: NerfModel, config: RenderConfig | None, caller: str) -> RenderConfig:
    if config is None:
        cfg = getattr(model, "train_config", None)
        config = cfg.render if cfg is not None else RenderConfig()
    return _config(config, RenderConfig, caller, "render_config")


def check_video(video: str | None, out_dir, caller: str) -> None:
    if video is None:
        return
    if not isinstance(video, str) or Path(video).suffix not in VIDEO_SUFFIXES or Path(video).name != video:
        raise ConfigError(f"{caller}: video must be a file name ending in {' or '.join(VIDEO_SUFFIXES)}, got {video!r}")
    if out_dir is None:
        raise ConfigError(f"{caller}: video={video!r} needs out_dir (the folder it is written to)")


def render(
    model: NerfModel | str | Path, cameras: Cameras, config: RenderConfig | None = None, *,
    out_dir: str | Path | None = None, video: str | None = None, background=(1.0, 1.0, 1.0), prefix: str = "view",
    variant: str = "auto",
) -> list[dict[str, np.ndarray]]:
    """Render every camera -> list of {"rgb" [H,W,3], "depth" [H,W], "opacity" [H,W]}.

    With `out_dir`: writes `<prefix>_NNN_{rgb,depth,opacity}.png`, the render config,
    and, if `video` is a file name (".mp4" or ".gif"), the RGB frames as a video.
    Cameras, config, background, video name and output folder are all checked before
    the first view is rendered. A checkpoint path runs as `variant` (`pruning.variants.RUN_VARIANTS`;
    default "auto": a pruned checkpoint compacted, same images within 1e-5, faster).
    """
    if not isinstance(cameras, Cameras):
        raise ConfigError(f"render: cameras must be a nerfprune.Cameras, got {type(cameras).__name__}")
    cameras.validate("render: cameras")  # NaN poses, fx = 0, far = inf: refused, not rendered as NaN images
    bg = validate_background(background, "render")
    check_video(video, out_dir, "render")
    if not isinstance(prefix, str) or not prefix or Path(prefix).name != prefix:
        raise ConfigError(f"render: prefix must be a plain file-name prefix, got {prefix!r}")
    if out_dir is not None:
        check_out_dir(out_dir)
    net = _as_model(model, "render", variant)
    cfg = _render_config(net, config, "render")
    frames = []
    with torch.no_grad():
        for i in range(len(cameras)):
            frames.append(render_view(net, cameras, i, cfg, background=bg))
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
    model: NerfModel | str | Path, scene: Scene | str | Path | None = None, config: EvalConfig | None = None, *,
    render_config: RenderConfig | None = None, out_dir: str | Path | None = None, strict: bool = False,
    variant: str = "auto",
) -> dict:
    """PSNR / SSIM / L2 (mean and median over views) and render time (median of repeats) on a split.

    `scene` defaults to the scene the model was trained on (recorded in its checkpoint);
    another scene gives a `SceneMismatchWarning` naming both, or with `strict` a `SceneError`.
    A checkpoint path runs as `variant` (as in `render`: a pruned checkpoint compacted by default).
    """
    cfg = _config(config, EvalConfig, "evaluate")
    if out_dir is not None:
        check_out_dir(out_dir)
    net = _as_model(model, "evaluate", variant)
    rcfg = _render_config(net, render_config, "evaluate")
    data = scene_for(net, scene, strict=strict, caller="evaluate")
    result = evaluate_views(net, data, rcfg, cfg, images_dir=None if out_dir is None else Path(out_dir) / "images")
    result["variant"] = getattr(net, "variant", None)  # how a loaded checkpoint ran (None: a model object)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "metrics.json", result)
        save_config(cfg, out_dir, "eval_config.json")
        save_config(rcfg, out_dir, "render_config.json")
    return result


def prune(
    model: str | Path, scene: Scene | str | Path | None = None, config=None, *,
    out_dir: str | Path = "outputs/prune", progress: bool = False, strict: bool = False,
) -> dict:
    """Lottery-ticket pruning of the model trained in `model` (folder or checkpoint).

    `config` is a `nerfprune.PruneConfig` (default: one-shot global magnitude
    pruning to 95 %, survivors fine-tuned from the pre-trained weights for as many
    iterations as the pre-training). `scene` defaults to the one the model was trained on.
    Returns the summary written to `out_dir/summary.json`; `out_dir/round-<n>` holds each
    round's checkpoint, masks and metrics, and is accepted by `evaluate` and `render`.
    """
    from nerfprune.pruning.lottery import PruneConfig, run_pruning

    if not isinstance(model, (str, Path)):
        raise ConfigError(f"prune: model must be the training output folder or checkpoint path, got {type(model).__name__}")
    cfg = _config(config, PruneConfig, "prune")
    check_out_dir(out_dir)
    data = scene_for(model, scene, strict=strict, caller="prune")
    return run_pruning(model, data, cfg, out_dir, progress=progress)
