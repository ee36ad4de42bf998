"""LLFF forward-facing captures: `poses_bounds.npy` + `images*/` folders.

`poses_bounds.npy` is N x 17: a 3x5 matrix per view (3x4 camera-to-world with
rotation columns [down, right, back], then a column [H, W, focal] of the
original photos) and the near/far depth bounds. Converted as the original NeRF
loader does: columns reordered to OpenGL [right, up, back]; the scene scaled so
the nearest bound is 1/0.75; poses re-centred on their average pose; near =
0.9 x min bound, far = max bound (no NDC). Focal length is scaled to the width
of the images actually used; the principal point is the image centre.

Image folder: the highest-resolution folder present (`images/`, else the
`images_<k>/` with the smallest k) is the base; downscale `factor` applies to
it. If `images_<k*factor>/` exists it is read directly instead of downscaling.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import nerfprune._native as _native
from nerfprune.errors import SceneError
from nerfprune.scene.formats._paths import IMAGE_SUFFIXES
from nerfprune.scene.frames import Frames

BD_FACTOR = 0.75  # the original loader's bound rescaling


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def average_pose(poses: np.ndarray) -> np.ndarray:
    """[3, 4] mean camera: mean centre, summed viewing axis and up, orthonormalised."""
    centre = poses[:, :3, 3].mean(0)
    back = _normalize(poses[:, :3, 2].sum(0))
    up = poses[:, :3, 1].sum(0)
    right = _normalize(np.cross(up, back))
    return np.stack([right, _normalize(np.cross(back, right)), back, centre], 1)


def recenter(poses: np.ndarray) -> np.ndarray:
    """[N, 3, 4] poses expressed relative to their average pose."""
    bottom = np.array([[0.0, 0.0, 0.0, 1.0]])
    avg = np.concatenate([average_pose(poses), bottom])
    full = np.concatenate([poses, np.broadcast_to(bottom, (len(poses), 1, 4))], 1)
    return (np.linalg.inv(avg) @ full)[:, :3, :4]


def _image_folder(folder: Path, factor: int) -> tuple[Path, int]:
    """(folder to read, factor still to apply in the decoder)."""
    found = {}
    for d in folder.iterdir():
        m = re.fullmatch(r"images(?:_(\d+))?", d.name)
        if m and d.is_dir():
            found[int(m.group(1) or 1)] = d
    if not found:
        raise SceneError(f"{folder}: LLFF scene has poses_bounds.npy but no images/ or images_<k>/ folder")
    base = min(found)
    if base * factor in found:
        return found[base * factor], 1
    return found[base], factor


def read_llff(folder: Path, factor: int) -> Frames:
    path = folder / "poses_bounds.npy"
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SceneError(f"{path}: cannot read as a .npy array: {e}") from None
    if raw.ndim != 2 or raw.shape[1] != 17 or raw.shape[0] == 0 or not np.issubdtype(raw.dtype, np.number):
        raise SceneError(f"{path}: expected a non-empty N x 17 numeric array, got {raw.dtype} {raw.shape}")
    raw = raw.astype(np.float64)
    if not np.isfinite(raw).all():
        view = int(np.argwhere(~np.isfinite(raw).all(1))[0, 0])
        raise SceneError(f"{path}: view {view}: pose or bounds have NaN or infinite values")
    poses = raw[:, :15].reshape(-1, 3, 5)
    bounds = raw[:, 15:17]
    if (bounds <= 0).any():
        raise SceneError(f"{path}: near/far bounds must be positive")
    image_dir, remaining = _image_folder(folder, factor)
    paths = sorted(str(p) for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if len(paths) != len(poses):
        raise SceneError(f"{image_dir}: {len(paths)} images but {path.name} has {len(poses)} poses")
    # [down, right, back, t] -> [right, up, back, t]
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    scale = 1.0 / (bounds.min() * BD_FACTOR)
    c2w[:, :, 3] *= scale
    bounds = bounds * scale
    c2w = recenter(c2w)
    n = len(paths)
    width, height, _ = _native.probe_image(paths[0])
    hwf = poses[:, :, 4]  # [N, 3] H, W, focal of the original photos
    focal = hwf[:, 2] * width / hwf[:, 1]
    out = Frames.unknown_intrinsics(n)
    out.update(fx=focal, fy=focal.copy(), cx=np.full(n, width / 2), cy=np.full(n, height / 2))
    return Frames(
        source=str(path), name=folder.name, format="llff", paths=paths, c2w=c2w,
        near=float(bounds.min() * 0.9), far=float(bounds.max()), downscale=remaining,
        meta={"image_dir": str(image_dir), "bounds_scale": scale}, **out,
    )
