"""nerfprune's exceptions.

`SceneError` is created by the Rust extension (so decoding errors raised in Rust
and validation errors raised in Python are the same class); it subclasses
`ValueError`. Every message names the file and the problem.
"""

from __future__ import annotations

from nerfprune._native import NativePanic, SceneError


class ConfigError(ValueError):
    """A configuration value or command-line flag is invalid; the message names it."""


class NotBuiltYet(RuntimeError):
    """The requested pipeline stage does not exist yet in this version of nerfprune."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or belongs to a different run/scene."""


__all__ = ["SceneError", "NativePanic", "ConfigError", "NotBuiltYet", "CheckpointError"]
