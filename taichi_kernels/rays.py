"""Ray generation: camera intrinsics/poses -> world-space ray origins and directions.

Conventions (the same as `nerfprune.scene.types`):
- `c2w` is 3x4 camera-to-world, OpenGL camera: x right, y up, the camera looks down -z;
- pixel (row, col) is sampled at image position (col + pixel_offset, row + pixel_offset);
  the default 0.5 is the pixel centre, 0.0 is the original NeRF code's convention (its rays
  pass through pixel corners);
- directions are *not* normalised: the camera-space direction is (x, -y, -1) with (x, y) the
  undistorted normalised image coordinates, so the ray parameter t is the z-depth;
- optional OpenCV radial-tangential distortion (k1, k2, k3, k4, p1, p2; radial terms up to
  r^8) is undone with `UNDISTORT_ITERATIONS` Newton steps per pixel.

Everything is float32. The torch reference is `taichi_kernels.reference.generate_rays`.
"""


import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.constants import UNDISTORT_ITERATIONS
from taichi_kernels.runtime import ensure_initialized, launch

_NO_DISTORTION = torch.zeros((1, 6), dtype=torch.float32)  # placeholder argument when distortion is None


@ti.func
def _undistort(xd: ti.f32, yd: ti.f32, dist: ti.template(), v: ti.i64):
    """Newton's method for distort(x, y) = (xd, yd); dist[v] = k1 k2 k3 k4 p1 p2."""
    k1, k2, k3, k4 = dist[v, 0], dist[v, 1], dist[v, 2], dist[v, 3]
    p1, p2 = dist[v, 4], dist[v, 5]
    x, y = xd, yd
    for _ in ti.static(range(UNDISTORT_ITERATIONS)):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
        d_radial = k1 + r2 * (2.0 * k2 + r2 * (3.0 * k3 + r2 * 4.0 * k4))  # d radial / d r2
        fx = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
        fy = y * radial + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y) - yd
        fx_x = radial + 2.0 * x * x * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
        fx_y = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
        fy_x = 2.0 * x * y * d_radial + 2.0 * p2 * y + 2.0 * p1 * x
        fy_y = radial + 2.0 * y * y * d_radial + 2.0 * p2 * x + 6.0 * p1 * y
        det = fx_x * fy_y - fx_y * fy_x
        if ti.abs(det) > 1e-12:
            x -= (fx * fy_y - fy * fx_y) / det
            y -= (fy * fx_x - fx * fy_x) / det
    return x, y


@ti.func
def _write_ray(
    b: ti.i64, v: ti.i64, px: ti.f32, py: ti.f32, c2w: ti.template(), intr: ti.template(),
    dist: ti.template(), distorted: ti.template(), origins: ti.template(), directions: ti.template(),
):
    """Ray b through image position (px, py) of camera v."""
    x = (px - intr[v, 2]) / intr[v, 0]
    y = (py - intr[v, 3]) / intr[v, 1]  # image y points down
    if ti.static(distorted):
        x, y = _undistort(x, y, dist, v)
    dcam = ti.Vector([x, -y, -1.0])  # OpenGL camera space
    for i in ti.static(range(3)):
        directions[b, i] = c2w[v, i, 0] * dcam[0] + c2w[v, i, 1] * dcam[1] + c2w[v, i, 2] * dcam[2]
        origins[b, i] = c2w[v, i, 3]


@ti.kernel
def _rays_kernel(
    c2w: ti.types.ndarray(), intr: ti.types.ndarray(), dist: ti.types.ndarray(), view: ti.types.ndarray(),
    row: ti.types.ndarray(), col: ti.types.ndarray(), offset: ti.f32, distorted: ti.template(),
    origins: ti.types.ndarray(), directions: ti.types.ndarray(),
):
    for b in range(view.shape[0]):
        v = view[b]
        _write_ray(b, v, ti.cast(col[b], ti.f32) + offset, ti.cast(row[b], ti.f32) + offset,
                   c2w, intr, dist, distorted, origins, directions)


@ti.kernel
def _view_kernel(
    c2w: ti.types.ndarray(), intr: ti.types.ndarray(), dist: ti.types.ndarray(), width: ti.i32, offset: ti.f32,
    distorted: ti.template(), origins: ti.types.ndarray(), directions: ti.types.ndarray(),
):
    for b in range(origins.shape[0]):
        r = b // width
        c = b - r * width
        _write_ray(b, 0, ti.cast(c, ti.f32) + offset, ti.cast(r, ti.f32) + offset,
                   c2w, intr, dist, distorted, origins, directions)


def _f32(name: str, x: torch.Tensor, shape: tuple[int | None, ...]) -> torch.Tensor:
    """Check a float tensor's shape (None = any size) and return it float32, detached, contiguous."""
    if x.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, x.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"generate_rays: '{name}' has shape {list(x.shape)}, expected {want}")
    return x.detach().to(torch.float32).contiguous()


def generate_rays(
    c2w: torch.Tensor,  # [N, 3, 4] camera-to-world (OpenGL)
    intrinsics: torch.Tensor,  # [N, 4] fx, fy, cx, cy in pixels
    view: torch.Tensor,  # [B] int64 camera index
    row: torch.Tensor,  # [B] int64 pixel row (0 = top)
    col: torch.Tensor,  # [B] int64 pixel column (0 = left)
    distortion: torch.Tensor | None = None,  # [N, 6] k1 k2 k3 k4 p1 p2 (OpenCV), or None
    pixel_offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays for a batch of (view, row, col) pixels: origins [B, 3], directions [B, 3] (float32).

    Directions are unnormalised with camera-space z = -1 (t is z-depth). Raises ValueError
    for wrong shapes or a view index outside 0..N-1.
    """
    ensure_initialized()
    n = c2w.shape[0] if c2w.dim() == 3 else None
    c2w = _f32("c2w", c2w, (n, 3, 4))
    intrinsics = _f32("intrinsics", intrinsics, (n, 4))
    dist = _NO_DISTORTION.to(c2w.device) if distortion is None else _f32("distortion", distortion, (n, 6))
    view, row, col = (x.detach().to(torch.int64).contiguous() for x in (view, row, col))
    if not (view.dim() == 1 and row.shape == view.shape and col.shape == view.shape):
        raise ValueError(
            f"generate_rays: view, row, col must be 1-D of one length, got {list(view.shape)}, "
            f"{list(row.shape)}, {list(col.shape)}"
        )
    b = view.shape[0]
    origins = torch.empty((b, 3), dtype=torch.float32, device=c2w.device)
    directions = torch.empty((b, 3), dtype=torch.float32, device=c2w.device)
    if b == 0:
        return origins, directions
    lo, hi = int(view.min()), int(view.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"generate_rays: view index {lo if lo < 0 else hi} is outside 0..{n - 1} ({n} cameras)")
    launch(_rays_kernel, c2w, intrinsics, dist, view, row, col, float(pixel_offset), distortion is not None, origins, directions)
    return origins, directions


def view_rays(
    c2w: torch.Tensor,  # [3, 4] camera-to-world (OpenGL)
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    distortion: torch.Tensor | None = None,  # [6] k1 k2 k3 k4 p1 p2, or None
    pixel_offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All rays of one view in row-major pixel order: origins [H*W, 3], directions [H*W, 3].

    The outputs are pooled buffers (see `_buffers`): rendering view after view of one size
    reuses their memory once the previous results are dropped.
    """
    ensure_initialized()
    if width < 0 or height < 0:
        raise ValueError(f"view_rays: width and height must be >= 0, got {width}x{height}")
    c2w = _f32("c2w", c2w, (3, 4)).reshape(1, 3, 4)
    intr = torch.tensor([[fx, fy, cx, cy]], dtype=torch.float32, device=c2w.device)
    dist = _NO_DISTORTION.to(c2w.device) if distortion is None else _f32("distortion", distortion, (6,)).reshape(1, 6)
    shape = (int(width) * int(height), 3)
    origins = _buffers.empty("view_rays.origins", shape, torch.float32, c2w.device)
    directions = _buffers.empty("view_rays.directions", shape, torch.float32, c2w.device)
    if shape[0] > 0:
        launch(_view_kernel, c2w, intr, dist, int(width), float(pixel_offset), distortion is not None, origins, directions)
    return origins, directions
