"""Resolving a frame's `file_path` to an image file inside the scene folder."""

from __future__ import annotations

import os
from pathlib import Path

from nerfprune.errors import SceneError
from nerfprune.scene.files import exists, inside_scene, show

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def resolve_image(base: Path, file_path: str, where: str, allow_outside: bool = False) -> str:
    """The image `file_path` names, relative to `base`, symlinks resolved.

    Adds an image extension when `file_path` has none (Blender writes "./train/r_0"). Absolute
    paths and paths leaving `base` (`../`, symlinks pointing elsewhere) are refused unless
    `allow_outside`. A missing or non-regular file is reported when the images are opened.
    where: the frame that names the path, for messages.
    """
    if "\x00" in file_path:
        raise SceneError(f"{where}: 'file_path' {show(file_path)!r} contains a NUL byte")
    if os.path.isabs(file_path) and not allow_outside:
        raise SceneError(
            f"{where}: 'file_path' {show(file_path)!r} is absolute; image paths must be relative to the "
            f"scene folder {show(base)} (load_scene(..., allow_outside_paths=True) accepts it)"
        )
    path = os.path.join(base, file_path)
    if os.path.splitext(path)[1] not in IMAGE_SUFFIXES and not exists(path):
        found = [path + s for s in IMAGE_SUFFIXES if exists(path + s)]
        path = found[0] if found else path + ".png"
    return inside_scene(base, path, f"{where}: 'file_path'", allow_outside)
