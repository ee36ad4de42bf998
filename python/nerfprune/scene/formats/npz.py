"""npz scenes in the layout of the original tiny-NeRF data (`tiny_nerf_data.npz`).

Arrays: `images` [N, H, W, 3|4] (float in [0, 1] or uint8), `poses` [N, 4, 4]
(or [N, 3, 4]) camera-to-world in the OpenGL convention, `focal` (a scalar or
[N], pixels). Principal point: the image centre. Bounds as tiny-NeRF: near 2,
far 6. Splits: every k-th view held out.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene.frames import Frames


def _array(data, key: str, path: Path) -> np.ndarray:
    if key not in data.files:
        raise SceneError(f"{path}: missing array '{key}' (have: {', '.join(data.files) or 'none'})")
    try:
        return np.asarray(data[key])
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise SceneError(f"{path}: array '{key}' cannot be read: {e}") from None


def _to_uint8(images: np.ndarray, path: Path) -> np.ndarray:
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise SceneError(f"{path}: 'images' must be float in [0, 1] or uint8, got {images.dtype}")
    if not np.isfinite(images).all():
        raise SceneError(f"{path}: 'images' has NaN or infinite values")
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def read_npz(path: Path) -> Frames:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SceneError(f"{path}: cannot read as a .npz archive: {e}") from None
    if not hasattr(data, "files"):
        raise SceneError(f"{path}: is a single .npy array, not an .npz archive")
    with data:
        images, poses, focal = (_array(data, k, path) for k in ("images", "poses", "focal"))
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise SceneError(f"{path}: 'images' must be [N, H, W, 3|4] with N > 0, got {images.shape}")
    n, h, w = images.shape[:3]
    if poses.shape not in ((n, 4, 4), (n, 3, 4)) or not np.issubdtype(poses.dtype, np.number):
        raise SceneError(f"{path}: 'poses' must be numeric [{n}, 4, 4], got {poses.dtype} {poses.shape}")
    if focal.shape not in ((), (1,), (n,)) or not np.issubdtype(focal.dtype, np.number):
        raise SceneError(f"{path}: 'focal' must be a number or [{n}] numbers, got {focal.dtype} {focal.shape}")
    poses = poses.astype(np.float64)[:, :3, :4]
    if not np.isfinite(poses).all():
        view = int(np.argwhere(~np.isfinite(poses).reshape(n, -1).all(1))[0, 0])
        raise SceneError(f"{path}: view {view}: 'poses' has NaN or infinite values")
    out = Frames.unknown_intrinsics(n)
    focal = np.broadcast_to(focal.astype(np.float64).reshape(-1), (n,)).copy()
    out.update(fx=focal, fy=focal.copy(), width=np.full(n, w, np.int64), height=np.full(n, h, np.int64))
    return Frames(
        source=str(path), name=path.stem, format="npz", paths=[], c2w=poses, near=2.0, far=6.0,
        images=_to_uint8(images, path), **out,
    )
