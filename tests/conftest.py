"""Shared fixtures: the built-in scene at test size, paths to the real datasets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]


# CI replays the same examples on every run (a red CI then means a change broke something, not a new draw);
# local runs keep exploring new examples and replay stored failures from .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def datasets_dir() -> Path:
    """`../shared/datasets` beside the repository (override with NERFPRUNE_DATASETS)."""
    return Path(os.environ.get("NERFPRUNE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def tiny_scene():
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    return make_builtin_scene(BuiltinSceneConfig(width=24, height=24, n_views=12, n_test=2))


@pytest.fixture
def python_exe() -> str:
    return sys.executable
