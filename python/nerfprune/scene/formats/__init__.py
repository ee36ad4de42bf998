"""The dataset formats nerfprune reads: one table, `FORMATS`, used by detection, loading and the CLI help.

Each reader turns files into `Frames` (paths + poses + intrinsics as written);
`nerfprune.scene.loading` decodes and validates. Adding a format = its reader module plus one
`DatasetFormat` row here (and a test); `detect_format`, `load_scene` and `format_help` follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nerfprune.errors import SceneError
from nerfprune.scene.files import exists, show
from nerfprune.scene.formats.blender import SPLITS, read_blender
from nerfprune.scene.formats.llff import read_llff
from nerfprune.scene.formats.ngp import read_ngp
from nerfprune.scene.formats.npz import read_npz
from nerfprune.scene.frames import Frames, ReadOptions


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format: how it is recognised and read."""

    name: str  # short name, as in Scene.meta["format"] and the CLI help
    description: str  # one line: what the format is
    detected_by: str  # one line: which folder contents or file names select it
    detect: Callable[[Path, bool], Path | None]  # (existing path, is a folder) -> what `read` takes, or None
    read: Callable[[Path, ReadOptions], Frames]  # metadata reader (pixels are decoded by the loader)


_BLENDER_FILES = {f"transforms_{s}.json" for s in SPLITS}


def _blender(p: Path, folder: bool) -> Path | None:
    if folder:
        return p if exists(p / "transforms_train.json") else None
    return p.parent if p.name in _BLENDER_FILES else None


def _ngp(p: Path, folder: bool) -> Path | None:
    if folder:
        return p / "transforms.json" if exists(p / "transforms.json") else None
    return p if p.suffix == ".json" else None


def _llff(p: Path, folder: bool) -> Path | None:
    if folder:
        return p if exists(p / "poses_bounds.npy") else None
    return p.parent if p.name == "poses_bounds.npy" else None


def _npz(p: Path, folder: bool) -> Path | None:
    if not folder:
        return p if p.suffix == ".npz" else None
    found = sorted(p.glob("*.npz"))
    if len(found) > 1:
        names = ", ".join(f.name for f in found[:5]) + (", ..." if len(found) > 5 else "")
        raise SceneError(f"{show(p)}: {len(found)} .npz files ({names}); name the one to load")
    return found[0] if found else None


FORMATS: tuple[DatasetFormat, ...] = (  # detection tries them in this order
    DatasetFormat("blender", "Blender synthetic (NeRF nerf_synthetic): transforms_{train,val,test}.json + RGBA PNGs",
                  "a folder with transforms_train.json, or one of its transforms_<split>.json", _blender, read_blender),
    DatasetFormat("ngp", "instant-ngp / nerfstudio transforms.json (intrinsics, OpenCV distortion, optional splits)",
                  "a folder with transforms.json, or any other .json file", _ngp, read_ngp),
    DatasetFormat("llff", "LLFF forward-facing capture: poses_bounds.npy + images*/ folders",
                  "a folder with poses_bounds.npy, or that file", _llff, read_llff),
    DatasetFormat("npz", "tiny-NeRF .npz: images, poses and focal arrays in one file",
                  "an .npz file, or a folder holding exactly one", _npz, read_npz),
)


def get_format(name: str) -> DatasetFormat:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise SceneError(f"unknown scene format {name!r} (known: {', '.join(format_names())})")


def format_names() -> list[str]:
    return [fmt.name for fmt in FORMATS]


def format_help() -> list[tuple[str, str]]:
    """(name, one-line help) per format, for the CLI's --scene help."""
    return [(fmt.name, f"{fmt.description}; detected from {fmt.detected_by}") for fmt in FORMATS]


def tried() -> str:
    """The detection rules, for the message when none matched."""
    return "; ".join(f"{fmt.name}: {fmt.detected_by}" for fmt in FORMATS)


__all__ = ["DatasetFormat", "FORMATS", "get_format", "format_names", "format_help", "tried"]
