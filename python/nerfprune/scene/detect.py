"""Which dataset format a path holds, decided from file names alone."""

from __future__ import annotations

from pathlib import Path

from nerfprune.errors import SceneError

FORMATS = ("blender", "ngp", "llff", "npz")


def detect_format(path: str | Path) -> tuple[str, Path]:
    """(format, path the reader takes): a folder, or a file inside one.

    Folder: `transforms_train.json` -> blender, `transforms.json` -> ngp,
    `poses_bounds.npy` -> llff, exactly one `*.npz` -> npz. File: `*.npz` -> npz,
    `poses_bounds.npy` -> llff, `transforms_<split>.json` -> blender (its folder),
    any other `*.json` -> ngp/nerfstudio.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "transforms_train.json").is_file():
            return "blender", p
        if (p / "transforms.json").is_file():
            return "ngp", p / "transforms.json"
        if (p / "poses_bounds.npy").is_file():
            return "llff", p
        npz = sorted(p.glob("*.npz"))
        if len(npz) == 1:
            return "npz", npz[0]
        raise SceneError(
            f"{p}: unknown scene format: found none of transforms_train.json (Blender), transforms.json "
            "(instant-ngp/nerfstudio), poses_bounds.npy (LLFF) or a single *.npz"
        )
    if p.is_file():
        if p.suffix == ".npz":
            return "npz", p
        if p.name == "poses_bounds.npy":
            return "llff", p.parent
        if p.name in {"transforms_train.json", "transforms_val.json", "transforms_test.json"}:
            return "blender", p.parent
        if p.suffix == ".json":
            return "ngp", p
        raise SceneError(f"{p}: unknown scene format: expected a folder, a transforms JSON, poses_bounds.npy or an .npz")
    raise SceneError(f"{p}: no such file or folder")
