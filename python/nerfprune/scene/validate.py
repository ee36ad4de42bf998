"""What makes a camera a camera: the checks every scene passes at load, and the renderer per pose.

Finite numbers are not enough: a mirrored pose (det R = -1), a bottom row of [1, 2, 3, 4], a
focal length of 1e-30 px or a principal point a mile off the image all render garbage without
a word. One function, `check_views`, states the rules for N cameras; `Cameras.validate` (all
four formats and the built-in scene) and `validate_camera` (one pose, for render-time calls)
both use it. Every failure is a `SceneError` naming the file and view (or the caller's
`where`) and the rule that was broken.

The bounds, and why (measured on the three real scenes in ../shared/datasets):
- rotation: max |R^T R - I| <= ROTATION_TOLERANCE and det R > 0. Worst case measured:
  mic 1.8e-6, fox 1.2e-6, fern 5.8e-8 (after float32 rounding); the tolerance keeps a margin of
  over 500x for poses written with 6-7 significant digits, and is far below any real scale or
  shear (a 0.1 % scale already gives 2e-3).
- 4x4 poses: bottom row [0, 0, 0, 1] within BOTTOM_ROW_TOLERANCE (the real scenes: exact).
- focal lengths: FOCAL_RANGE x the image side (fx against width, fy against height), i.e. a
  field of view between ~0.06 degrees and ~179.9 degrees. Real scenes: 0.81 (fern) .. 1.39 (mic).
- principal point: within one image size of the image, cx in [-W, 2W], cy in [-H, 2H]
  (shifted-lens and cropped captures stay well inside; fox: cx = 0.51 W).
- camera positions: at most MAX_WORLD world units from the origin (float32 keeps ~0.06 units of
  resolution there), and 0 < near < far <= MAX_WORLD. Real scenes: |t| <= 6, far <= 17.
- distortion (OpenCV k1 k2 k3 k4 p1 p2): finite, each |k| <= MAX_DISTORTION (fox: 0.08).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nerfprune.errors import SceneError

ROTATION_TOLERANCE = 1e-3  # max |R^T R - I| entry accepted as orthonormal
BOTTOM_ROW_TOLERANCE = 1e-6  # max |bottom row - [0, 0, 0, 1]| of a 4x4 pose
FOCAL_RANGE = (1e-3, 1e3)  # accepted focal length / image side (fx / width, fy / height)
PRINCIPAL_MARGIN = 1.0  # principal point at most this many image sizes outside the image
MAX_WORLD = 1e6  # largest |camera position| and far bound, in world units
MAX_DISTORTION = 10.0  # largest |coefficient| of the OpenCV distortion model
MAX_IMAGE_SIDE = 1 << 20  # largest image width / height, in pixels
DISTORTION_NAMES = ("k1", "k2", "k3", "k4", "p1", "p2")


def _first(bad: np.ndarray) -> int | None:
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def check_bottom_rows(poses: np.ndarray, labels: Sequence[str], key: str = "transform_matrix") -> None:
    """Raise unless every 4x4 pose in `poses` [N, 4, 4] ends in the row [0, 0, 0, 1]."""
    err = np.abs(poses[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    v = _first(~(err <= BOTTOM_ROW_TOLERANCE))
    if v is not None:
        raise SceneError(
            f"{labels[v]}: '{key}' bottom row is {poses[v, 3].tolist()}, expected [0, 0, 0, 1] "
            "(a camera-to-world matrix is a rigid transform)"
        )


def check_views(
    c2w: np.ndarray,  # [N, 3, 4] camera-to-world, OpenGL convention
    fx: np.ndarray,  # [N] focal lengths in pixels
    fy: np.ndarray,  # [N]
    cx: np.ndarray,  # [N] principal point in pixels
    cy: np.ndarray,  # [N]
    width: np.ndarray,  # [N] image width in pixels
    height: np.ndarray,  # [N]
    near: float,
    far: float,
    distortion: np.ndarray | None,  # [N, 6] k1 k2 k3 k4 p1 p2, or None
    labels: Sequence[str],  # [N] where each view came from, e.g. ".../transforms.json: frame 3"
    bounds_where: str,  # where near/far came from
) -> None:
    """Raise `SceneError` for the first view that is not a usable pinhole camera (rules above)."""
    n = len(labels)
    for name, value in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy), ("c2w", c2w)):
        v = _first(~np.isfinite(np.asarray(value, np.float64).reshape(n, -1)).all(axis=1))
        if v is not None:
            raise SceneError(f"{labels[v]}: camera field '{name}' is NaN or infinite")
    w, h = np.asarray(width, np.int64), np.asarray(height, np.int64)
    for name, side in (("width", w), ("height", h)):
        v = _first((side < 1) | (side > MAX_IMAGE_SIDE))
        if v is not None:
            raise SceneError(f"{labels[v]}: image {name} must be 1..{MAX_IMAGE_SIDE} pixels, got {int(side[v])}")
    lo, hi = FOCAL_RANGE
    for name, f, side, side_name in (("fx", fx, w, "width"), ("fy", fy, h, "height")):
        ratio = np.asarray(f, np.float64) / side
        v = _first(~((ratio >= lo) & (ratio <= hi)))
        if v is not None:
            raise SceneError(
                f"{labels[v]}: focal length {name} = {float(f[v]):.6g} px is outside {lo:g}..{hi:g} x the image "
                f"{side_name} ({int(side[v])} px): not a plausible pinhole camera"
            )
    m = PRINCIPAL_MARGIN
    for name, c, side, side_name in (("cx", cx, w, "width"), ("cy", cy, h, "height")):
        c = np.asarray(c, np.float64)
        v = _first(~((c >= -m * side) & (c <= (1 + m) * side)))
        if v is not None:
            raise SceneError(
                f"{labels[v]}: principal point {name} = {float(c[v]):.6g} px is more than {m:g} image {side_name} "
                f"outside the image (accepted {-m * side[v]:g}..{(1 + m) * side[v]:g})"
            )
    rot = np.asarray(c2w, np.float64)[:, :, :3]
    err = np.abs(np.einsum("nji,njk->nik", rot, rot) - np.eye(3)).reshape(n, -1).max(axis=1)
    v = _first(~(err <= ROTATION_TOLERANCE))
    if v is not None:
        raise SceneError(
            f"{labels[v]}: pose rotation is not orthonormal (max |R^T R - I| = {err[v]:.3g} > {ROTATION_TOLERANCE:g}); "
            "scaled or sheared poses are not rigid camera poses"
        )
    det = np.linalg.det(rot)
    v = _first(~(det > 0))
    if v is not None:
        raise SceneError(
            f"{labels[v]}: pose rotation has determinant {det[v]:.3g}: a mirror image, not a rotation "
            "(an axis is flipped; the camera convention is OpenGL: x right, y up, looking down -z)"
        )
    dist = np.linalg.norm(np.asarray(c2w, np.float64)[:, :, 3], axis=1)
    v = _first(~(dist <= MAX_WORLD))
    if v is not None:
        raise SceneError(f"{labels[v]}: camera position is {dist[v]:.3g} world units from the origin, beyond {MAX_WORLD:g}")
    if not (np.isfinite(near) and np.isfinite(far) and 0 < near < far <= MAX_WORLD):
        raise SceneError(f"{bounds_where}: need 0 < near < far <= {MAX_WORLD:g} (finite), got near={near}, far={far}")
    if distortion is not None:
        d = np.asarray(distortion, np.float64)
        if d.shape != (n, 6):
            raise SceneError(f"{bounds_where}: distortion has shape {d.shape}, expected ({n}, 6)")
        for bad, problem in ((~np.isfinite(d), "is NaN or infinite"), (~(np.abs(d) <= MAX_DISTORTION), f"is beyond +-{MAX_DISTORTION:g}")):
            v = _first(bad.any(axis=1))
            if v is not None:
                k = int(np.argmax(bad[v]))
                raise SceneError(f"{labels[v]}: distortion coefficient '{DISTORTION_NAMES[k]}' = {d[v, k]} {problem}")


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU (torch is not imported here)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _scalar(value: Any, name: str, where: str, integer: bool = False) -> float:
    if hasattr(value, "item") and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SceneError(f"{where}: '{name}' must be a number, got {type(value).__name__}")
    if integer and float(value) != int(value):
        raise SceneError(f"{where}: '{name}' must be a whole number of pixels, got {value}")
    return float(value)


def validate_camera(
    c2w: Any,  # [3, 4] or [4, 4] camera-to-world (numpy, list, or a torch tensor on any device)
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    near: float,
    far: float,
    where: str = "camera",
    distortion: Any = None,  # [6] k1 k2 k3 k4 p1 p2, or None
) -> None:
    """Check one camera as `Cameras.validate` checks each loaded view; for render-time poses.

    Raises `SceneError` starting with `where` (e.g. "render(): pose 3") and naming the problem.
    """
    try:
        pose = _as_array(c2w)
    except (TypeError, ValueError) as e:
        raise SceneError(f"{where}: 'c2w' is not a numeric matrix: {e}") from None
    if pose.shape not in ((3, 4), (4, 4)):
        raise SceneError(f"{where}: 'c2w' must be a 3x4 or 4x4 matrix, got shape {pose.shape}")
    if not np.isfinite(pose).all():
        raise SceneError(f"{where}: camera field 'c2w' is NaN or infinite")
    if pose.shape == (4, 4):
        check_bottom_rows(pose[None], [where], "c2w")
    values = {k: _scalar(v, k, where, integer=k in ("width", "height"))
              for k, v in dict(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, near=near, far=far).items()}
    dist = None
    if distortion is not None:
        try:
            dist = _as_array(distortion).reshape(1, -1)
        except (TypeError, ValueError) as e:
            raise SceneError(f"{where}: 'distortion' is not numeric: {e}") from None
    one = lambda k: np.array([values[k]])  # noqa: E731
    check_views(
        pose[None, :3], one("fx"), one("fy"), one("cx"), one("cy"),
        one("width").astype(np.int64), one("height").astype(np.int64),
        values["near"], values["far"], dist, [where], where,
    )


def validate_background(background: Any, where: str) -> tuple[float, float, float]:
    """An RGB background colour: three finite numbers in [0, 1] (returned as floats)."""
    try:
        rgb = _as_array(background).reshape(-1)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: background must be 3 numbers in [0, 1], got {background!r}") from None
    if rgb.shape != (3,) or not (np.isfinite(rgb).all() and (rgb >= 0).all() and (rgb <= 1).all()):
        raise SceneError(f"{where}: background must be 3 finite numbers in [0, 1], got {rgb.tolist()}")
    return float(rgb[0]), float(rgb[1]), float(rgb[2])
