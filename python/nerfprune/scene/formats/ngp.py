"""instant-ngp and nerfstudio `transforms.json`.

Intrinsics `fl_x fl_y cx cy w h` (floats allowed) or `camera_angle_x/_y`, at the
top level or overridden per frame; OpenCV distortion `k1 k2 (k3 k4) p1 p2`;
`file_path` relative to the JSON file, with extension; poses are camera-to-world
4x4 in the OpenGL convention (as Blender's). Splits from `train_filenames` /
`val_filenames` / `test_filenames` when present, else every k-th view held out.

Bounds: instant-ngp maps world x to `x * scale + offset` (defaults 0.33, 0.5) and
bounds the scene by a cube of side `aabb_scale` centred at 0.5 in those units;
`aabb` is that cube in world units. near/far are the closest / farthest distance
from any camera to that cube (near at least 1% of far).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene import _json
from nerfprune.scene.formats._paths import resolve_image
from nerfprune.scene.frames import Frames, ReadOptions
from nerfprune.scene.validate import DISTORTION_NAMES, MAX_IMAGE_SIDE

_INTRINSICS = {"fl_x": "fx", "fl_y": "fy", "cx": "cx", "cy": "cy", "camera_angle_x": "angle_x", "camera_angle_y": "angle_y"}
_ANGLES = ("camera_angle_x", "camera_angle_y")
# nerfstudio camera models that are pinhole + OpenCV radial-tangential distortion (what the renderer does)
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")


def _normalise(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _splits(doc: dict, path: Path, file_paths: list[str]) -> dict[str, np.ndarray] | None:
    lists = {s: _json.list_of(doc, f"{s}_filenames", str(path), None) for s in ("train", "val", "test")}
    if all(v is None for v in lists.values()):
        return None
    full = {_normalise(p): i for i, p in enumerate(file_paths)}
    base = {Path(p).name: i for i, p in enumerate(file_paths)}
    splits = {}
    for split, names in lists.items():
        if names is None:
            continue
        idx = []
        for name in names:
            if not isinstance(name, str):
                raise SceneError(f"{path}: '{split}_filenames' must list strings, got {type(name).__name__}")
            i = full.get(_normalise(name), base.get(Path(name).name))
            if i is None:
                raise SceneError(f"{path}: '{split}_filenames' names '{name}', which is not a frame's file_path")
            idx.append(i)
        splits[split] = np.asarray(idx, np.int64)
    return splits


def _bounds(doc: dict, path: Path, c2w: np.ndarray) -> tuple[np.ndarray, float, float]:
    where = str(path)
    aabb_scale = _json.number(doc, "aabb_scale", where, 1.0)
    scale = _json.number(doc, "scale", where, 0.33)
    offset = _json.numbers(doc, "offset", where, 3, [0.5, 0.5, 0.5])
    if not (0 < aabb_scale <= 1e4 and 1e-6 <= scale <= 1e6):
        raise SceneError(f"{path}: need 0 < 'aabb_scale' <= 1e4 and 1e-6 <= 'scale' <= 1e6, got {aabb_scale}, {scale}")
    with np.errstate(all="ignore"):  # absurd values end as inf/NaN and are rejected below
        lo = (0.5 - aabb_scale / 2 - np.asarray(offset, np.float64)) / scale
        hi = (0.5 + aabb_scale / 2 - np.asarray(offset, np.float64)) / scale
        corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
        origins = c2w[:, :, 3]
        far = float(np.linalg.norm(origins[:, None] - corners[None], axis=-1).max())
        outside = np.maximum(np.maximum(lo - origins, origins - hi), 0.0)
        near = max(float(np.linalg.norm(outside, axis=-1).min()), 0.01 * far)
        aabb = np.stack([lo, hi]).astype(np.float32)
    if not np.isfinite(aabb).all():
        raise SceneError(f"{path}: 'offset' or 'scale' are too large to bound the scene")
    # Cameras too far away for these bounds are reported by the camera checks (positions first).
    return aabb, near, far


def _check_camera_model(obj: dict, where: str) -> None:
    """Refuse fisheye / panoramic cameras instead of loading them as pinholes."""
    if _json.boolean(obj, "is_fisheye", where, False):
        raise SceneError(f"{where}: 'is_fisheye' is true: fisheye cameras are not supported (pinhole + OpenCV distortion only)")
    if "camera_model" in obj:
        model = _json.string(obj, "camera_model", where)
        if model not in PINHOLE_MODELS:
            raise SceneError(f"{where}: 'camera_model' {model!r} is not supported (supported: {', '.join(PINHOLE_MODELS)})")


def read_ngp(path: Path, options: ReadOptions = ReadOptions()) -> Frames:
    doc = _json.load_json(path)
    _check_camera_model(doc, str(path))
    frames = _json.list_of(doc, "frames", str(path))
    if not frames:
        raise SceneError(f"{path}: 'frames' is empty (no views)")
    n = len(frames)
    out = Frames.unknown_intrinsics(n)
    distortion = np.zeros((n, 6))
    paths, file_paths, poses, where_all = [], [], [], []
    top = str(path)
    for i, frame in enumerate(frames):
        where = f"{path}: frame {i}"
        if not isinstance(frame, dict):
            raise SceneError(f"{where}: must be a JSON object, got {type(frame).__name__}")
        _check_camera_model(frame, where)
        for key, field in _INTRINSICS.items():
            given_in = where if key in frame else top
            value = _json.number(frame, key, where, _json.number(doc, key, top, np.nan))
            if key in _ANGLES and not np.isnan(value) and not 0 < value < np.pi:
                raise SceneError(f"{given_in}: '{key}' must be in (0, pi) radians, got {value}")
            out[field][i] = value
        for key, field in (("w", "width"), ("h", "height")):
            value = _json.number(frame, key, where, _json.number(doc, key, top, 0.0))
            if not 0 <= value <= MAX_IMAGE_SIDE or value != int(value):
                raise SceneError(f"{where}: '{key}' must be a whole number of pixels in 0..{MAX_IMAGE_SIDE}, got {value}")
            out[field][i] = int(value)
        for k, key in enumerate(DISTORTION_NAMES):
            distortion[i, k] = _json.number(frame, key, where, _json.number(doc, key, top, 0.0))
        file_path = _json.string(frame, "file_path", where)
        file_paths.append(file_path)
        paths.append(resolve_image(path.parent, file_path, where, options.allow_outside_paths))
        poses.append(_json.pose_matrix(frame, "transform_matrix", where))
        where_all.append(where)
    c2w = np.stack(poses)
    aabb, near, far = _bounds(doc, path, c2w)
    return Frames(
        source=str(path), name=path.parent.name, format="ngp", paths=paths, c2w=c2w,
        near=near, far=far, distortion=distortion if distortion.any() else None,
        splits=_splits(doc, path, file_paths), aabb=aabb,
        meta={"aabb_scale": _json.number(doc, "aabb_scale", top, 1.0)}, where=where_all, **out,
    )
