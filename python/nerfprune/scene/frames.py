"""`Frames`: what a format reader extracts from a dataset before any pixel is decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ReadOptions:
    """What `load_scene` passes on to every format reader."""

    factor: int = 1  # integer image downscale requested (LLFF picks an existing images_<k> folder by it)
    allow_outside_paths: bool = False  # accept image paths resolving outside the scene folder


@dataclass
class Frames:
    """Per-frame metadata as the files state it; NaN / 0 mean "not given, derive it".

    Intrinsics are at the resolution of the image files on disk; the loader scales
    them by the downscale factor. Poses are already in the OpenGL convention.
    """

    source: str  # the metadata file (or folder) named in error messages
    name: str  # scene name (folder name)
    format: str  # "blender" | "ngp" | "llff" | "npz"
    paths: list[str]  # [N] image files, or empty when `images` is given
    c2w: np.ndarray  # [N, 3, 4] float64 camera-to-world, OpenGL convention
    fx: np.ndarray  # [N] float64 focal length in pixels, NaN = from angle_x
    fy: np.ndarray  # [N] float64, NaN = from angle_y, else fx
    cx: np.ndarray  # [N] float64 principal point, NaN = width / 2
    cy: np.ndarray  # [N] float64, NaN = height / 2
    angle_x: np.ndarray  # [N] float64 horizontal field of view in radians, NaN = not given
    angle_y: np.ndarray  # [N] float64 vertical field of view in radians, NaN = not given
    width: np.ndarray  # [N] int64 declared image width in pixels, 0 = take the image's
    height: np.ndarray  # [N] int64 declared image height, 0 = take the image's
    near: float  # near bound (z-depth, world units)
    far: float  # far bound
    distortion: np.ndarray | None = None  # [N, 6] float64 k1 k2 k3 k4 p1 p2, or None
    splits: dict[str, np.ndarray] | None = None  # the files' own splits, None = hold out every k-th
    aabb: np.ndarray | None = None  # [2, 3] scene bounds in world units
    images: np.ndarray | None = None  # [N, H, W, C] uint8 when the format stores pixels inline (npz)
    meta: dict = field(default_factory=dict)  # facts worth keeping (aabb_scale, bounds, ...)
    downscale: int | None = None  # factor still to apply when decoding, None = the requested factor
    where: list[str] | None = None  # [N] where each frame is stated (".../transforms.json: frame 3"), for messages

    def label(self, i: int) -> str:
        """Where frame `i` is stated, for error messages."""
        return self.where[i] if self.where is not None else f"{self.source}: frame {i}"

    @classmethod
    def unknown_intrinsics(cls, n: int) -> dict[str, np.ndarray]:
        """Keyword arguments for all-unknown per-frame intrinsics of `n` frames."""
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        zero = lambda: np.zeros(n, np.int64)  # noqa: E731
        return dict(fx=nan(), fy=nan(), cx=nan(), cy=nan(), angle_x=nan(), angle_y=nan(), width=zero(), height=zero())
