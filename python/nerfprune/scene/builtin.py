"""The built-in scene: textured primitives ray-traced analytically, no download.

A checkered floor tile, two striped spheres and a checkered box inside the unit
cube, seen from cameras on the upper hemisphere (world z is up, as in the
Blender scenes). Pixels that see no object are transparent (alpha 0), so the
scene is composited onto a background exactly like the Blender `mic` scene.
Shading is Lambertian with one fixed light plus ambient: view-independent
radiance, so a NeRF can fit it exactly. Depth is the z-depth t of the first hit
(camera-space direction has z = -1), inf where the ray hits nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nerfprune.scene.types import Cameras, Scene


@dataclass
class BuiltinSceneConfig:
    """Settings of the generated scene; the same seed gives the same bytes."""

    seed: int = 0  # RNG seed for the training/validation camera positions
    width: int = 64  # image width in pixels
    height: int = 64  # image height in pixels
    n_views: int = 40  # training + validation views (every 8th is validation)
    n_test: int = 8  # test views on an evenly spaced orbit at 30 degrees elevation
    radius: float = 4.0  # distance of every camera from the origin
    fov_deg: float = 40.0  # horizontal field of view in degrees


# The box the occupancy grid covers: the content ([-1.2, 1.2]^2 x [-0.5, 0.45]) with a margin on every side.
# The floor lies at z = -0.5; a box ending there clips every floor ray at the floor itself, so the field
# could not put the floor's density behind the surface as it does without a grid (-2 dB at 1k iterations).
BUILTIN_AABB = ((-1.5, -1.5, -1.0), (1.5, 1.5, 1.0))

_LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
_AMBIENT = 0.35


def look_at(eye: np.ndarray, target: np.ndarray = np.zeros(3), up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """[3, 4] camera-to-world matrix (OpenGL: camera looks down -z, y up)."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right)
    cam_up = np.cross(back, right)
    return np.stack([right, cam_up, back, eye], axis=1)


def _hemisphere_eyes(n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    azimuth = rng.uniform(0.0, 2 * np.pi, size=n)
    elevation = np.deg2rad(rng.uniform(15.0, 70.0, size=n))
    return radius * np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], axis=1
    )


def _orbit_eyes(n: int, radius: float, elevation_deg: float = 30.0) -> np.ndarray:
    azimuth = np.linspace(0.0, 2 * np.pi, n, endpoint=False) + 0.3
    el = np.deg2rad(elevation_deg)
    return radius * np.stack([np.cos(el) * np.cos(azimuth), np.cos(el) * np.sin(azimuth), np.full(n, np.sin(el))], axis=1)


def _checker(a: np.ndarray, b: np.ndarray, size: float) -> np.ndarray:
    return (np.floor(a / size) + np.floor(b / size)) % 2 == 0


def _trace(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour [M, 3], alpha [M] and z-depth t [M] for rays origin + t * dirs."""
    m = dirs.shape[0]
    best_t = np.full(m, np.inf)
    colour = np.zeros((m, 3))
    normal = np.zeros((m, 3))

    def take(t: np.ndarray, col: np.ndarray, nrm: np.ndarray) -> None:
        closer = t < best_t
        best_t[closer] = t[closer]
        colour[closer] = col[closer]
        normal[closer] = nrm[closer]

    # Floor tile z = -0.5, |x|, |y| <= 1.2, checkered.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-0.5 - origin[2]) / dirs[:, 2]
    p = origin + t[:, None] * dirs
    inside = (t > 0) & (np.abs(p[:, 0]) <= 1.2) & (np.abs(p[:, 1]) <= 1.2)
    t = np.where(inside, t, np.inf)
    check = _checker(p[:, 0], p[:, 1], 0.3)[:, None]
    take(t, np.where(check, [0.9, 0.9, 0.85], [0.25, 0.3, 0.35]), np.broadcast_to([0.0, 0.0, 1.0], (m, 3)))

    # Spheres with latitude stripes.
    for centre, r, base, stripe in (
        (np.array([0.35, 0.3, 0.0]), 0.45, [0.85, 0.2, 0.15], [1.0, 0.8, 0.2]),
        (np.array([-0.45, -0.25, -0.2]), 0.3, [0.15, 0.35, 0.9], [0.9, 0.95, 1.0]),
    ):
        oc = origin - centre
        a = (dirs * dirs).sum(1)
        b = 2 * (dirs @ oc)
        c = oc @ oc - r * r
        disc = b * b - 4 * a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / (2 * a)
        t = np.where((disc >= 0) & (t > 0), t, np.inf)
        p = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs
        nrm = (p - centre) / r
        stripes = (np.floor((nrm[:, 2] + 1.0) * 4.0) % 2 == 0)[:, None]
        take(t, np.where(stripes, base, stripe), nrm)

    # Axis-aligned box, checkered on every face.
    lo, hi = np.array([-0.1, -0.85, -0.5]), np.array([0.55, -0.3, 0.05])
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (lo - origin) / dirs
        t1 = (hi - origin) / dirs
    t_near = np.nanmax(np.minimum(t0, t1), axis=1)
    t_far = np.nanmin(np.maximum(t0, t1), axis=1)
    hit = (t_near <= t_far) & (t_near > 0)
    t = np.where(hit, t_near, np.inf)
    p = origin + np.where(hit, t_near, 0.0)[:, None] * dirs
    axis = np.argmax(np.abs(np.minimum(t0, t1) - t_near[:, None]) < 1e-9, axis=1)
    nrm = np.zeros((m, 3))
    nrm[np.arange(m), axis] = -np.sign(dirs[np.arange(m), axis])
    check = (np.floor(p[:, 0] / 0.15) + np.floor(p[:, 1] / 0.15) + np.floor(p[:, 2] / 0.15)) % 2 == 0
    take(t, np.where(check[:, None], [0.2, 0.75, 0.3], [0.95, 0.95, 0.95]), nrm)

    hit_any = np.isfinite(best_t)
    shade = _AMBIENT + (1 - _AMBIENT) * np.clip(normal @ _LIGHT, 0.0, 1.0)
    rgb = np.where(hit_any[:, None], colour * shade[:, None], 0.0)
    return np.clip(rgb, 0.0, 1.0), hit_any.astype(np.float64), best_t


def _pixel_directions(c2w: np.ndarray, fx: float, fy: float, cx: float, cy: float, w: int, h: int) -> np.ndarray:
    """[H*W, 3] world-space directions with camera-space z = -1 (pixel centres at +0.5)."""
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam = np.stack([(cols - cx) / fx, -(rows - cy) / fy, -np.ones_like(cols)], axis=-1).reshape(-1, 3)
    return cam @ c2w[:, :3].T


def make_builtin_scene(config: BuiltinSceneConfig | None = None) -> Scene:
    """Generate the built-in scene (deterministic for `config.seed`)."""
    cfg = config or BuiltinSceneConfig()
    rng = np.random.default_rng(cfg.seed)
    eyes = np.concatenate([_hemisphere_eyes(cfg.n_views, cfg.radius, rng), _orbit_eyes(cfg.n_test, cfg.radius)])
    n = eyes.shape[0]
    c2w = np.stack([look_at(e) for e in eyes])
    focal = 0.5 * cfg.width / np.tan(0.5 * np.deg2rad(cfg.fov_deg))
    images = np.zeros((n, cfg.height, cfg.width, 4), np.uint8)
    depth = np.zeros((n, cfg.height, cfg.width), np.float32)
    for i in range(n):
        dirs = _pixel_directions(c2w[i], focal, focal, cfg.width / 2, cfg.height / 2, cfg.width, cfg.height)
        rgb, alpha, t = _trace(c2w[i][:, 3], dirs)
        rgba = np.concatenate([rgb, alpha[:, None]], axis=1).reshape(cfg.height, cfg.width, 4)
        images[i] = np.round(rgba * 255).astype(np.uint8)
        depth[i] = t.reshape(cfg.height, cfg.width)
    ones = np.ones(n, np.float32)
    cameras = Cameras(
        fx=ones * focal, fy=ones * focal, cx=ones * cfg.width / 2, cy=ones * cfg.height / 2,
        width=np.full(n, cfg.width, np.int32), height=np.full(n, cfg.height, np.int32),
        c2w=c2w.astype(np.float32), near=2.0, far=6.0,
    )
    trainval = np.arange(cfg.n_views)
    scene = Scene(
        name="builtin",
        source=f"builtin:seed={cfg.seed}",
        images=images,
        cameras=cameras,
        splits={
            "train": trainval[trainval % 8 != 0],
            "val": trainval[trainval % 8 == 0],
            "test": np.arange(cfg.n_views, n),
        },
        background=(1.0, 1.0, 1.0),
        depth=depth,
        aabb=np.asarray(BUILTIN_AABB, np.float32),
        meta={"format": "builtin", "config": asdict(cfg)},
    )
    scene.validate()
    return scene
