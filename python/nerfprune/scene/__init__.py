"""Scenes: images + cameras + splits, from the built-in generator or files on disk."""

from nerfprune.scene.types import Cameras, Scene
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

__all__ = ["Cameras", "Scene", "BuiltinSceneConfig", "make_builtin_scene"]
