"""Resolving a frame's `file_path` to an image file on disk."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def resolve_image(base: Path, file_path: str) -> str:
    """`base / file_path`, adding an image extension when `file_path` has none
    (Blender writes "./train/r_0"). A missing file is reported by the decoder."""
    path = (base / file_path).resolve() if not Path(file_path).is_absolute() else Path(file_path)
    if path.suffix in IMAGE_SUFFIXES or path.exists():
        return str(path)
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return str(candidate)
    return str(path.with_name(path.name + ".png"))
