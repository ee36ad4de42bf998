"""nerfprune: train NeRFs, prune them the Lottery-Ticket way, and render the pruned models faster.

Public API (each also a `nerfprune` subcommand):
    load_scene(path)            -> Scene       a folder/file in a known format, or "builtin"
    train(scene, config)        -> NerfModel   trains, checkpoints, resumes
    render(model, cameras)      -> images      RGB, depth, opacity; PNG/MP4 with out_dir
    evaluate(model, scene)      -> metrics     PSNR, SSIM, L2, render time (median of repeats)
    prune(model, scene, config) -> pruned      lottery-ticket rounds
    study(scene)                -> report      the 2022 study's grid, explained
    demo(out_dir)               -> summary     the main job on the built-in scene

Every name is resolved lazily on first use (PEP 562): `import nerfprune` and importing a
submodule (`nerfprune.errors`, `nerfprune.scene`) load nothing else, and torch only when a
name that needs it is used.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

# torch's OpenMP runtime (libgomp) lets its workers spin for a while after every parallel region. On a 2-core
# machine they then hold the cores the next Taichi or Rust kernel wants: a structured 95 % view of mic took
# 150-186 ms with the default against 121-142 ms with passive workers (three processes each, interleaved;
# the dense view and a training step unchanged, docs/pruning.md). OpenMP reads the policy when torch loads, so it
# is set here, before any nerfprune module imports torch; a value set by the user wins, and a process that
# imported torch first keeps its own.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> "module:attribute"
_PUBLIC = {
    "load_scene": "nerfprune.api:load_scene",
    "train": "nerfprune.api:train",
    "render": "nerfprune.api:render",
    "evaluate": "nerfprune.api:evaluate",
    "prune": "nerfprune.api:prune",
    "study": "nerfprune.experiments.study:study",
    "demo": "nerfprune.experiments.demo:demo",
    "Scene": "nerfprune.scene.types:Scene",
    "Cameras": "nerfprune.scene.types:Cameras",
    "TrainConfig": "nerfprune.training:TrainConfig",
    "PruneConfig": "nerfprune.pruning.lottery:PruneConfig",
    "RenderConfig": "nerfprune.renderer:RenderConfig",
    "EvalConfig": "nerfprune.evaluation:EvalConfig",
    "StudyConfig": "nerfprune.experiments.study:StudyConfig",
    "MLPConfig": "nerfprune.field.config:MLPConfig",
    "NerfModel": "nerfprune.field.mlp:NerfModel",
    "NerfModelConfig": "nerfprune.field.config:NerfModelConfig",
    "NerfpruneError": "nerfprune.errors:NerfpruneError",
    "SceneError": "nerfprune.errors:SceneError",
    "ConfigError": "nerfprune.errors:ConfigError",
    "CheckpointError": "nerfprune.errors:CheckpointError",
    "MaskError": "nerfprune.errors:MaskError",
    "TrainingDiverged": "nerfprune.errors:TrainingDiverged",
    "NativePanic": "nerfprune.errors:NativePanic",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Resolve a public name on first use and cache it in the module namespace.

    No submodule has the name of a public function (the modules are `training`,
    `evaluation`, `pruning`), so importing one never replaces `nerfprune.train`,
    `nerfprune.evaluate` or `nerfprune.prune`.
    """
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'nerfprune' has no attribute '{name}'")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # what editors and type checkers see
    from nerfprune.api import evaluate, load_scene, prune, render, train
    from nerfprune.errors import (CheckpointError, ConfigError, MaskError, NativePanic, NerfpruneError, SceneError,
                                  TrainingDiverged)
    from nerfprune.evaluation import EvalConfig
    from nerfprune.experiments.demo import demo
    from nerfprune.experiments.study import StudyConfig, study
    from nerfprune.field.config import MLPConfig, NerfModelConfig
    from nerfprune.field.mlp import NerfModel
    from nerfprune.pruning.lottery import PruneConfig
    from nerfprune.renderer import RenderConfig
    from nerfprune.scene.types import Cameras, Scene
    from nerfprune.training import TrainConfig
