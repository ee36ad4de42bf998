"""Generated camera paths for videos: an orbit (360-degree scenes) or a spiral (forward-facing)."""

from __future__ import annotations

import numpy as np

from nerfprune.scene.types import Cameras


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def look_at_point(cameras: Cameras) -> np.ndarray:
    """[3] world point closest (least squares) to all cameras' optical axes."""
    origins = cameras.c2w[:, :, 3].astype(np.float64)
    axes = -cameras.c2w[:, :, 2].astype(np.float64)  # viewing directions (OpenGL: -z)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # [N, 3, 3] projections off each axis
    a = proj.sum(0)
    b = np.einsum("nij,nj->i", proj, origins)
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _with_poses(template: Cameras, c2w: np.ndarray) -> Cameras:
    n = c2w.shape[0]
    rep = lambda a: np.repeat(a[:1], n, axis=0)  # noqa: E731
    return Cameras(
        fx=rep(template.fx), fy=rep(template.fy), cx=rep(template.cx), cy=rep(template.cy),
        width=rep(template.width), height=rep(template.height), c2w=c2w.astype(np.float32),
        near=template.near, far=template.far,
        distortion=None if template.distortion is None else rep(template.distortion),
    )


def orbit_path(cameras: Cameras, n_frames: int = 40) -> Cameras:
    """A circle around the point the cameras look at, at their mean distance and elevation.

    Up is the mean of the cameras' up vectors; intrinsics are those of the first camera.
    """
    centre = look_at_point(cameras)
    up = _normalize(cameras.c2w[:, :, 1].astype(np.float64).mean(0))
    offsets = cameras.c2w[:, :, 3].astype(np.float64) - centre
    radius = float(np.linalg.norm(offsets, axis=1).mean())
    height = float((offsets @ up).mean())
    ring = np.sqrt(max(radius**2 - height**2, 1e-6))
    e1 = _normalize(np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0]))
    e2 = np.cross(up, e1)
    poses = []
    for a in np.linspace(0, 2 * np.pi, n_frames, endpoint=False):
        eye = centre + up * height + ring * (np.cos(a) * e1 + np.sin(a) * e2)
        back = _normalize(eye - centre)
        right = _normalize(np.cross(up, back))
        poses.append(np.stack([right, np.cross(back, right), back, eye], axis=1))
    return _with_poses(cameras, np.stack(poses))


def spiral_path(cameras: Cameras, n_frames: int = 40, rotations: int = 2) -> Cameras:
    """A spiral around the mean pose (for forward-facing captures such as LLFF)."""
    c2w = cameras.c2w.astype(np.float64)
    mean_pos = c2w[:, :, 3].mean(0)
    forward = _normalize(-c2w[:, :, 2].mean(0))
    up = _normalize(c2w[:, :, 1].mean(0))
    right = _normalize(np.cross(forward, up))
    up = np.cross(right, forward)
    spread = np.abs(c2w[:, :, 3] - mean_pos).max(0) * 0.8
    focus = mean_pos + forward * (cameras.near + cameras.far) * 0.5
    poses = []
    for a in np.linspace(0, 2 * np.pi * rotations, n_frames, endpoint=False):
        eye = mean_pos + spread[0] * np.cos(a) * right + spread[1] * np.sin(a) * up + spread[2] * np.sin(0.5 * a) * forward
        back = _normalize(eye - focus)
        r = _normalize(np.cross(up, back))
        poses.append(np.stack([r, np.cross(back, r), back, eye], axis=1))
    return _with_poses(cameras, np.stack(poses))
