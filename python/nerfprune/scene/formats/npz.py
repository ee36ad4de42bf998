"""npz scenes in the layout of the original tiny-NeRF data (`tiny_nerf_data.npz`).

Arrays: `images` [N, H, W, 3|4] (float in [0, 1] or uint8), `poses` [N, 4, 4]
(or [N, 3, 4]) camera-to-world in the OpenGL convention, `focal` (a scalar or
[N], pixels). Principal point: the image centre. Bounds as tiny-NeRF: near 2,
far 6. Splits: every k-th view held out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene._npy import load_npz
from nerfprune.scene.frames import Frames, ReadOptions
from nerfprune.scene.validate import MAX_IMAGE_SIDE, check_bottom_rows


def _to_uint8(images: np.ndarray, path: Path) -> np.ndarray:
    """uint8 as is; floats must be finite and in [0, 1] (0..255 floats are an error, not clipped)."""
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise SceneError(f"{path}: 'images' must be float in [0, 1] or uint8, got {images.dtype}")
    finite = np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if not finite.all():
        raise SceneError(f"{path}: 'images' view {int(np.flatnonzero(~finite)[0])} has NaN or infinite values")
    lo, hi = images.reshape(len(images), -1).min(axis=1), images.reshape(len(images), -1).max(axis=1)
    bad = (lo < 0) | (hi > 1)
    if bad.any():
        v = int(np.flatnonzero(bad)[0])
        raise SceneError(
            f"{path}: 'images' view {v} has values in {float(lo[v]):g}..{float(hi[v]):g}; float images must be in "
            "[0, 1] (store 0..255 data as uint8)"
        )
    return np.round(images * 255).astype(np.uint8)


def read_npz(path: Path, options: ReadOptions = ReadOptions()) -> Frames:
    arrays = load_npz(path, ("images", "poses", "focal"))
    images, poses, focal = arrays["images"], arrays["poses"], arrays["focal"]
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise SceneError(f"{path}: 'images' must be [N, H, W, 3|4] with N > 0, got {images.shape}")
    n, h, w = images.shape[:3]
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise SceneError(f"{path}: 'images' are {w}x{h} pixels; each side must be 1..{MAX_IMAGE_SIDE}")
    real = lambda a: np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating)  # noqa: E731
    if poses.shape not in ((n, 4, 4), (n, 3, 4)) or not real(poses):
        raise SceneError(f"{path}: 'poses' must be real numbers of shape [{n}, 4, 4], got {poses.dtype} {poses.shape}")
    if focal.shape not in ((), (1,), (n,)) or not real(focal):
        raise SceneError(f"{path}: 'focal' must be a number or [{n}] numbers, got {focal.dtype} {focal.shape}")
    if not np.isfinite(focal).all():
        raise SceneError(f"{path}: 'focal' is NaN or infinite")
    poses = poses.astype(np.float64)
    where = [f"{path}: view {i}" for i in range(n)]
    if not np.isfinite(poses).all():
        view = int(np.argwhere(~np.isfinite(poses).reshape(n, -1).all(1))[0, 0])
        raise SceneError(f"{where[view]}: 'poses' has NaN or infinite values")
    if poses.shape[1] == 4:
        check_bottom_rows(poses, where, "poses")
    out = Frames.unknown_intrinsics(n)
    focal = np.broadcast_to(focal.astype(np.float64).reshape(-1), (n,)).copy()
    out.update(fx=focal, fy=focal.copy(), width=np.full(n, w, np.int64), height=np.full(n, h, np.int64))
    return Frames(
        source=str(path), name=path.stem, format="npz", paths=[], c2w=poses[:, :3, :4], near=2.0, far=6.0,
        images=_to_uint8(images, path), where=where, **out,
    )
