"""Scenes: images + cameras + splits, from the built-in generator or files on disk.

No module here imports torch or the rest of nerfprune (only `nerfprune.errors` and
`nerfprune._native`), so loading a scene stays light.
"""

from nerfprune.scene.types import Cameras, Scene
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.scene.batching import BatchConfig, RayBatch, RayBatcher
from nerfprune.scene.detect import detect_format
from nerfprune.scene.formats import FORMATS, format_help, format_names
from nerfprune.scene.loading import holdout_splits, load_scene
from nerfprune.scene.validate import validate_background, validate_camera

__all__ = [
    "Cameras",
    "Scene",
    "BuiltinSceneConfig",
    "make_builtin_scene",
    "load_scene",
    "detect_format",
    "FORMATS",
    "format_help",
    "format_names",
    "holdout_splits",
    "validate_camera",
    "validate_background",
    "RayBatch",
    "RayBatcher",
    "BatchConfig",
]
