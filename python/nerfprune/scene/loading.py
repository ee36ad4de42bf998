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

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from nerfprune._native import decode_images, downscale_images, probe_image
from nerfprune.errors import SceneError
from nerfprune.scene.builtin import make_builtin_scene
from nerfprune.scene.detect import detect
from nerfprune.scene.files import check_regular
from nerfprune.scene.frames import Frames, ReadOptions
from nerfprune.scene.types import Cameras, Scene
from nerfprune.scene.validate import check_views

log = logging.getLogger(__name__)

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "random": (1.0, 1.0, 1.0)}


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
    """fx, fy, cx, cy (float64), width, height (int64) of the selected views at the decoded resolution."""
    w = np.where(frames.width[idx] > 0, frames.width[idx], native[0]).astype(np.float64)
    h = np.where(frames.height[idx] > 0, frames.height[idx], native[1]).astype(np.float64)
    fx, fy = frames.fx[idx], frames.fy[idx]
    ax, ay = frames.angle_x[idx], frames.angle_y[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        fx = np.where(np.isnan(fx), 0.5 * w / np.tan(0.5 * ax), fx)
        fy = np.where(np.isnan(fy), np.where(np.isnan(ay), fx, 0.5 * h / np.tan(0.5 * ay)), fy)
    if np.isnan(fx).any():
        view = int(idx[np.argmax(np.isnan(fx))])
        raise SceneError(f"{frames.label(view)}: no focal length (need 'fl_x' or 'camera_angle_x')")
    cx = np.where(np.isnan(frames.cx[idx]), w / 2, frames.cx[idx])
    cy = np.where(np.isnan(frames.cy[idx]), h / 2, frames.cy[idx])
    f = float(factor)
    return dict(fx=fx / f, fy=fy / f, cx=cx / f, cy=cy / f,
                width=(w // factor).astype(np.int64), height=(h // factor).astype(np.int64))


def _split_membership(splits: dict[str, np.ndarray]) -> dict[int, frozenset[str]]:
    member: dict[int, set[str]] = {}
    for name, views in splits.items():
        for v in views:
            member.setdefault(int(v), set()).add(name)
    return {v: frozenset(names) for v, names in member.items()}


def _check_duplicates(frames: Frames, idx: np.ndarray, splits: dict[str, np.ndarray]) -> None:
    """Refuse frames that repeat another: the same image file, or (inline pixels) the same pose and pixels.

    Accepted, with a warning: a val frame repeated as a test frame (datasets often ship
    val = test; the holdout splits do the same). Anything else repeated would weight one view
    several times in training or leak training views into evaluation.
    """
    if frames.images is None:
        keys = [frames.paths[i] for i in idx]  # resolved paths (symlinks followed)
    else:
        keys = [hashlib.blake2b(frames.c2w[i].tobytes() + frames.images[i].tobytes(), digest_size=16).digest() for i in idx]
    member = _split_membership(splits)
    first: dict = {}
    errors, shared = [], []
    for i, key in zip(idx.tolist(), keys):
        j = first.setdefault(key, i)
        if j != i:
            val_test = {member.get(j, frozenset()), member.get(i, frozenset())} == {frozenset({"val"}), frozenset({"test"})}
            (shared if val_test else errors).append((j, i))
    what = "reads the same image file as" if frames.images is None else "has the same pose and pixels as"
    if errors:
        j, i = errors[0]
        more = f" ({len(errors)} duplicated frames in all)" if len(errors) > 1 else ""
        raise SceneError(f"{frames.label(i)}: {what} {frames.label(j)}: duplicated frame{more}")
    if shared:
        j, i = shared[0]
        log.warning("%s: %d test frames repeat val frames (first: %s %s %s); accepted", frames.source, len(shared),
                    frames.label(i), what, frames.label(j))


def _check_train(frames: Frames, splits: dict[str, np.ndarray], views: list[int] | None, holdout_every: int) -> None:
    if len(splits.get("train", ())) > 0:
        return
    n = len(frames.c2w)
    if views is not None:
        detail = f"views={views!r} selects none of its training views"
    elif frames.splits is None:
        detail = f"{n} view(s): holding out every {holdout_every}th view for val/test leaves none to train on"
    else:
        detail = "the files list no training views"
    raise SceneError(f"{frames.source}: the train split is empty ({detail})")


def load_scene(
    path: str | Path,
    *,
    factor: int = 1,
    background: str = "white",
    views: list[int] | None = None,
    holdout_every: int = 8,
    allow_outside_paths: bool = False,
) -> Scene:
    """Load a Blender, instant-ngp/nerfstudio, LLFF or npz scene (auto-detected).

    path: a dataset folder or its metadata file, or "builtin" for the generated scene.
    factor: integer area-downscale of the images (intrinsics scaled by 1/factor).
    background: "white" | "black" | "random" — what transparent pixels are composited
        onto; "random" draws a colour per ray in `RayBatcher` (evaluation uses white).
    views: indices of the frames to load (in file order, Blender: train, val, test);
        splits keep only these views and are renumbered.
    holdout_every: when the files define no split, every k-th view is val/test.
    allow_outside_paths: accept image paths that are absolute or resolve (`../`, symlinks)
        outside the scene folder; off by default, so a downloaded dataset cannot make the
        loader read arbitrary files. Only regular files are ever opened.
    Raises `SceneError` naming the file (and frame or key) and the problem.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if isinstance(holdout_every, bool) or not isinstance(holdout_every, int) or holdout_every < 2:
        raise ValueError(f"holdout_every must be an integer >= 2, got {holdout_every!r}")
    if not isinstance(allow_outside_paths, bool):
        raise ValueError(f"allow_outside_paths must be True or False, got {allow_outside_paths!r}")
    if isinstance(path, (str, os.PathLike)) and os.fspath(path) == "builtin":
        return make_builtin_scene()
    fmt, where = detect(path)
    frames = fmt.read(where, ReadOptions(factor=factor, allow_outside_paths=allow_outside_paths))
    idx = _select(frames, views)
    all_splits = frames.splits if frames.splits is not None else holdout_splits(len(frames.c2w), holdout_every)
    position = {int(v): i for i, v in enumerate(idx)}
    splits = {
        name: np.asarray([position[int(v)] for v in members if int(v) in position], np.int64)
        for name, members in all_splits.items()
    }
    _check_train(frames, splits, views, holdout_every)
    _check_duplicates(frames, idx, all_splits)
    remaining = factor if frames.downscale is None else frames.downscale
    paths = [frames.paths[i] for i in idx] if frames.images is None else []
    if frames.images is not None:
        native = (frames.images.shape[2], frames.images.shape[1])
    else:
        for i, p in zip(idx.tolist(), paths):  # only regular files reach the decoder
            try:
                check_regular(p)
            except SceneError as e:
                raise SceneError(f"{frames.label(i)}: {e}") from None
        native = probe_image(paths[0])[:2]
    intr = _intrinsics(frames, idx, native, remaining)  # intrinsics are stated for `native`
    labels = [frames.label(i) for i in idx.tolist()]
    c2w, distortion = frames.c2w[idx], None if frames.distortion is None else frames.distortion[idx]
    # Cameras first (in float64, before anything is decoded), then the pixels.
    check_views(c2w, intr["fx"], intr["fy"], intr["cx"], intr["cy"], intr["width"], intr["height"],
                frames.near, frames.far, distortion, labels, frames.source)
    if frames.images is not None:
        images = frames.images[idx]
        if remaining > 1:
            images = downscale_images(np.ascontiguousarray(images), remaining)
    else:
        images = decode_images(paths, remaining)
    cameras = Cameras(
        c2w=c2w.astype(np.float32), near=float(frames.near), far=float(frames.far),
        distortion=None if distortion is None else distortion.astype(np.float32),
        fx=intr["fx"].astype(np.float32), fy=intr["fy"].astype(np.float32),
        cx=intr["cx"].astype(np.float32), cy=intr["cy"].astype(np.float32),
        width=intr["width"].astype(np.int32), height=intr["height"].astype(np.int32),
    )
    scene = Scene(
        name=frames.name, source=frames.source, images=images, cameras=cameras, splits=splits,
        background=BACKGROUNDS[background], aabb=frames.aabb, random_background=background == "random",
        meta={"format": frames.format, "factor": factor, "views": idx.tolist(), **frames.meta},
    )
    scene.validate(labels)
    log.info("loaded %s scene %s: %d views of %dx%d", frames.format, frames.source, len(idx), scene.width, scene.height)
    return scene
