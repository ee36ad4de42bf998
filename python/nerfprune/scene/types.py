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
from typing import Sequence

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene.validate import check_views, validate_background

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

    def validate(self, source: str | Path, labels: Sequence[str] | None = None) -> None:
        """Raise `SceneError` naming `source` (or the view's label) if any camera is unusable.

        labels: [N] where each view came from (".../transforms.json: frame 3"); default
        "<source>: view <i>". The rules are in `nerfprune.scene.validate`.
        """
        n = len(self)
        if n == 0:
            raise SceneError(f"{source}: the scene has no cameras (empty frame list)")
        for name in ("fx", "fy", "cx", "cy", "width", "height"):
            value = getattr(self, name)
            if np.shape(value) != (n,):
                raise SceneError(f"{source}: camera field '{name}' has shape {np.shape(value)}, expected ({n},)")
        if self.c2w.shape != (n, 3, 4):
            raise SceneError(f"{source}: poses have shape {self.c2w.shape}, expected ({n}, 3, 4)")
        if labels is None:
            labels = [f"{source}: view {i}" for i in range(n)]
        check_views(self.c2w, self.fx, self.fy, self.cx, self.cy, self.width, self.height,
                    self.near, self.far, self.distortion, labels, str(source))


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

    def validate(self, labels: Sequence[str] | None = None) -> None:
        """Raise `SceneError` if images, cameras and splits do not fit together.

        labels: [N] where each view came from, for messages (see `Cameras.validate`).
        """
        n = len(self.cameras)
        if self.images.ndim != 4 or self.images.shape[-1] not in (3, 4) or self.images.dtype != np.uint8:
            raise SceneError(f"{self.source}: images must be uint8 [N, H, W, 3|4], got {self.images.dtype} {self.images.shape}")
        if self.images.shape[0] != n:
            raise SceneError(f"{self.source}: {self.images.shape[0]} images but {n} cameras")
        if labels is None:
            labels = [f"{self.source}: view {i}" for i in range(n)]
        self.cameras.validate(self.source, labels)
        validate_background(self.background, f"{self.source}: scene")
        h, w = self.images.shape[1:3]
        bad = np.nonzero((self.cameras.width != w) | (self.cameras.height != h))[0]
        if bad.size:
            v = int(bad[0])
            raise SceneError(
                f"{labels[v]}: image is {w}x{h} but its intrinsics say "
                f"{int(self.cameras.width[v])}x{int(self.cameras.height[v])}"
            )
        for name, idx in self.splits.items():
            idx = np.asarray(idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise SceneError(f"{self.source}: split '{name}' indexes views outside 0..{n - 1}")
        if self.depth is not None and self.depth.shape != self.images.shape[:3]:
            raise SceneError(f"{self.source}: depth has shape {self.depth.shape}, expected {self.images.shape[:3]}")
