"""nerfprune's exceptions: one family under `NerfpruneError` (a `ValueError`).

The classes errors can come from Rust with are created by the extension
(`nerfprune._native`) and re-exported here, so an error raised in Rust and the
same kind of error raised in Python are one class; the rest are defined below.
Every message names the file, field or argument and the problem.

    ValueError
    └── NerfpruneError
        ├── SceneError              bad scene data (formats, cameras, splits)
        │   ├── SceneReadError      a scene file cannot be read
        │   └── SceneDecodeError    a scene file is not a valid image
        ├── MaskError               masks do not fit their weights or each other
        ├── NativeArgumentError     a bad argument to a `nerfprune._native` function
        ├── ConfigError             a bad configuration value or command-line flag
        ├── CheckpointError         a missing, corrupt or mismatched checkpoint
        └── TrainingDiverged        the loss became NaN/inf (`.iteration`: where)
    RuntimeError
    └── NativePanic                 a bug in the Rust code, caught before it aborts Python

This module imports only the extension (no torch), so the CLI can catch these
cheaply.
"""

from __future__ import annotations

from nerfprune._native import (
    MaskError,
    NativeArgumentError,
    NativePanic,
    NerfpruneError,
    SceneDecodeError,
    SceneError,
    SceneReadError,
)


class ConfigError(NerfpruneError):
    """A configuration value or command-line flag is invalid; the message names it and the fix."""


class CheckpointError(NerfpruneError):
    """A checkpoint file is missing, corrupt, or belongs to a different run, scene or network."""


class TrainingDiverged(NerfpruneError):
    """Training stopped because the loss became NaN or infinite.

    `iteration` is the step at which it happened, so a caller can report it or
    restart from the last checkpoint before it with a lower learning rate.
    """

    def __init__(self, message: str, iteration: int):
        super().__init__(message)
        self.iteration = iteration  # the training step whose loss was not finite

    def __reduce__(self):  # keep `iteration` through pickling (e.g. from a worker process)
        return type(self), (str(self), self.iteration)


__all__ = [
    "NerfpruneError",
    "SceneError",
    "SceneReadError",
    "SceneDecodeError",
    "MaskError",
    "NativeArgumentError",
    "NativePanic",
    "ConfigError",
    "CheckpointError",
    "TrainingDiverged",
]
