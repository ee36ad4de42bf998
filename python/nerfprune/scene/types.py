"""The scene types every loader produces: `Cameras` and `Scene`.

Conventions (the same for every format, converted at load time):
- camera-to-world matrices `c2w` are 3x4, OpenGL camera convention: x right,
  y up, the camera looks down -z.
- pixel (row, col) has its centre at (col + 0.5, row + 0.5) in pixel units.
- ray directions are *not* normalised: camera-space direction
  ((u - cx) / fx, -(v - cy) / fy, -1), so the ray parameter t is the z-depth;
  `near`/`far` and depth maps use that t.
- images are stored as uint8 RGB or RGBA in sRGB (4 bytes per RGBA pixel; the
  float32 copy the model needs is made per batch, never for the whole scene).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfprune.errors import SceneError

ROTATION_TOLERANCE = 1e-3  # max |R^T R - I| entry accepted as orthonormal


@dataclass
class Cameras:
    """N pinhole cameras (optionally with OpenCV distortion)."""

    fx: np.ndarray  # [N] float32, focal length in pixels (x)
    fy: np.ndarray  # [N] float32, focal length in pixels (y)
    cx: np.ndarray  # [N] float32, principal point x in pixels
    cy: np.ndarray  # [N] float32, principal point y in pixels
    width: np.ndarray  # [N] int32, image width in pixels
    height: np.ndarray  # [N] int32, image height in pixels
    c2w: np.ndarray  # [N, 3, 4] float32, camera-to-world, OpenGL convention
    near: float  # nearest scene depth along the rays (z-depth units)
    far: float  # farthest scene depth along the rays
    distortion: np.ndarray | None = None  # [N, 6] float32: k1 k2 k3 k4 p1 p2 (OpenCV), or None

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    def subset(self, index: np.ndarray | list[int]) -> "Cameras":
        index = np.asarray(index, dtype=np.int64)
        return Cameras(
            fx=self.fx[index], fy=self.fy[index], cx=self.cx[index], cy=self.cy[index],
            width=self.width[index], height=self.height[index], c2w=self.c2w[index],
            near=self.near, far=self.far,
            distortion=None if self.distortion is None else self.distortion[index],
        )

    def validate(self, source: str | Path) -> None:
        """Raise `SceneError` naming `source` if any camera is unusable."""
        n = len(self)
        if n == 0:
            raise SceneError(f"{source}: the scene has no cameras (empty frame list)")
        for name in ("fx", "fy", "cx", "cy", "width", "height"):
            value = getattr(self, name)
            if np.shape(value) != (n,):
                raise SceneError(f"{source}: camera field '{name}' has shape {np.shape(value)}, expected ({n},)")
        if self.c2w.shape != (n, 3, 4):
            raise SceneError(f"{source}: poses have shape {self.c2w.shape}, expected ({n}, 3, 4)")
        for name in ("fx", "fy", "cx", "cy", "c2w"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                view = int(np.argwhere(bad.reshape(n, -1).any(axis=1))[0, 0])
                raise SceneError(f"{source}: view {view}: camera field '{name}' is NaN or infinite")
        if (self.fx <= 0).any() or (self.fy <= 0).any():
            view = int(np.argmax((self.fx <= 0) | (self.fy <= 0)))
            raise SceneError(f"{source}: view {view}: focal length must be positive")
        if (self.width <= 0).any() or (self.height <= 0).any():
            raise SceneError(f"{source}: image width and height must be positive")
        rot = self.c2w[:, :, :3].astype(np.float64)
        err = np.abs(np.einsum("nji,njk->nik", rot, rot) - np.eye(3)).reshape(n, -1).max(axis=1)
        if (err > ROTATION_TOLERANCE).any():
            view = int(np.argmax(err))
            raise SceneError(
                f"{source}: view {view}: pose rotation is not orthonormal (max |R^T R - I| = {err[view]:.3g}); "
                "scaled or sheared poses are not rigid camera poses"
            )
        if not (np.isfinite(self.near) and np.isfinite(self.far) and 0 <= self.near < self.far):
            raise SceneError(f"{source}: need 0 <= near < far, got near={self.near}, far={self.far}")
        if self.distortion is not None:
            if self.distortion.shape != (n, 6) or not np.isfinite(self.distortion).all():
                raise SceneError(f"{source}: distortion must be finite with shape ({n}, 6)")


@dataclass
class Scene:
    """Images, cameras and splits of one scene, whatever format it came from."""

    name: str  # short name, e.g. "builtin" or the folder name
    source: str  # where it was loaded from ("builtin:<seed>" for the generated scene)
    images: np.ndarray  # [N, H, W, C] uint8 sRGB, C = 3 (RGB) or 4 (RGBA)
    cameras: Cameras  # N cameras
    splits: dict[str, np.ndarray]  # split name -> view indices (int64), e.g. "train", "val", "test"
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB in [0, 1] for alpha compositing
    depth: np.ndarray | None = None  # [N, H, W] float32 ground-truth z-depth (inf where no surface)
    aabb: np.ndarray | None = None  # [2, 3] float32 scene bounds (min, max) in world units
    meta: dict = field(default_factory=dict)  # free-form facts from the loader (format, factor, ...)
    random_background: bool = False  # train on a random background colour per ray (see RayBatcher)

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def split(self, name: str) -> np.ndarray:
        if name not in self.splits:
            raise SceneError(f"{self.source}: no split '{name}' (available: {', '.join(sorted(self.splits))})")
        return self.splits[name]

    def images_float(self, index: np.ndarray | None = None) -> np.ndarray:
        """[n, H, W, 3] float32 in [0, 1], alpha composited onto `background`."""
        imgs = self.images if index is None else self.images[np.asarray(index)]
        rgb = imgs[..., :3].astype(np.float32) / 255.0
        if imgs.shape[-1] == 4:
            alpha = imgs[..., 3:4].astype(np.float32) / 255.0
            rgb = rgb * alpha + np.asarray(self.background, np.float32) * (1.0 - alpha)
        return rgb

    def validate(self) -> None:
        """Raise `SceneError` if images, cameras and splits do not fit together."""
        n = len(self.cameras)
        if self.images.ndim != 4 or self.images.shape[-1] not in (3, 4) or self.images.dtype != np.uint8:
            raise SceneError(f"{self.source}: images must be uint8 [N, H, W, 3|4], got {self.images.dtype} {self.images.shape}")
        if self.images.shape[0] != n:
            raise SceneError(f"{self.source}: {self.images.shape[0]} images but {n} cameras")
        self.cameras.validate(self.source)
        h, w = self.images.shape[1:3]
        bad = np.nonzero((self.cameras.width != w) | (self.cameras.height != h))[0]
        if bad.size:
            v = int(bad[0])
            raise SceneError(
                f"{self.source}: view {v}: image is {w}x{h} but its intrinsics say "
                f"{int(self.cameras.width[v])}x{int(self.cameras.height[v])}"
            )
        for name, idx in self.splits.items():
            idx = np.asarray(idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise SceneError(f"{self.source}: split '{name}' indexes views outside 0..{n - 1}")
        if self.depth is not None and self.depth.shape != self.images.shape[:3]:
            raise SceneError(f"{self.source}: depth has shape {self.depth.shape}, expected {self.images.shape[:3]}")
