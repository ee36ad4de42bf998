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

from nerfprune._native import probe_image
from nerfprune.errors import SceneError
from nerfprune.scene._npy import load_npy
from nerfprune.scene.files import check_regular, inside_scene, is_folder
from nerfprune.scene.formats._paths import IMAGE_SUFFIXES
from nerfprune.scene.frames import Frames, ReadOptions

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
        if m and is_folder(d):
            found[int(m.group(1) or 1)] = d
    if not found:
        raise SceneError(f"{folder}: LLFF scene has poses_bounds.npy but no images/ or images_<k>/ folder")
    base = min(found)
    if base * factor in found:
        return found[base * factor], 1
    return found[base], factor


def _check_rows(raw: np.ndarray, path: Path) -> None:
    """Per-view checks of the N x 17 rows: finite, hwf positive, 0 < near < far."""
    bad_row = lambda bad: int(np.flatnonzero(bad)[0])  # noqa: E731
    if not np.isfinite(raw).all():
        raise SceneError(f"{path}: view {bad_row(~np.isfinite(raw).all(1))}: pose or bounds have NaN or infinite values")
    hwf = raw[:, :15].reshape(-1, 3, 5)[:, :, 4]  # [N, 3] H, W, focal of the original photos
    if (hwf <= 0).any():
        v = bad_row((hwf <= 0).any(1))
        raise SceneError(f"{path}: view {v}: image height, width and focal [H, W, f] must be positive, got {hwf[v].tolist()}")
    near, far = raw[:, 15], raw[:, 16]
    if not ((near > 0) & (near < far)).all():
        v = bad_row(~((near > 0) & (near < far)))
        raise SceneError(f"{path}: view {v}: need 0 < near < far bounds, got near={near[v]}, far={far[v]}")


def read_llff(folder: Path, options: ReadOptions = ReadOptions()) -> Frames:
    path = folder / "poses_bounds.npy"
    raw = load_npy(path)
    if raw.ndim != 2 or raw.shape[1] != 17 or raw.shape[0] == 0 or not np.issubdtype(raw.dtype, np.number) \
            or np.issubdtype(raw.dtype, np.complexfloating):
        raise SceneError(f"{path}: expected a non-empty N x 17 array of real numbers, got {raw.dtype} {raw.shape}")
    raw = raw.astype(np.float64)
    _check_rows(raw, path)
    poses = raw[:, :15].reshape(-1, 3, 5)
    bounds = raw[:, 15:17]
    image_dir, remaining = _image_folder(folder, options.factor)
    image_dir = Path(inside_scene(folder, str(image_dir), f"{path}: image folder", options.allow_outside_paths))
    paths = sorted(str(p) for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if len(paths) != len(poses):
        raise SceneError(f"{image_dir}: {len(paths)} images but {path.name} has {len(poses)} poses")
    where = [f"{path}: view {i} ({Path(p).name})" for i, p in enumerate(paths)]
    paths = [inside_scene(folder, p, w, options.allow_outside_paths) for p, w in zip(paths, where)]
    # [down, right, back, t] -> [right, up, back, t]
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    scale = 1.0 / (bounds.min() * BD_FACTOR)
    c2w[:, :, 3] *= scale
    bounds = bounds * scale
    with np.errstate(all="ignore"):
        avg_ok = np.isfinite(average_pose(c2w)).all()
    if not avg_ok:
        raise SceneError(
            f"{path}: the mean camera orientation is undefined (viewing directions cancel out or poses are zero); "
            "LLFF scenes are forward-facing captures"
        )
    c2w = recenter(c2w)
    n = len(paths)
    check_regular(paths[0])  # never hand a FIFO or device to the decoder
    width, height, _ = probe_image(paths[0])
    hwf = poses[:, :, 4]  # [N, 3] H, W, focal of the original photos
    focal = hwf[:, 2] * width / hwf[:, 1]
    out = Frames.unknown_intrinsics(n)
    out.update(fx=focal, fy=focal.copy(), cx=np.full(n, width / 2), cy=np.full(n, height / 2))
    return Frames(
        source=str(path), name=folder.name, format="llff", paths=paths, c2w=c2w,
        near=float(bounds.min() * 0.9), far=float(bounds.max()), downscale=remaining,
        meta={"image_dir": str(image_dir), "bounds_scale": scale}, where=where, **out,
    )
