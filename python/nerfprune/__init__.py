"""nerfprune: train NeRFs, prune them the Lottery-Ticket way, and render the pruned models faster.

Public API (each also a `nerfprune` subcommand):
    load_scene(path)            -> Scene       a folder/file in a known format, or "builtin"
    train(scene, config)        -> NerfModel   trains, checkpoints, resumes
    render(model, cameras)      -> images      RGB, depth, opacity; PNG/MP4 with out_dir
    evaluate(model, scene)      -> metrics     PSNR, SSIM, L2, render time (median of repeats)
    prune(model, scene, config) -> pruned      lottery-ticket rounds
    study(scene)                -> report      the 2022 study's grid, explained
"""

from nerfprune.api import evaluate, load_scene, prune, render, study, train
from nerfprune.errors import CheckpointError, ConfigError, NativePanic, SceneError
from nerfprune.evaluate import EvalConfig
from nerfprune.field import NerfModel, NerfModelConfig
from nerfprune.prune.lottery import PruneConfig
from nerfprune.renderer import RenderConfig
from nerfprune.scene.types import Cameras, Scene
from nerfprune.train import TrainConfig


def demo(out_dir: str = "outputs/demo") -> dict:
    """Run the demo pipeline on the built-in scene; returns the summary of what it wrote."""
    from nerfprune.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(out_dir=out_dir))


__all__ = [
    "load_scene", "train", "render", "evaluate", "prune", "study", "demo",
    "Scene", "Cameras", "TrainConfig", "PruneConfig", "RenderConfig", "EvalConfig", "NerfModel", "NerfModelConfig",
    "SceneError", "ConfigError", "CheckpointError", "NativePanic",
]
