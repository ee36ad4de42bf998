"""Blender synthetic scenes (NeRF "nerf_synthetic"): `transforms_{train,val,test}.json`.

Each file has `camera_angle_x` (horizontal field of view, radians) and `frames`
with `file_path` (relative, with or without ".png") and a 4x4 `transform_matrix`
(camera-to-world, already OpenGL). Images are RGBA PNG; the splits are the files'.
Bounds as in the original NeRF: near 2, far 6, objects inside [-1.5, 1.5]^3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene import _json
from nerfprune.scene.files import exists
from nerfprune.scene.formats._paths import resolve_image
from nerfprune.scene.frames import Frames, ReadOptions

SPLITS = ("train", "val", "test")


def read_blender(folder: Path, options: ReadOptions = ReadOptions()) -> Frames:
    paths: list[str] = []
    poses: list[np.ndarray] = []
    angles: list[float] = []
    where_all: list[str] = []
    splits: dict[str, np.ndarray] = {}
    first_json = None  # the first file read names the scene in messages
    for split in SPLITS:
        path = folder / f"transforms_{split}.json"
        if not exists(path):
            continue
        first_json = first_json or path
        doc = _json.load_json(path)
        angle = _json.number(doc, "camera_angle_x", str(path))
        if not 0 < angle < np.pi:
            raise SceneError(f"{path}: 'camera_angle_x' must be in (0, pi) radians, got {angle}")
        frames = _json.list_of(doc, "frames", str(path))
        if not frames:
            raise SceneError(f"{path}: 'frames' is empty (no views)")
        start = len(paths)
        for i, frame in enumerate(frames):
            where = f"{path}: frame {i}"
            if not isinstance(frame, dict):
                raise SceneError(f"{where}: must be a JSON object, got {type(frame).__name__}")
            paths.append(resolve_image(folder, _json.string(frame, "file_path", where), where, options.allow_outside_paths))
            poses.append(_json.pose_matrix(frame, "transform_matrix", where))
            angles.append(angle)
            where_all.append(where)
        splits[split] = np.arange(start, len(paths), dtype=np.int64)
    if first_json is None:
        raise SceneError(f"{folder}: no transforms_{{train,val,test}}.json (not a Blender scene)")
    n = len(paths)
    frames_out = Frames(
        source=str(first_json), name=folder.name, format="blender", paths=paths,
        c2w=np.stack(poses), near=2.0, far=6.0, splits=splits,
        aabb=np.array([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]], np.float32),
        where=where_all, **Frames.unknown_intrinsics(n),
    )
    frames_out.angle_x[:] = angles
    return frames_out
