"""Ray generation: the Taichi kernel against the torch reference, and the geometry it must obey."""

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taichi_kernels import reference as ref
from taichi_kernels import rays

FOX = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "fox" / "transforms.json"
SETTINGS = settings(max_examples=25, deadline=None)


def random_cameras(n: int, seed: int, distortion_scale: float = 0.0):
    """n cameras with random rigid poses, intrinsics for a ~ 80x60 image and optional distortion.

    The distortion scale stays small enough (0.02) for the lens model to be invertible over the
    image: at 0.05 a corner pixel can lie beyond the largest radius barrel distortion reaches.
    """
    g = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g))
    c2w = torch.cat([rot, torch.randn(n, 3, 1, generator=g) * 3], dim=-1)  # [N, 3, 4]
    f = 60 + 40 * torch.rand(n, 2, generator=g)
    c = torch.stack([40 + 5 * torch.randn(n, generator=g), 30 + 5 * torch.randn(n, generator=g)], dim=-1)
    intr = torch.cat([f, c], dim=-1)  # [N, 4]
    dist = None
    if distortion_scale > 0:
        dist = distortion_scale * torch.randn(n, 6, generator=g)
        dist[:, 2:4] *= 0.1  # k3, k4 act on r^6, r^8: keep them small
        dist[:, 4:] *= 0.1  # tangential terms are small in real lenses
    return c2w, intr, dist


def random_pixels(b: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed + 1)
    view = torch.randint(0, n, (b,), generator=g)
    row = torch.randint(0, 60, (b,), generator=g)
    col = torch.randint(0, 80, (b,), generator=g)
    return view, row, col


def project(c2w, intr, dist, view, origins, directions, depth):
    """World point origins + depth * directions -> (u, v) pixel position, distortion applied."""
    point = origins + depth[:, None] * directions
    rot, centre = c2w[view, :, :3], c2w[view, :, 3]
    p_cam = (rot.transpose(1, 2) @ (point - centre)[..., None]).squeeze(-1)  # OpenGL camera space
    x, y = p_cam[:, 0] / -p_cam[:, 2], -p_cam[:, 1] / -p_cam[:, 2]  # image y points down
    if dist is not None:
        x, y = ref.distort(x, y, dist[view])
    fx, fy, cx, cy = intr[view].unbind(-1)
    return fx * x + cx, fy * y + cy


@SETTINGS
@given(n=st.integers(1, 4), b=st.integers(0, 300), seed=st.integers(0, 2**16), distorted=st.booleans(),
       offset=st.sampled_from([0.5, 0.0]))
def test_kernel_equals_reference(n, b, seed, distorted, offset):
    c2w, intr, dist = random_cameras(n, seed, 0.02 if distorted else 0.0)
    view, row, col = random_pixels(b, n, seed)
    got = rays.generate_rays(c2w, intr, view, row, col, dist, pixel_offset=offset)
    want = ref.generate_rays(c2w, intr, view, row, col, dist, pixel_offset=offset)
    for g, w in zip(got, want):
        assert g.shape == (b, 3) and g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(seed=st.integers(0, 2**16), distorted=st.booleans(), offset=st.sampled_from([0.5, 0.0]))
def test_ray_projects_back_onto_its_pixel(seed, distorted, offset):
    c2w, intr, dist = random_cameras(3, seed, 0.02 if distorted else 0.0)
    view, row, col = random_pixels(200, 3, seed)
    origins, directions = rays.generate_rays(c2w, intr, view, row, col, dist, pixel_offset=offset)
    depth = 0.5 + 5 * torch.rand(200, generator=torch.Generator().manual_seed(seed))
    u, v = project(c2w, intr, dist, view, origins, directions, depth)
    torch.testing.assert_close(u, col + offset, rtol=0, atol=2e-3, check_dtype=False)
    torch.testing.assert_close(v, row + offset, rtol=0, atol=2e-3, check_dtype=False)


def test_directions_have_camera_z_minus_one_and_origins_are_camera_centres():
    c2w, intr, dist = random_cameras(2, 7, 0.02)
    view, row, col = random_pixels(100, 2, 7)
    origins, directions = rays.generate_rays(c2w, intr, view, row, col, dist)
    d_cam = (c2w[view, :, :3].transpose(1, 2) @ directions[..., None]).squeeze(-1)
    torch.testing.assert_close(d_cam[:, 2], torch.full((100,), -1.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(origins, c2w[view, :, 3])


def test_centre_pixel_looks_down_minus_z_and_axes_follow_opengl():
    """Identity pose, principal point at a pixel centre: that pixel's ray is (0, 0, -1);
    the pixel to its right points to +x, the pixel below it to -y (OpenGL: y up)."""
    c2w = torch.eye(4)[:3].unsqueeze(0)
    intr = torch.tensor([[100.0, 100.0, 10.5, 20.5]])
    view = torch.zeros(3, dtype=torch.int64)
    row, col = torch.tensor([20, 20, 21]), torch.tensor([10, 11, 10])
    _, d = rays.generate_rays(c2w, intr, view, row, col)
    torch.testing.assert_close(d[0], torch.tensor([0.0, 0.0, -1.0]))
    assert d[1, 0] > 0 and d[2, 1] < 0
    _, d0 = rays.generate_rays(c2w, intr, view, row, col, pixel_offset=0.0)
    torch.testing.assert_close(d[:, :2] - d0[:, :2], torch.tensor([[0.005, -0.005]] * 3))


@pytest.mark.skipif(not FOX.is_file(), reason=f"fox dataset not found at {FOX}")
def test_real_fox_distortion_round_trips():
    """The fox capture's own lens (k1 k2 p1 p2): every pixel ray projects back onto its pixel."""
    meta = json.loads(FOX.read_text())
    intr = torch.tensor([[meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"]]], dtype=torch.float32)
    dist = torch.tensor([[meta["k1"], meta["k2"], 0.0, 0.0, meta["p1"], meta["p2"]]], dtype=torch.float32)
    c2w = torch.eye(4)[:3].unsqueeze(0)
    w, h = int(meta["w"]), int(meta["h"])
    rows, cols = torch.meshgrid(torch.arange(0, h, 37), torch.arange(0, w, 23), indexing="ij")
    row, col = rows.reshape(-1), cols.reshape(-1)
    view = torch.zeros_like(row)
    origins, directions = rays.generate_rays(c2w, intr, view, row, col, dist)
    u, v = project(c2w, intr, dist, view, origins, directions, torch.ones(row.shape[0]))
    torch.testing.assert_close(u, col + 0.5, rtol=0, atol=1e-2, check_dtype=False)
    torch.testing.assert_close(v, row + 0.5, rtol=0, atol=1e-2, check_dtype=False)


@pytest.mark.parametrize("distorted", [False, True])
def test_view_rays_is_row_major_generate_rays(distorted):
    c2w, intr, dist = random_cameras(1, 3, 0.02 if distorted else 0.0)
    fx, fy, cx, cy = intr[0].tolist()
    width, height = 9, 5
    got = rays.view_rays(c2w[0], fx, fy, cx, cy, width, height, None if dist is None else dist[0])
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    want = rays.generate_rays(c2w, intr, torch.zeros(width * height, dtype=torch.int64), rows.reshape(-1),
                              cols.reshape(-1), dist)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    ref_got = ref.view_rays(c2w[0], fx, fy, cx, cy, width, height, None if dist is None else dist[0])
    for g, w in zip(got, ref_got):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_view_rays_results_survive_the_next_call():
    """Pooled outputs: a second call of the same size must not overwrite results still held."""
    c2w, intr, _ = random_cameras(2, 5)
    first = rays.view_rays(c2w[0], *intr[0].tolist(), 6, 4)
    kept = [x.clone() for x in first]
    rays.view_rays(c2w[1], *intr[1].tolist(), 6, 4)
    for a, b in zip(first, kept):
        assert torch.equal(a, b)


def test_bad_view_index_and_shapes_are_named():
    c2w, intr, _ = random_cameras(2, 1)
    idx = torch.tensor([0, 2])
    with pytest.raises(ValueError, match="view index 2 is outside 0..1"):
        rays.generate_rays(c2w, intr, idx, idx, idx)
    with pytest.raises(ValueError, match="'intrinsics' has shape"):
        rays.generate_rays(c2w, intr[:, :3], idx[:1], idx[:1], idx[:1])
