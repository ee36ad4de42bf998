"""`load_scene`: any supported dataset -> one validated `Scene`.

Format readers (`nerfprune.scene.formats`) only parse metadata; this module
selects views, decodes every image in Rust (parallel, GIL released, one
contiguous uint8 array, no copy into numpy), derives and scales intrinsics,
builds the splits and validates cameras and images identically for all formats.

Memory: images stay uint8, 4 bytes per RGBA pixel (3 for RGB) — the `mic`
train split is 100 x 800 x 800 x 4 = 256 MB, against 1 GB as float32; float
colours are made per ray batch (`RayBatcher`) or per view (`Scene.images_float`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import nerfprune._native as _native
from nerfprune.errors import SceneError
from nerfprune.scene.builtin import make_builtin_scene
from nerfprune.scene.detect import detect_format
from nerfprune.scene.formats.blender import read_blender
from nerfprune.scene.formats.llff import read_llff
from nerfprune.scene.formats.ngp import read_ngp
from nerfprune.scene.formats.npz import read_npz
from nerfprune.scene.frames import Frames
from nerfprune.scene.types import Cameras, Scene

log = logging.getLogger(__name__)

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "random": (1.0, 1.0, 1.0)}


@dataclass
class SceneConfig:
    """Which scene to load and how; `load()` calls `load_scene` with these fields."""

    path: str = "builtin"  # dataset folder or metadata file (Blender, instant-ngp, LLFF, npz), or "builtin"
    factor: int = 1  # integer image downscale (area filter); intrinsics are scaled to match
    background: str = "white"  # colour behind transparent pixels: white | black | random (per ray, training)
    views: list[int] | None = None  # load only these frame indices (file order), None = all
    holdout_every: int = 8  # without splits in the files, every k-th view is held out for val/test

    def load(self) -> Scene:
        return load_scene(self.path, factor=self.factor, background=self.background, views=self.views,
                          holdout_every=self.holdout_every)


def holdout_splits(n: int, every: int) -> dict[str, np.ndarray]:
    """Every `every`-th view (0, k, 2k, ...) is held out as val and test; the rest train."""
    idx = np.arange(n, dtype=np.int64)
    held = idx % every == 0
    return {"train": idx[~held], "val": idx[held], "test": idx[held].copy()}


def _select(frames: Frames, views: list[int] | None) -> np.ndarray:
    n = len(frames.c2w)
    if n == 0:
        raise SceneError(f"{frames.source}: the frame list is empty (no views)")
    if views is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(views)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise SceneError(f"{frames.source}: views= must be a non-empty list of view indices, got {views!r}")
    if idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != idx.size:
        raise SceneError(f"{frames.source}: views= must be distinct indices in 0..{n - 1}, got {views!r}")
    return idx.astype(np.int64)


def _intrinsics(frames: Frames, idx: np.ndarray, native: tuple[int, int], factor: int) -> dict[str, np.ndarray]:
    """fx, fy, cx, cy, width, height of the selected views at the decoded resolution."""
    w = np.where(frames.width[idx] > 0, frames.width[idx], native[0]).astype(np.float64)
    h = np.where(frames.height[idx] > 0, frames.height[idx], native[1]).astype(np.float64)
    fx, fy = frames.fx[idx], frames.fy[idx]
    ax, ay = frames.angle_x[idx], frames.angle_y[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        fx = np.where(np.isnan(fx), 0.5 * w / np.tan(0.5 * ax), fx)
        fy = np.where(np.isnan(fy), np.where(np.isnan(ay), fx, 0.5 * h / np.tan(0.5 * ay)), fy)
    if np.isnan(fx).any():
        view = int(idx[np.argmax(np.isnan(fx))])
        raise SceneError(f"{frames.source}: frame {view}: no focal length (need 'fl_x' or 'camera_angle_x')")
    cx = np.where(np.isnan(frames.cx[idx]), w / 2, frames.cx[idx])
    cy = np.where(np.isnan(frames.cy[idx]), h / 2, frames.cy[idx])
    f = float(factor)
    # Values beyond float32 become inf here and are reported by Cameras.validate.
    with np.errstate(over="ignore"):
        return dict(
            fx=(fx / f).astype(np.float32), fy=(fy / f).astype(np.float32),
            cx=(cx / f).astype(np.float32), cy=(cy / f).astype(np.float32),
            width=(w // factor).astype(np.int32), height=(h // factor).astype(np.int32),
        )


def _read(fmt: str, path: Path, factor: int) -> Frames:
    if fmt == "blender":
        return read_blender(path)
    if fmt == "ngp":
        return read_ngp(path)
    if fmt == "llff":
        return read_llff(path, factor)
    return read_npz(path)


def load_scene(
    path: str | Path,
    *,
    factor: int = 1,
    background: str = "white",
    views: list[int] | None = None,
    holdout_every: int = 8,
) -> Scene:
    """Load a Blender, instant-ngp/nerfstudio, LLFF or npz scene (auto-detected).

    path: a dataset folder or its metadata file, or "builtin" for the generated scene.
    factor: integer area-downscale of the images (intrinsics scaled by 1/factor).
    background: "white" | "black" | "random" — what transparent pixels are composited
        onto; "random" draws a colour per ray in `RayBatcher` (evaluation uses white).
    views: indices of the frames to load (in file order, Blender: train, val, test);
        splits keep only these views and are renumbered.
    holdout_every: when the files define no split, every k-th view is val/test.
    Raises `SceneError` naming the file and the problem.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if isinstance(holdout_every, bool) or not isinstance(holdout_every, int) or holdout_every < 2:
        raise ValueError(f"holdout_every must be an integer >= 2, got {holdout_every!r}")
    if str(path) == "builtin":
        return make_builtin_scene()
    fmt, where = detect_format(path)
    frames = _read(fmt, where, factor)
    idx = _select(frames, views)
    remaining = factor if frames.downscale is None else frames.downscale
    if frames.images is not None:
        images = frames.images[idx]
        native = (images.shape[2], images.shape[1])
        if remaining > 1:
            images = _native.downscale_images(np.ascontiguousarray(images), remaining)
    else:
        paths = [frames.paths[i] for i in idx]
        width, height, _ = _native.probe_image(paths[0])
        native = (width, height)
        images = _native.decode_images(paths, remaining)
    intr = _intrinsics(frames, idx, native, remaining)  # intrinsics are stated for `native`
    with np.errstate(over="ignore"):  # overflow to inf is reported by Cameras.validate
        c2w = frames.c2w[idx].astype(np.float32)  # [n, 3, 4]
        distortion = None if frames.distortion is None else frames.distortion[idx].astype(np.float32)
    cameras = Cameras(c2w=c2w, near=float(frames.near), far=float(frames.far), distortion=distortion, **intr)
    all_splits = frames.splits if frames.splits is not None else holdout_splits(len(frames.c2w), holdout_every)
    position = {int(v): i for i, v in enumerate(idx)}
    splits = {
        name: np.asarray([position[int(v)] for v in members if int(v) in position], np.int64)
        for name, members in all_splits.items()
    }
    scene = Scene(
        name=frames.name, source=frames.source, images=images, cameras=cameras, splits=splits,
        background=BACKGROUNDS[background], aabb=frames.aabb, random_background=background == "random",
        meta={"format": frames.format, "factor": factor, "views": idx.tolist(), **frames.meta},
    )
    scene.validate()
    log.info("loaded %s scene %s: %d views of %dx%d", frames.format, frames.source, len(idx), scene.width, scene.height)
    return scene
