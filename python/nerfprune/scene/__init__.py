"""Scenes: images + cameras + splits, from the built-in generator or files on disk."""

from nerfprune.scene.types import Cameras, Scene
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.scene.batching import BatchConfig, RayBatch, RayBatcher
from nerfprune.scene.detect import detect_format
from nerfprune.scene.loading import SceneConfig, holdout_splits, load_scene

__all__ = [
    "Cameras",
    "Scene",
    "BuiltinSceneConfig",
    "make_builtin_scene",
    "load_scene",
    "SceneConfig",
    "detect_format",
    "holdout_splits",
    "RayBatch",
    "RayBatcher",
    "BatchConfig",
]
