"""Occupancy grid and traversal: the kernel against brute force, packed samples, the grid's update and persistence."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load, save

from nerfprune.occupancy import OccupancyGrid, pack_bits, unpack_bits
from taichi_kernels import compositing, occupancy, packed, sampling
from taichi_kernels import reference_grid as rg

SETTINGS = settings(max_examples=30, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def amax(x: torch.Tensor) -> float:
    return float(x.abs().max()) if x.numel() else 0.0


def random_case(seed: int, res: int, n_rays: int, axis_aligned: bool, p_occupied: float = 1.0, on_faces: bool = True):
    """A random box and grid and rays starting around it, in every direction.

    axis_aligned: zero some direction components and (on_faces) put some origins exactly on
    cell faces, so that rays run inside face planes and through edges (the ties a DDA must
    survive; a ray inside a face plane belongs to both cells, and either answer is right).
    """
    g = gen(seed)
    lo = -2.0 * torch.rand(3, generator=g)
    hi = lo + 0.5 + 2.5 * torch.rand(3, generator=g)
    lo, hi = lo.double(), hi.double()  # float32 values: the kernels see the same box as the references
    o = lo - 1 + (hi - lo + 2) * torch.rand(n_rays, 3, generator=g, dtype=torch.float64)
    d = torch.randn(n_rays, 3, generator=g, dtype=torch.float64)
    if axis_aligned:
        d = torch.where(torch.rand(n_rays, 3, generator=g) < 0.4, 0.0, d)
        d[:, 2] = torch.where((d == 0).all(dim=1), -1.0, d[:, 2])
        size = (hi - lo) / res
        faces = lo + torch.randint(0, res + 1, (n_rays, 3), generator=g) * size
        o = torch.where((torch.rand(n_rays, 3, generator=g) < 0.4) & on_faces, faces, o)
    occ = torch.rand(res, res, res, generator=g) < p_occupied
    grid = occupancy.GridView(pack_bits(occ), tuple(lo.tolist()), tuple(hi.tolist()), res)
    # the kernels see float32 rays; the references get the same rays in float64
    return grid, occ, o.float(), d.float()


def test_bits_layout_is_x_major_lsb_first():
    occ = torch.zeros(3, 3, 3, dtype=torch.bool)
    occ[2, 0, 1] = True  # flat index (2 * 3 + 0) * 3 + 1 = 19: byte 2, bit 3
    bits = pack_bits(occ)
    assert bits.tolist() == [0, 0, 8, 0]
    assert torch.equal(unpack_bits(bits, 27).reshape(3, 3, 3), occ)
    assert np.array_equal(bits.numpy(), np.packbits(occ.reshape(-1).numpy(), bitorder="little"))
    grid = occupancy.GridView(bits, (0.0, 0.0, 0.0), (3.0, 3.0, 3.0), 3)
    # along +x through y = 0.5, z = 1.5 the ray meets the cell between x = 2 and 3; along -z through x = 2.5, y = 0.5
    o = torch.tensor([[-1.0, 0.5, 1.5], [2.5, 0.5, 4.0], [2.5, 1.5, 4.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    torch.testing.assert_close(occupancy.occupied_length(grid, o, d, 0.0, 10.0), torch.tensor([1.0, 1.0, 0.0]))
    ps = occupancy.sample_stratified(grid, o, d, 0.0, 10.0, 5, perturb=False)
    assert ps.counts.tolist() == [5, 5, 0] and ps.offsets.tolist() == [0, 5, 10]
    torch.testing.assert_close(ps.t, torch.tensor([3.0, 3.25, 3.5, 3.75, 4.0, 2.0, 2.25, 2.5, 2.75, 3.0]))
    assert ps.ray_index.tolist() == [0] * 5 + [1] * 5


@SETTINGS
@given(seed=st.integers(0, 2**16), res=st.integers(1, 9), n_rays=st.integers(1, 12), axis_aligned=st.booleans())
def test_traversal_visits_exactly_the_cells_along_the_ray(seed, res, n_rays, axis_aligned):
    """Contiguous cell segments covering [t_lo, t_hi], each inside its cell; dense points agree.

    Boundary ties: a point within `tol` of a cell face may be attributed to either cell, and a
    cell crossed for less than the point spacing may be missed by the points.
    """
    grid, _, o, d = random_case(seed, res, n_rays, axis_aligned)
    near, far = 0.0, 8.0
    cells, t0, t1, offsets, counts = occupancy.traverse_cells(grid, o, d, near, far)
    o64, d64 = o.double(), d.double()
    t_lo, t_hi = rg.ray_box(o64, d64, grid.aabb_min, grid.aabb_max, near, far)
    c_lo, c_hi = rg.cell_boxes(grid.aabb_min, grid.aabb_max, res)
    lo = torch.tensor(grid.aabb_min, dtype=torch.float64)
    size = (torch.tensor(grid.aabb_max, dtype=torch.float64) - lo) / res
    tol = 2e-5 * (1 + far * amax(d64) + amax(o64))  # world units
    for r in range(n_rays):
        k = slice(int(offsets[r]), int(offsets[r] + counts[r]))
        span = float(t_hi[r] - t_lo[r])
        tol_t = tol / float(d64[r].abs().max())
        if span <= tol_t:
            assert float((t1[k] - t0[k]).sum()) <= tol_t
            continue
        assert counts[r] >= 1 and bool((t1[k] > t0[k]).all())
        assert abs(float(t0[k][0]) - float(t_lo[r])) < tol_t and abs(float(t1[k][-1]) - float(t_hi[r])) < tol_t
        assert torch.equal(t0[k][1:], t1[k][:-1])  # no gap, no overlap
        for ends in (t0[k], t1[k]):  # both ends of a segment in the (closed) cell: the whole segment is
            p = o64[r] + ends.double()[:, None] * d64[r]
            assert bool((p >= c_lo[cells[k]] - tol).all()) and bool((p <= c_hi[cells[k]] + tol).all())
        # brute force: the cell of every point along the ray
        n_pts = 2000
        ts = t_lo[r] + (torch.arange(n_pts, dtype=torch.float64) + 0.5) / n_pts * span
        p = o64[r] + ts[:, None] * d64[r]
        ijk = torch.floor((p - lo) / size).long().clamp(0, res - 1)
        frac = (p - lo) / size - torch.floor((p - lo) / size)
        clear = ((frac * size > tol) & ((1 - frac) * size > tol)).all(dim=1)  # not within tol of any face
        point_cells = set(((ijk[:, 0] * res + ijk[:, 1]) * res + ijk[:, 2])[clear].tolist())
        kernel_cells = set(cells[k].tolist())
        assert point_cells <= kernel_cells
        mids = o64[r] + (0.5 * (t0[k] + t1[k])).double()[:, None] * d64[r]
        mid_frac = (mids - lo) / size - torch.floor((mids - lo) / size)
        mid_clear = ((mid_frac * size > tol) & ((1 - mid_frac) * size > tol)).all(dim=1)
        long_enough = (t1[k] - t0[k]).double() > 3 * span / n_pts
        assert set(cells[k][long_enough & mid_clear].tolist()) <= point_cells


@SETTINGS
@given(seed=st.integers(0, 2**16), res=st.integers(1, 9), n_rays=st.integers(1, 12))
def test_traversal_equals_exact_cell_intersection(seed, res, n_rays):
    grid, _, o, d = random_case(seed, res, n_rays, axis_aligned=False)
    near, far = 0.5, 6.0
    cells, t0, t1, offsets, counts = occupancy.traverse_cells(grid, o, d, near, far)
    t_in, t_out = rg.cell_segments(o.double(), d.double(), near, far, grid.aabb_min, grid.aabb_max, res)
    for r in range(n_rays):
        tol_t = 2e-5 * (1 + far + float(o.abs().max())) / float(d[r].abs().max())
        k = slice(int(offsets[r]), int(offsets[r] + counts[r]))
        got = {c: (a, b) for c, a, b in zip(cells[k].tolist(), t0[k].tolist(), t1[k].tolist())}
        crossed = (t_out[r] > t_in[r]).nonzero()[:, 0].tolist()
        want = {c: (float(t_in[r, c]), float(t_out[r, c])) for c in crossed}
        for c in set(got) | set(want):
            if c in got and c in want:
                assert abs(got[c][0] - want[c][0]) < tol_t and abs(got[c][1] - want[c][1]) < tol_t
            else:  # only a grazed cell may be missed by one side
                a, b = got.get(c, want.get(c))
                assert b - a < tol_t


@SETTINGS
@given(b=st.integers(0, 30), s=st.integers(1, 40), perturb=st.booleans(), seed=st.integers(0, 2**16),
       res=st.integers(1, 8), near=st.floats(0.0, 2.0), span=st.floats(0.5, 6.0),
       last_delta=st.sampled_from([None, 1e10, 0.3]))
def test_all_occupied_samples_equal_stratified(b, s, perturb, seed, res, near, span, last_delta):
    far = near + span
    g = gen(seed + 1)
    o = torch.rand(b, 3, generator=g) * 2 - 1
    d = torch.cat([torch.rand(b, 2, generator=g) - 0.5, -torch.ones(b, 1)], dim=1)  # camera z = -1
    bits = pack_bits(torch.ones(res**3, dtype=torch.bool))
    grid = occupancy.GridView(bits, (-20.0, -20.0, -20.0), (20.0, 20.0, 20.0), res)  # holds [near, far] of every ray
    ps = occupancy.sample_stratified(grid, o, d, near, far, s, perturb, generator=gen(seed), last_delta=last_delta)
    want = sampling.stratified(b, s, near, far, perturb, generator=gen(seed))
    assert ps.counts.tolist() == [s] * b and ps.ray_index.tolist() == [r for r in range(b) for _ in range(s)]
    torch.testing.assert_close(ps.length, torch.full((b,), far - near), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ps.t.reshape(b, s), want, rtol=1e-6, atol=2e-6 * far)
    last = (far - want[:, -1:]) if last_delta is None else torch.full((b, 1), last_delta)
    padded_dt = torch.cat([want[:, 1:] - want[:, :-1], last], dim=1)
    torch.testing.assert_close(ps.dt.reshape(b, s), padded_dt, rtol=1e-5, atol=4e-6 * far)


@SETTINGS
@given(seed=st.integers(0, 2**16), res=st.integers(1, 8), n_rays=st.integers(0, 16), s=st.integers(1, 24),
       perturb=st.booleans(), p=st.sampled_from([0.1, 0.5, 0.9]), axis_aligned=st.booleans(),
       last_delta=st.sampled_from([None, 0.5]))
def test_packed_samples_equal_reference(seed, res, n_rays, s, perturb, p, axis_aligned, last_delta):
    """Against exact cell intersection: lengths, counts, s, dt; every t maps back to its s.

    t itself is compared through the continuous map s_of_t: a sample whose s sits within
    rounding of an occupied interval's end may land on either side of the gap that follows.
    Rays parallel to the axes, but not inside face planes (where the occupied length depends
    on which of the two cells the ray is given to).
    """
    grid, occ, o, d = random_case(seed, res, n_rays, axis_aligned, p_occupied=p, on_faces=False)
    near, far = 0.25, 7.0
    ps = occupancy.sample_stratified(grid, o, d, near, far, s, perturb, generator=gen(seed), last_delta=last_delta)
    o64, d64 = o.double(), d.double()
    _, s_ref, dt_ref, _, counts_ref, length_ref = rg.sample_stratified(
        occ, o64, d64, near, far, grid.aabb_min, grid.aabb_max, s, perturb, generator=gen(seed), last_delta=last_delta)
    intervals = rg.occupied_intervals(occ, o64, d64, near, far, grid.aabb_min, grid.aabb_max)
    tol = 3e-5 * (1 + far * amax(d64) + amax(o64))
    ref_off = torch.cumsum(counts_ref, 0) - counts_ref
    for r in range(n_rays):
        tol_t = tol / float(d64[r].abs().max())
        assert abs(float(ps.length[r]) - float(length_ref[r])) < tol_t
        if int(ps.counts[r]) != int(counts_ref[r]):  # only a ray that grazes its occupied cells
            assert max(float(ps.length[r]), float(length_ref[r])) < tol_t
            continue
        if int(ps.counts[r]) == 0:
            continue
        k = slice(int(ps.offsets[r]), int(ps.offsets[r]) + s)
        kr = slice(int(ref_off[r]), int(ref_off[r]) + s)
        torch.testing.assert_close(ps.s[k].double(), s_ref[kr], rtol=0, atol=tol_t)
        torch.testing.assert_close(ps.dt[k].double(), dt_ref[kr], rtol=0, atol=2 * tol_t)
        t = ps.t[k].double()
        assert bool((t[1:] >= t[:-1]).all()) and bool((t >= near - tol_t).all()) and bool((t <= far + tol_t).all())
        torch.testing.assert_close(rg.s_of_t(intervals[r], t), s_ref[kr], rtol=0, atol=2 * tol_t)
        iv = intervals[r]
        inside = ((t[:, None] >= iv[None, :, 0] - tol_t) & (t[:, None] <= iv[None, :, 1] + tol_t)).any(dim=1)
        assert bool(inside.all())


@SETTINGS
@given(seed=st.integers(0, 2**16), res=st.sampled_from([4, 16, 40]), n_rays=st.integers(0, 24), s=st.integers(1, 24),
       n_fine=st.integers(1, 16), perturb=st.booleans(), p=st.sampled_from([0.3, 0.5, 0.9]),
       axis_aligned=st.booleans(), last_delta=st.sampled_from([None, 0.5]))
def test_recorded_runs_place_samples_exactly_as_walking(seed, res, n_rays, s, n_fine, perturb, p, axis_aligned,
                                                        last_delta):
    """The length walk's recorded runs replace the placing walks: the same t and dt bit for bit, coarse and fine,
    whether a ray's runs all fit (RUNS_KEPT) or not (a fine random grid crosses more runs: those rays are walked)."""
    grid, _, o, d = random_case(seed, res, n_rays, axis_aligned, p_occupied=p)
    near, far = 0.25, 7.0
    coarse = occupancy.sample_stratified(grid, o, d, near, far, s, perturb, generator=gen(seed), last_delta=last_delta)
    assert coarse.runs is not None and coarse.runs.count.shape == (n_rays,)
    walked = occupancy._placed(grid, o, d, near, far, occupancy._STRATIFIED, perturb,
                               torch.rand((n_rays, s), generator=gen(seed)) if perturb else torch.empty((0, 0)),
                               coarse.offsets, coarse.counts, coarse.length, torch.empty_like(coarse.s), last_delta)
    assert torch.equal(coarse.t, walked[0]) and torch.equal(coarse.dt, walked[1])
    rays = torch.arange(n_rays)
    assert torch.equal(coarse.ray_index, torch.repeat_interleave(rays, coarse.counts))  # written by the kernel
    weights = torch.rand(coarse.t.shape[0], generator=gen(seed + 1))
    if s < 3:  # importance sampling needs >= 3 samples on a ray that has any (every such ray has s)
        return
    fine = occupancy.sample_importance(grid, o, d, near, far, coarse, weights, n_fine, False, last_delta=last_delta)
    t, dt = occupancy.place(grid, o, d, near, far, fine.s, fine.offsets, fine.counts, coarse.length, last_delta)
    assert torch.equal(fine.t, t) and torch.equal(fine.dt, dt)
    assert torch.equal(fine.ray_index, torch.repeat_interleave(rays, fine.counts))


def test_rays_with_more_runs_than_recorded_are_walked():
    # a checkerboard along x: a ray along the axis crosses res / 2 runs, more than RUNS_KEPT
    res = 4 * occupancy.RUNS_KEPT
    occ = torch.zeros(res, res, res, dtype=torch.bool)
    occ[::2] = True
    grid = occupancy.GridView(pack_bits(occ), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), res)
    o = torch.tensor([[-1.0, 0.5, 0.5], [0.5, 0.5, -1.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # many runs; one run (inside an occupied slab)
    length, runs = occupancy.occupied_runs(grid, o, d, 0.0, 4.0)
    assert runs.count.tolist() == [res // 2, 1]
    ps = occupancy.sample_stratified(grid, o, d, 0.0, 4.0, 64, False)
    t, dt = occupancy.place(grid, o, d, 0.0, 4.0, ps.s, ps.offsets, ps.counts, ps.length)  # walked, every ray
    assert torch.equal(ps.t, t) and torch.equal(ps.dt, dt)
    # and the recorded runs are the walked ones: the first RUNS_KEPT of the x ray start at its odd cells' faces
    torch.testing.assert_close(runs.bounds[0, :3, 0], torch.tensor([1.0, 1.0 + 2 / res, 1.0 + 4 / res]))
    torch.testing.assert_close(length, torch.tensor([0.5, 1.0]))


def test_rays_missing_the_box_or_empty_cells_get_no_samples():
    occ = torch.zeros(4, 4, 4, dtype=torch.bool)
    occ[0, 0, 0] = True
    grid = occupancy.GridView(pack_bits(occ), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 4)
    o = torch.tensor([[5.0, 5.0, 5.0], [0.6, 0.6, 2.0], [0.1, 0.1, 2.0], [0.1, 0.1, 2.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    ps = occupancy.sample_stratified(grid, o, d, 0.0, 10.0, 8, perturb=True, generator=gen(0))
    assert ps.counts.tolist() == [0, 0, 8, 8] and ps.t.shape == (16,)
    torch.testing.assert_close(ps.length, torch.tensor([0.0, 0.0, 0.25, 0.25]))
    assert bool((ps.t >= 1.75).all()) and bool((ps.t <= 2.0).all())
    assert not torch.equal(ps.t[:8], ps.t[8:])  # each ray its own uniforms
    torch.testing.assert_close(ps.dt.reshape(2, 8).sum(dim=1) + ps.s.reshape(2, 8)[:, 0], torch.full((2,), 0.25))
    empty = occupancy.sample_stratified(grid, torch.zeros(0, 3), torch.zeros(0, 3), 0.0, 1.0, 4, perturb=False)
    assert empty.t.shape == (0,) and empty.counts.shape == (0,)


def test_kernel_arguments_are_checked():
    grid = occupancy.GridView(torch.zeros(3, dtype=torch.uint8), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 3)
    with pytest.raises(ValueError, match="ceil"):
        occupancy.occupied_length(grid, torch.zeros(1, 3), torch.ones(1, 3), 0.0, 1.0)
    grid = grid._replace(bits=torch.zeros(4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="near < far"):
        occupancy.occupied_length(grid, torch.zeros(1, 3), torch.ones(1, 3), 2.0, 1.0)
    with pytest.raises(ValueError, match="origins and dirs"):
        occupancy.sample_stratified(grid, torch.zeros(2, 3), torch.ones(1, 3), 0.0, 1.0, 4, False)


# ------------------------------------------------------------------------------ importance


@SETTINGS
@given(b=st.integers(1, 12), s=st.integers(3, 24), n_fine=st.integers(1, 24), perturb=st.booleans(),
       seed=st.integers(0, 2**16))
def test_all_occupied_importance_equals_padded(b, s, n_fine, perturb, seed):
    near, far = 2.0, 6.0
    g = gen(seed + 7)
    o = torch.rand(b, 3, generator=g) - 0.5
    d = torch.cat([torch.rand(b, 2, generator=g) - 0.5, -torch.ones(b, 1)], dim=1)
    grid = occupancy.GridView(pack_bits(torch.ones(27, dtype=torch.bool)), (-9.0,) * 3, (9.0,) * 3, 3)
    coarse = occupancy.sample_stratified(grid, o, d, near, far, s, True, generator=gen(seed))
    w = torch.rand(b * s, generator=g) ** 3
    fine = occupancy.sample_importance(grid, o, d, near, far, coarse, w, n_fine, perturb, generator=gen(seed + 1))
    want = sampling.importance(coarse.t.reshape(b, s), w.reshape(b, s), n_fine, perturb, generator=gen(seed + 1))
    assert fine.counts.tolist() == [s + n_fine] * b
    got = fine.t.reshape(b, -1)
    t_coarse = coarse.t.reshape(b, s)
    for r in range(b):  # in CDF space (see reference_grid.ray_cdf)
        torch.testing.assert_close(rg.ray_cdf(t_coarse[r], w.reshape(b, s)[r], got[r]),
                                   rg.ray_cdf(t_coarse[r], w.reshape(b, s)[r], want[r]), rtol=0, atol=2e-5)
    dt = torch.cat([got[:, 1:] - got[:, :-1], far - got[:, -1:]], dim=1)  # occupied length = z-depth here
    torch.testing.assert_close(fine.dt.reshape(b, -1), dt, rtol=1e-4, atol=1e-5)


def test_importance_samples_stay_in_occupied_cells():
    occ = torch.zeros(8, 8, 8, dtype=torch.bool)
    occ[2:4, :, :] = occ[6, :, :] = True  # two slabs across x with a gap between them
    grid = occupancy.GridView(pack_bits(occ), (0.0,) * 3, (1.0,) * 3, 8)
    g = gen(3)
    n = 64
    o = torch.cat([torch.full((n, 1), -1.0), torch.rand(n, 2, generator=g)], dim=1)
    d = torch.cat([torch.ones(n, 1), 0.2 * (torch.rand(n, 2, generator=g) - 0.5)], dim=1)
    coarse = occupancy.sample_stratified(grid, o, d, 0.0, 4.0, 16, True, generator=g)
    fine = occupancy.sample_importance(grid, o, d, 0.0, 4.0, coarse, torch.rand(coarse.t.shape[0], generator=g), 32,
                                       True, generator=g)
    p = o[fine.ray_index] + fine.t[:, None] * d[fine.ray_index]
    assert bool(((p >= -1e-5) & (p <= 1 + 1e-5)).all())
    x_slab = torch.floor(p[:, 0:1] * 8 + torch.tensor([-1e-4, 1e-4])).long().clamp(0, 7)  # either side of a tie
    assert bool(occ[x_slab, 0, 0].any(dim=1).all())  # occupancy depends on x only
    assert fine.counts.tolist() == [48 if c else 0 for c in coarse.counts.tolist()] and int(fine.counts.sum()) > 0
    assert bool((fine.t[1:] >= fine.t[:-1]).logical_or(fine.ray_index[1:] != fine.ray_index[:-1]).all())


# ---------------------------------------------------------------------------- the grid


def sphere_density(radius: float = 0.5, value: float = 50.0):
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x.norm(dim=-1) < radius, value, 0.0)

    return fn


def test_new_grid_is_all_occupied_until_the_first_update_after_warmup():
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), resolution=5)
    assert grid.warmup and bool(grid.occupied.all()) and grid.bits.shape == (16,)
    assert grid.density.shape == (5, 5, 5) and float(grid.density.abs().sum()) == 0.0
    for step in (0, 16, 32):  # warm-up: the EMA gathers, every cell stays occupied
        grid.update(sphere_density(), step=step, warmup_steps=48)
        assert grid.warmup and grid.updates == step // 16 + 1 and bool(grid.occupied.all())
    assert float(grid.density.max()) == 50.0
    grid.update(sphere_density(), step=48, warmup_steps=48)
    assert not grid.warmup and grid.updates == 4 and 0 < grid.occupied_fraction < 1


def test_update_finds_the_sphere():
    res = 16
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), resolution=res)
    grid.update(sphere_density(0.5), step=0, warmup_steps=0)
    centres = grid.cell_points(torch.arange(res**3), torch.full((res**3, 3), 0.5)).reshape(res, res, res, 3)
    half_diag = math.sqrt(3) * 0.5 * (2.0 / res)
    dist = centres.norm(dim=-1)
    assert bool(grid.occupied[dist < 0.5 - half_diag].all())  # cells entirely inside the sphere
    assert not bool(grid.occupied[dist > 0.5 + half_diag].any())  # cells entirely outside
    torch.testing.assert_close(grid.density[dist < 0.5 - half_diag].min(), torch.tensor(50.0))


def test_update_is_deterministic_per_step_and_seed():
    a, b = OccupancyGrid((0, 0, 0), (1, 1, 1), 8), OccupancyGrid((0, 0, 0), (1, 1, 1), 8)
    c = OccupancyGrid((0, 0, 0), (1, 1, 1), 8, seed=1)
    fn = lambda x: 10 * x[:, 0] * x[:, 1]  # noqa: E731
    for grid in (a, b, c):
        grid.update(fn, step=3, warmup_steps=0)
    assert torch.equal(a.density, b.density) and torch.equal(a.bits, b.bits)
    assert not torch.equal(a.density, c.density)


def test_ema_keeps_the_max_of_the_decayed_old_and_the_new_value():
    grid = OccupancyGrid((0, 0, 0), (1, 1, 1), 4)
    for value, expect in [(10.0, 10.0), (1.0, 9.5), (20.0, 20.0), (0.0, 19.0)]:
        grid.update(lambda x, v=value: torch.full((x.shape[0],), v), step=0, warmup_steps=1, decay=0.95)  # warm-up: every cell
        torch.testing.assert_close(grid.density, torch.full((4, 4, 4), expect))


@pytest.mark.parametrize("threshold, step_size, left_occupied, right_occupied",
                         [(0.01, 0.1, True, True), (0.01, 0.01, True, False), (0.9, 0.1, False, False)])
def test_threshold_is_the_opacity_over_one_step(threshold, step_size, left_occupied, right_occupied):
    """Left half density 5, right half 0.3. sigma_thr = -ln(1 - threshold) / step_size:
    0.1 (both occupied), 1.0 (left only), 23 (neither: no rule with the mean keeps the denser half)."""
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), 4)
    grid.update(lambda x: torch.where(x[:, 0] < 0, 5.0, 0.3), step=0, warmup_steps=0, threshold=threshold, step_size=step_size)
    for half, expect in ((grid.occupied[:2], left_occupied), (grid.occupied[2:], right_occupied)):
        assert bool(half.all()) == expect and bool(half.any()) == expect


def test_after_warmup_a_fraction_plus_the_occupied_cells_are_evaluated():
    res = 8
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), res)
    grid.update(sphere_density(0.3), step=0, warmup_steps=0)  # the first update: every cell
    occupied_before = grid.occupied.reshape(-1).clone()
    density_before = grid.density.reshape(-1).clone()
    assert 0 < int(occupied_before.sum()) < res**3 // 4  # few occupied: all of them are evaluated
    seen = []

    def fn(x):
        seen.append(x.clone())
        return torch.zeros(x.shape[0])

    grid.update(fn, step=5, warmup_steps=1, fraction=0.25, decay=0.5)
    pts = torch.cat(seen)
    ijk = torch.floor((pts + 1) / 2 * res).long()
    evaluated = torch.zeros(res**3, dtype=torch.bool)
    evaluated[(ijk[:, 0] * res + ijk[:, 1]) * res + ijk[:, 2]] = True
    assert int(evaluated.sum()) == pts.shape[0]  # one point per cell
    assert res**3 // 8 < pts.shape[0] <= res**3 // 4 + int(occupied_before.sum())
    assert bool(evaluated[occupied_before].all())
    after = grid.density.reshape(-1)
    torch.testing.assert_close(after[evaluated], density_before[evaluated] * 0.5)
    assert torch.equal(after[~evaluated], density_before[~evaluated])


def test_state_dict_round_trips_through_safetensors_bit_exactly():
    grid = OccupancyGrid((-1.1, -0.7, -1.3), (1.2, 0.9, 1.0), 6, seed=4)
    grid.update(sphere_density(0.6), step=0, warmup_steps=0)
    grid.update(sphere_density(0.4), step=300, warmup_steps=0)
    restored = OccupancyGrid.from_state_dict(load(save(grid.state_dict())))
    assert restored.aabb_min == grid.aabb_min and restored.aabb_max == grid.aabb_max
    assert (restored.resolution, restored.seed, restored.updates, restored.warmup) == (6, 4, 2, False)
    assert torch.equal(restored.density, grid.density) and torch.equal(restored.bits, grid.bits)
    for g in (grid, restored):  # and it continues identically
        g.update(sphere_density(0.5), step=301, warmup_steps=0)
    assert torch.equal(restored.density, grid.density) and torch.equal(restored.bits, grid.bits)
    fresh = OccupancyGrid.from_state_dict(OccupancyGrid((0, 0, 0), (1, 1, 1), 3).state_dict())
    assert fresh.warmup and bool(fresh.occupied.all())


def test_load_state_dict_names_the_bad_entry():
    state = OccupancyGrid((0, 0, 0), (1, 1, 1), 4).state_dict()
    with pytest.raises(ValueError, match="missing entries \\['bits'\\]"):
        OccupancyGrid.from_state_dict({k: v for k, v in state.items() if k != "bits"})
    with pytest.raises(ValueError, match="'density' is torch.float32 \\[3, 3, 3\\]"):
        OccupancyGrid.from_state_dict({**state, "density": torch.zeros(3, 3, 3)})


def test_grid_arguments_are_checked():
    with pytest.raises(ValueError, match="aabb_min < aabb_max"):
        OccupancyGrid((0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="resolution"):
        OccupancyGrid((0, 0, 0), (1, 1, 1), 0)
    with pytest.raises(ValueError, match="density_fn returned shape"):
        OccupancyGrid((0, 0, 0), (1, 1, 1), 2).update(lambda x: x, step=0, warmup_steps=0)
    with pytest.raises(ValueError, match="NaN"):
        OccupancyGrid((0, 0, 0), (1, 1, 1), 2).update(lambda x: x[:, 0] * math.nan, step=0, warmup_steps=0)


def test_from_cameras_bounds_the_optical_axes(tiny_scene):
    eye = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)[None]  # at the origin, looking down -z
    grid = OccupancyGrid.from_cameras(eye, 1.0, 3.0, resolution=4, margin=0.5)
    assert grid.aabb_min == (-1.0, -1.0, -4.0) and grid.aabb_max == (1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="margin > 0"):
        OccupancyGrid.from_cameras(eye, 1.0, 3.0, margin=0.0)
    cams = tiny_scene.cameras
    box = OccupancyGrid.from_cameras(cams.c2w, cams.near, cams.far, resolution=8)
    assert all(a < -1 for a in box.aabb_min) and all(b > 1 for b in box.aabb_max)  # holds the unit cube
    assert all(a > -4 for a in box.aabb_min) and all(b < 4 for b in box.aabb_max)  # tighter than the cameras


# ----------------------------------------------------------------- skipping changes nothing


def bump_density(x: torch.Tensor) -> torch.Tensor:
    """Peak density 50, smooth, exactly zero outside the cube [-0.5, 0.5]^3 (which is 4^3 cells of the grid)."""
    b = (1 - (x / 0.5) ** 2).clamp(min=0) ** 2
    return 50.0 * b.prod(dim=-1)


def test_skipping_zero_density_cells_leaves_the_render_unchanged():
    """Packed samples in occupied cells render what dense sampling renders, to < 1e-3.

    The field is smooth and exactly zero outside a cell-aligned cube, so one jittered point per
    cell finds every cell with density (threshold 0: skip only density-0 cells), and both
    quadratures converge fast (the density and its slope vanish where it starts).
    """
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), resolution=8)
    grid.update(bump_density, step=0, warmup_steps=0, threshold=0.0)
    expect = torch.zeros(8, 8, 8, dtype=torch.bool)
    expect[2:6, 2:6, 2:6] = True
    assert torch.equal(grid.occupied, expect)

    g = gen(0)
    n = 400
    o = torch.cat([1.4 * (torch.rand(n, 2, generator=g) - 0.5), torch.full((n, 1), 3.0)], dim=1)
    d = torch.cat([0.6 * (torch.rand(n, 2, generator=g) - 0.5), -torch.ones(n, 1)], dim=1)
    near, far = 1.5, 4.5
    norm = d.norm(dim=-1)
    colour_in, bg = torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.1, 0.5, 1.0])

    n_dense = 4096
    t = sampling.stratified(n, n_dense, near, far, perturb=False)
    sigma = bump_density(o[:, None] + t[..., None] * d[:, None]).reshape(n, n_dense)
    dense, _, dense_op, _ = compositing.composite(sigma, colour_in.expand(n, n_dense, 3).contiguous(), t, norm, bg)

    ps = grid.sample(o, d, near, far, n_samples=256, perturb=False)
    pts = o[ps.ray_index] + ps.t[:, None] * d[ps.ray_index]
    sig = bump_density(pts)
    skip, _, skip_op, _ = packed.composite(sig, colour_in.expand(sig.shape[0], 3).contiguous(), ps.t, ps.dt,
                                           ps.offsets, ps.counts, norm, bg)
    assert float((skip - dense).abs().max()) < 1e-3 and float((skip_op - dense_op).abs().max()) < 1e-3
    # a real test: rays missing the cube, partly and fully opaque ones, and far fewer samples
    assert int((ps.counts == 0).sum()) > 10 and torch.equal(skip[ps.counts == 0], bg.expand(int((ps.counts == 0).sum()), 3))
    assert int(((dense_op > 0.05) & (dense_op < 0.95)).sum()) > 10 and int((dense_op > 0.99).sum()) > 10
    assert ps.t.shape[0] < n * n_dense / 16


def test_samples_keep_the_dense_spacing_inside_occupied_space():
    """min_samples: ceil(S L / (far - near)) samples per ray, clamped; all-occupied rays keep S."""
    import torch

    from nerfprune.occupancy import OccupancyGrid
    from taichi_kernels.occupancy import sample_stratified

    grid = OccupancyGrid([-2.0] * 3, [2.0] * 3, 8)
    occupied = torch.zeros(8, 8, 8, dtype=torch.bool)
    occupied[3:5, 3:5, :] = True  # a column around the z axis, 1 unit wide
    from nerfprune.occupancy import pack_bits

    grid.bits = pack_bits(occupied)
    grid.warmup = False
    origins = torch.tensor([[0.1, 0.1, 4.0], [0.1, 0.1, 4.0], [1.9, 1.9, 4.0]])
    dirs = torch.tensor([[0.0, 0.0, -1.0], [0.1, 0.0, -1.0], [0.0, 0.0, -1.0]])  # ray 1 leaves the column at t = 4
    full = sample_stratified(grid.view(), origins, dirs, 2.0, 6.0, 32, False)
    adaptive = sample_stratified(grid.view(), origins, dirs, 2.0, 6.0, 32, False, min_samples=4)
    assert full.counts.tolist() == [32, 32, 0]
    expected = torch.ceil(full.length.double() * 32 / 4.0 - 1e-6).clamp(4, 32).tolist()
    assert adaptive.counts.tolist() == [int(expected[0]), int(expected[1]), 0]
    assert adaptive.counts[1] < 32 and torch.equal(adaptive.length, full.length)
    assert bool((adaptive.t[adaptive.ray_index == 0].diff() > 0).all())  # sorted, inside the ray's occupied span
