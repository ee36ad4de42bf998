"""Empty-space skipping: a 3-D DDA through an occupancy bitfield, and packed samples in occupied space.

Grid layout (shared with `nerfprune.occupancy.OccupancyGrid`): an axis-aligned box
[aabb_min, aabb_max] cut into R x R x R cells (R = resolution, the same count on every axis, so
cells are boxes of size (aabb_max - aabb_min) / R). Cell (i, j, k) (x, y, z index) has the flat
index (i R + j) R + k, and it is occupied when bit (index & 7) of byte bits[index >> 3] is set
(least significant bit first: `numpy.packbits(..., bitorder="little")` of the flat bool grid).

Traversal (Amanatides & Woo 1987): one ray per thread. The ray o + t d is clipped to the box and to
[near, far]; it then steps from cell to cell, always across the nearest cell face, so it visits
every cell it crosses with a positive length, in order. The direction is *not* normalised (camera
z = -1), so every t here is a z-depth, as everywhere else in nerfprune. Adjacent occupied cells are
merged into one occupied interval [a, b] of t.

Samples: write s for the occupied length along the ray before t (in z-depth units): s runs from 0
to L, the ray's total occupied length inside [near, far], and the map s -> t squeezes out the
empty gaps. `sample_stratified` places S samples per ray by exactly the rule of
`taichi_kernels.sampling.stratified`, with [near, far] replaced by [0, L] in s, then maps them to
t. So with every cell occupied (and the box covering [near, far]) the samples are the stratified
ones, and with empty cells the same S samples are spread over the occupied length only. Each
sample gets dt = s_{i+1} - s_i, the occupied length up to the next sample (the last one: L - s_i,
or `last_delta` when given): compositing a sample over dt never integrates over skipped empty
space, even when the next sample lies behind a gap. Rays with L = 0 (they miss the box or meet no
occupied cell) get no samples. The result is packed: the samples of ray r are
[offsets[r], offsets[r] + counts[r]).

Everything is float32; t, s, dt are z-depths (compositing multiplies by |d|). The torch twins
(slow, obviously correct: exact slab intersection with every cell) are in
`taichi_kernels.reference_grid`.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch

from taichi_kernels import _buffers, packed
from taichi_kernels._taichi import ti
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch

_CELLS_COUNT, _CELLS_EMIT, _LENGTH, _PLACE, _STRATIFIED = range(5)  # modes of `_walk_kernel`
RUNS_KEPT = 16  # occupied runs per ray the length walk records, so that placing samples needs no second walk


class GridView(NamedTuple):
    """What the kernels read of an occupancy grid (see the module docstring for the layout)."""

    bits: torch.Tensor  # [ceil(R^3 / 8)] uint8 occupancy bits, flat index (i R + j) R + k, LSB first
    aabb_min: tuple[float, float, float]  # world-space corner of cell (0, 0, 0)
    aabb_max: tuple[float, float, float]  # world-space far corner of cell
    resolution: int  # R: cells per axis


@dataclass
class PackedSamples:
    """Samples of B rays packed into one list of M: ray r owns [offsets[r], offsets[r] + counts[r])."""

    t: torch.Tensor  # [M] float32 z-depths, increasing within each ray
    s: torch.Tensor  # [M] float32 occupied length before each sample (0 <= s <= length of its ray)
    dt: torch.Tensor  # [M] float32 occupied z-depth length each sample stands for (compositing step / |d|)
    ray_index: torch.Tensor  # [M] int64 ray of each sample
    offsets: torch.Tensor  # [B] int64 first sample of each ray
    counts: torch.Tensor  # [B] int64 samples per ray (0: the ray meets no occupied cell)
    length: torch.Tensor  # [B] float32 occupied z-depth length L of each ray inside [near, far]
    runs: "OccupiedRuns | None" = None  # the rays' occupied runs, when the sampler recorded them


@dataclass
class OccupiedRuns:
    """The occupied runs [a, b] of t of B rays, as the DDA found them: placing samples reads them instead of walking.

    A ray with more than RUNS_KEPT runs keeps its first RUNS_KEPT and count > RUNS_KEPT: it is walked again.
    """

    bounds: torch.Tensor  # [B, RUNS_KEPT, 2] float32 (a, b) of each run, in order along the ray
    count: torch.Tensor  # [B] int32 runs of each ray (> RUNS_KEPT: not all recorded)


# --------------------------------------------------------------------------- DDA pieces


@ti.func
def _row(a: ti.template(), r: ti.i64):
    return ti.Vector([a[r, 0], a[r, 1], a[r, 2]])


@ti.func
def _clip(o, d, lo, hi, near: ti.f32, far: ti.f32):
    """[t_lo, t_hi]: the part of [near, far] where the ray is inside the box (empty: t_lo >= t_hi)."""
    t_lo, t_hi = near, far
    for a in ti.static(range(3)):
        if d[a] != 0.0:
            t0 = (lo[a] - o[a]) / d[a]
            t1 = (hi[a] - o[a]) / d[a]
            t_lo = ti.max(t_lo, ti.min(t0, t1))
            t_hi = ti.min(t_hi, ti.max(t0, t1))
        elif o[a] < lo[a] or o[a] > hi[a]:  # parallel to this slab and outside it
            t_hi = t_lo - 1.0
    return t_lo, t_hi


@ti.func
def _first_cell(o, d, t: ti.f32, lo, size, res: ti.i32):
    """The cell holding the point at t (clamped into the grid), the step sign and the exit side per axis."""
    p = o + t * d
    cell = ti.Vector([0, 0, 0])
    step = ti.Vector([0, 0, 0])
    side = ti.Vector([0, 0, 0])  # 1: the ray leaves a cell through its upper face on this axis
    for a in ti.static(range(3)):
        cell[a] = ti.min(ti.max(ti.cast(ti.floor((p[a] - lo[a]) / size[a]), ti.i32), 0), res - 1)
        if d[a] > 0.0:
            step[a] = 1
            side[a] = 1
        elif d[a] < 0.0:
            step[a] = -1
    return cell, step, side


@ti.func
def _cell_exit(o, d, cell, step, side, lo, size):
    """Where (t) and across which axis the ray leaves `cell`: the nearest of its exit faces."""
    t_exit = ti.math.inf
    axis = 0
    for a in ti.static(range(3)):
        if step[a] != 0:
            ta = (lo[a] + (cell[a] + side[a]) * size[a] - o[a]) / d[a]
            if ta < t_exit:
                t_exit = ta
                axis = a
    return t_exit, axis


@ti.func
def _next_cell(cell: ti.template(), step, axis: ti.i32, res: ti.i32) -> ti.i32:
    """Move `cell` across its exit face on `axis`; 0 once the ray has left the grid."""
    cell[axis] += step[axis]
    return 0 <= cell[axis] < res


@ti.func
def _flat(cell, res: ti.i32) -> ti.i32:
    return (cell[0] * res + cell[1]) * res + cell[2]


@ti.func
def _is_occupied(bits: ti.template(), index: ti.i32) -> ti.i32:
    return (ti.cast(bits[index >> 3], ti.i32) >> (index & 7)) & 1


# ------------------------------------------------------------------------- the walk


@ti.func
def _stratified_positions(u: ti.template(), r: ti.i64, total: ti.f32, off: ti.i64, n: ti.i32,
                          perturb: ti.template(), s: ti.template()):
    """`sampling.stratified`'s rule on [0, total]: n points evenly from 0 to total, jittered in midpoint bins."""
    step = 1.0 / ti.max(n - 1, 1)
    for i in range(n):
        p = total * (i * step)
        if ti.static(perturb):
            lower, upper = p, p
            if i > 0:
                lower = 0.5 * (total * ((i - 1) * step) + p)
            if i < n - 1:
                upper = 0.5 * (p + total * ((i + 1) * step))
            p = lower + (upper - lower) * u[r, i]
        s[off + i] = ti.min(ti.max(p, 0.0), total)


@ti.func
def _place_run(a: ti.f32, b: ti.f32, c: ti.f32, s: ti.template(), off: ti.i64, cnt: ti.i32, nxt: ti.i32,
               t_out: ti.template()) -> ti.i32:
    """Map the samples whose s falls in the run [a, b] of t (occupied length c before it) to t."""
    end = c + (b - a)
    while nxt < cnt and s[off + nxt] <= end:
        t_out[off + nxt] = ti.min(ti.max(a + (s[off + nxt] - c), a), b)
        nxt += 1
    return nxt


@ti.func
def _record_run(runs: ti.template(), r: ti.i64, n_kept: ti.i32, a: ti.f32, b: ti.f32) -> ti.i32:
    """Store run [a, b] as ray r's run n_kept if there is room; the count goes on past RUNS_KEPT (a ray to walk)."""
    if n_kept < RUNS_KEPT:
        runs[r, n_kept, 0] = a
        runs[r, n_kept, 1] = b
    return n_kept + 1


@ti.kernel
def _walk_kernel(
    o: ti.types.ndarray(), d: ti.types.ndarray(), near: ti.f32, far: ti.f32, box: ti.types.ndarray(), res: ti.i32,
    bits: ti.types.ndarray(), mode: ti.template(), perturb: ti.template(), u: ti.types.ndarray(),
    offsets: ti.types.ndarray(), counts: ti.types.ndarray(), last_delta: ti.f32, length: ti.types.ndarray(),
    s: ti.types.ndarray(), t_out: ti.types.ndarray(), dt_out: ti.types.ndarray(), cells: ti.types.ndarray(),
    runs: ti.types.ndarray(), run_count: ti.types.ndarray(), with_runs: ti.template(), ray_out: ti.types.ndarray(),
    serial: ti.template(),
):
    """One ray per thread: the DDA, and what each mode does with the cells it crosses.

    _CELLS_COUNT: counts[r] = cells crossed with a positive length. _CELLS_EMIT: list them from
    offsets[r] on: cells (flat index), s (entry t), t_out (exit t). The other modes walk the
    occupied runs (maximal stretches of adjacent occupied cells): _LENGTH: length[r] = total
    occupied length L. _STRATIFIED: write the stratified s of ray r (counts[r] of them over
    [0, length[r]]), then as _PLACE. _PLACE: map the given sorted s to t, write dt. Both passes
    add the run lengths in the same order, so the s of the last sample (<= L) falls inside the
    last run. With `with_runs`, _LENGTH also records each ray's first RUNS_KEPT runs and their count,
    and _STRATIFIED and _PLACE read them instead of walking, for every ray whose runs all fit: the same
    (a, b) pairs in the same order, so the same floats. The placing modes also write each sample's ray
    (ray_out, int64 [M]).
    """
    lo, size, hi = _row(box, 0), _row(box, 1), _row(box, 2)
    ti.loop_config(serialize=serial)
    for r in range(o.shape[0]):
        o_r, d_r = _row(o, r), _row(d, r)
        t_lo, t_hi = _clip(o_r, d_r, lo, hi, near, far)
        off = ti.cast(0, ti.i64)
        cnt = 0
        if ti.static(mode == _CELLS_EMIT):
            off = offsets[r]
        if ti.static(mode in (_PLACE, _STRATIFIED)):
            off, cnt = offsets[r], ti.cast(counts[r], ti.i32)
            total = length[r]
            if ti.static(mode == _STRATIFIED):
                _stratified_positions(u, r, total, off, cnt, perturb, s)
            for i in range(cnt):
                dt = total - s[off + i]  # the last sample: to the end of the occupied length ...
                if i + 1 < cnt:
                    dt = s[off + i + 1] - s[off + i]
                elif last_delta >= 0.0:  # ... or a fixed last step, as padded compositing's last_delta
                    dt = last_delta
                dt_out[off + i] = dt
                ray_out[off + i] = r
        k = 0  # cells listed
        c = 0.0  # occupied length before the open run
        a, b = 0.0, 0.0  # the open (or last) run [a, b]
        run_open = 0
        nxt = 0  # next sample to place
        walk = t_lo < t_hi
        if ti.static(mode in (_PLACE, _STRATIFIED)):
            walk = walk and cnt > 0  # a ray without samples has nothing to place
            if ti.static(with_runs):
                n_runs = ti.cast(run_count[r], ti.i32)
                if walk and n_runs <= RUNS_KEPT:  # every run recorded: place along them, no walk
                    for i in range(n_runs):
                        a, b = runs[r, i, 0], runs[r, i, 1]
                        nxt = _place_run(a, b, c, s, off, cnt, nxt, t_out)
                        c += b - a
                    walk = False
        n_kept = 0  # runs recorded (_LENGTH with_runs)
        if walk:
            cell, step, side = _first_cell(o_r, d_r, t_lo, lo, size, res)
            t = t_lo
            guard, inside = 0, 1
            while inside and t < t_hi and guard <= 3 * res:
                t_exit, axis = _cell_exit(o_r, d_r, cell, step, side, lo, size)
                t1 = ti.min(t_exit, t_hi)
                if t1 > t:  # a face crossed within rounding of the previous one gives no segment
                    if ti.static(mode in (_CELLS_COUNT, _CELLS_EMIT)):
                        if ti.static(mode == _CELLS_EMIT):
                            cells[off + k] = _flat(cell, res)
                            s[off + k] = t
                            t_out[off + k] = t1
                        k += 1
                    elif _is_occupied(bits, _flat(cell, res)):
                        if run_open == 0:
                            a = t
                            run_open = 1
                        b = t1
                    elif run_open == 1:
                        if ti.static(mode != _LENGTH):
                            nxt = _place_run(a, b, c, s, off, cnt, nxt, t_out)
                        if ti.static(mode == _LENGTH and with_runs):
                            n_kept = _record_run(runs, r, n_kept, a, b)
                        c += b - a
                        run_open = 0
                    t = t1
                inside = _next_cell(cell, step, axis, res)
                guard += 1
            if run_open == 1:
                if ti.static(mode in (_PLACE, _STRATIFIED)):
                    nxt = _place_run(a, b, c, s, off, cnt, nxt, t_out)
                if ti.static(mode == _LENGTH and with_runs):
                    n_kept = _record_run(runs, r, n_kept, a, b)
                c += b - a
        if ti.static(mode == _CELLS_COUNT):
            counts[r] = k
        if ti.static(mode == _LENGTH):
            length[r] = c
            if ti.static(with_runs):
                run_count[r] = n_kept
        if ti.static(mode in (_PLACE, _STRATIFIED)):
            while nxt < cnt:  # only reachable through rounding: such samples sit at the end of the last run
                t_out[off + nxt] = b
                nxt += 1


# ------------------------------------------------------------------------ Python API


def _check_grid(grid: GridView, caller: str) -> None:
    res = int(grid.resolution)
    if res < 1:
        raise ValueError(f"{caller}: grid resolution must be >= 1, got {res}")
    if grid.bits.dtype != torch.uint8 or grid.bits.dim() != 1 or grid.bits.numel() != (res**3 + 7) // 8:
        raise ValueError(
            f"{caller}: grid.bits must be a flat uint8 tensor of ceil({res}^3 / 8) = {(res**3 + 7) // 8} bytes, "
            f"got {grid.bits.dtype} {list(grid.bits.shape)}"
        )
    if not all(hi > lo for lo, hi in zip(grid.aabb_min, grid.aabb_max)):
        raise ValueError(f"{caller}: grid box needs aabb_min < aabb_max on every axis, got {grid.aabb_min}, {grid.aabb_max}")


def _box(grid: GridView, device) -> torch.Tensor:
    """[3, 3] float32: aabb_min, cell size, aabb_max (what the kernels read)."""
    lo = torch.tensor(grid.aabb_min, dtype=torch.float64)
    hi = torch.tensor(grid.aabb_max, dtype=torch.float64)
    return torch.stack([lo, (hi - lo) / int(grid.resolution), hi]).to(torch.float32).to(device).contiguous()


def _rays(origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float, caller: str):
    if origins.dim() != 2 or origins.shape[-1] != 3 or dirs.shape != origins.shape:
        raise ValueError(f"{caller}: origins and dirs must both be [B, 3], got {list(origins.shape)} and {list(dirs.shape)}")
    if not (0.0 <= near < far):
        raise ValueError(f"{caller}: need 0 <= near < far, got near={near}, far={far}")
    return (origins.detach().to(torch.float32).contiguous(), dirs.detach().to(torch.float32).contiguous())


def _exclusive_offsets(counts: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(counts, 0) - counts


def _walk(grid, o, d, near, far, mode, perturb=False, u=None, offsets=None, counts=None, last_delta=None,
          length=None, s=None, t_out=None, dt_out=None, cells=None, runs: OccupiedRuns | None = None,
          ray_out=None) -> None:
    """Launch `_walk_kernel` in `mode`; the arrays a mode does not use are passed empty."""
    dev = o.device
    f1, i1 = torch.empty(0, device=dev), torch.empty(0, dtype=torch.int64, device=dev)
    pick = lambda x, empty: empty if x is None else x.contiguous()  # noqa: E731
    work = o.shape[0] * int(grid.resolution) + (0 if s is None else s.shape[0])
    bounds = torch.empty((0, 0, 0), device=dev) if runs is None else runs.bounds
    count = torch.empty(0, dtype=torch.int32, device=dev) if runs is None else runs.count
    launch(_walk_kernel, o, d, float(near), float(far), _box(grid, dev), int(grid.resolution), grid.bits.contiguous(),
           mode, bool(perturb), pick(u, torch.empty((0, 0), device=dev)), pick(offsets, i1), pick(counts, i1),
           -1.0 if last_delta is None else float(last_delta), pick(length, f1), pick(s, f1), pick(t_out, f1),
           pick(dt_out, f1), pick(cells, i1), bounds, count, runs is not None, pick(ray_out, i1), serial_launch(work))


def _placed(grid, o, d, near, far, mode, perturb, u, offsets, counts, length, s, last_delta, runs=None):
    """`_walk` in a placing mode -> t [M], dt [M], ray_index [M] int64 (M-sized outputs are not pooled: M varies
    per call)."""
    t = torch.empty(s.shape[0], device=o.device)
    dt = torch.empty(s.shape[0], device=o.device)
    ray_index = torch.empty(s.shape[0], dtype=torch.int64, device=o.device)
    if s.shape[0] > 0:
        _walk(grid, o, d, near, far, mode, perturb, u, offsets, counts, last_delta, length, s, t, dt, runs=runs,
              ray_out=ray_index)
    return t, dt, ray_index


def occupied_length(grid: GridView, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Occupied z-depth length L [B] of each ray (origins, dirs [B, 3]) inside [near, far]."""
    return occupied_runs(grid, origins, dirs, near, far, record=False)[0]


def occupied_runs(grid: GridView, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
                  record: bool = True) -> tuple[torch.Tensor, OccupiedRuns | None]:
    """`occupied_length`, and (`record`) the rays' occupied runs for placing samples without another walk."""
    ensure_initialized()
    _check_grid(grid, "occupied_length")
    o, d = _rays(origins, dirs, near, far, "occupied_length")
    n = o.shape[0]
    length = _buffers.empty("occupancy.length", (n,), torch.float32, o.device)
    runs = None
    if record:  # pooled: a buffer still held (by the coarse samples, until the fine pass) is not handed out again
        runs = OccupiedRuns(_buffers.empty("occupancy.runs", (n, RUNS_KEPT, 2), torch.float32, o.device),
                            _buffers.empty("occupancy.run_count", (n,), torch.int32, o.device))  # both written for every ray
    if n > 0:
        _walk(grid, o, d, near, far, _LENGTH, length=length, runs=runs)
    return length, runs


def traverse_cells(
    grid: GridView, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every cell each ray crosses inside [near, far], in order (occupied or not), packed.

    Returns cells [K] int64 (flat index), t0 [K], t1 [K] (the z-depths where the ray enters and
    leaves the cell: t1 > t0, and t0 of one cell is t1 of the one before), offsets [B], counts [B].
    The bits are not read: this is the traversal itself, for tests and debugging.
    """
    ensure_initialized()
    _check_grid(grid, "traverse_cells")
    o, d = _rays(origins, dirs, near, far, "traverse_cells")
    n, dev = o.shape[0], o.device
    counts = torch.zeros(n, dtype=torch.int64, device=dev)
    if n > 0:
        _walk(grid, o, d, near, far, _CELLS_COUNT, counts=counts)
    offsets = _exclusive_offsets(counts)
    k = int(counts.sum())
    cells = torch.empty(k, dtype=torch.int64, device=dev)
    t0, t1 = torch.empty(k, device=dev), torch.empty(k, device=dev)
    if k > 0:
        _walk(grid, o, d, near, far, _CELLS_EMIT, offsets=offsets, s=t0, t_out=t1, cells=cells)
    return cells, t0, t1, offsets, counts


def sample_stratified(
    grid: GridView,
    origins: torch.Tensor,  # [B, 3]
    dirs: torch.Tensor,  # [B, 3] unnormalised, camera z = -1 (t is z-depth)
    near: float,
    far: float,
    n_samples: int,
    perturb: bool,
    generator: torch.Generator | None = None,
    last_delta: float | None = None,
    min_samples: int | None = None,
) -> PackedSamples:
    """n_samples stratified samples per ray over its occupied length, packed (see the module docstring).

    With `min_samples`, a ray gets ceil(n_samples L / (far - near)) samples instead, clamped to
    [min_samples, n_samples]: the dense sampler's spacing kept inside occupied space, so a ray that
    crosses little occupied space costs little (an all-occupied grid still gives n_samples).

    A ray with occupied length L > 0 gets exactly n_samples samples: s_i = L i / (S - 1) (S = 1:
    s = 0), jittered when `perturb` inside the bins bounded by the midpoints to the neighbouring
    points, exactly as `sampling.stratified` does on [near, far]; the uniforms are one
    `torch.rand([B, S], generator)` draw (rays without samples consume theirs too), so with an
    all-occupied grid the samples equal `sampling.stratified`'s. Rays with L = 0 get none.
    dt_i = s_{i+1} - s_i; the last dt is L - s_last, or `last_delta` (z-depth units) when given.
    """
    ensure_initialized()
    _check_grid(grid, "sample_stratified")
    if n_samples < 1:
        raise ValueError(f"sample_stratified: n_samples must be >= 1, got {n_samples}")
    o, d = _rays(origins, dirs, near, far, "sample_stratified")
    n, dev = o.shape[0], o.device
    length, runs = occupied_runs(grid, o, d, near, far)
    if min_samples is None:
        counts = torch.where(length > 0, n_samples, 0).to(torch.int64)
    else:
        if not 1 <= min_samples <= n_samples:
            raise ValueError(f"sample_stratified: need 1 <= min_samples <= n_samples, got {min_samples}, {n_samples}")
        wanted = torch.ceil(length.double() * (n_samples / (far - near)) - 1e-6).clamp(min_samples, n_samples)
        counts = torch.where(length > 0, wanted, 0).to(torch.int64)
    offsets = _exclusive_offsets(counts)
    m = int(counts.sum())
    if perturb:
        u = _buffers.uniforms("occupancy.u", (n, n_samples), generator, dev)
    else:
        u = torch.empty((0, 0), device=dev)
    s = torch.empty(m, device=dev)
    t, dt, ray_index = _placed(grid, o, d, near, far, _STRATIFIED, perturb, u, offsets, counts, length, s, last_delta,
                               runs)
    return PackedSamples(t=t, s=s, dt=dt, ray_index=ray_index, offsets=offsets, counts=counts, length=length, runs=runs)


def place(
    grid: GridView,
    origins: torch.Tensor,  # [B, 3]
    dirs: torch.Tensor,  # [B, 3]
    near: float,
    far: float,
    s: torch.Tensor,  # [M] occupied-length positions, sorted within each ray, in [0, length[ray]]
    offsets: torch.Tensor,  # [B] int64
    counts: torch.Tensor,  # [B] int64
    length: torch.Tensor,  # [B] occupied length of each ray (from `occupied_length`)
    last_delta: float | None = None,
    runs: OccupiedRuns | None = None,  # the rays' occupied runs (`occupied_runs`), to place without walking
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map packed occupied-length positions s to z-depths: t [M], and dt [M] as `sample_stratified`.

    Used for the fine samples, which importance sampling draws in s (see `sample_importance`). With `runs` (of
    these rays in this grid) the rays whose runs were all recorded are placed along them, bit for bit as by walking.
    """
    return _place(grid, origins, dirs, near, far, s, offsets, counts, length, last_delta, runs)[:2]


def _place(grid, origins, dirs, near, far, s, offsets, counts, length, last_delta, runs):
    """`place`, also returning each sample's ray [M] int64 (the kernel writes it)."""
    ensure_initialized()
    _check_grid(grid, "place")
    o, d = _rays(origins, dirs, near, far, "place")
    n = o.shape[0]
    if s.dim() != 1 or counts.shape != (n,) or length.shape != (n,):
        raise ValueError(f"place: need s [M] and counts, length [{n}], got {list(s.shape)}, {list(counts.shape)}, "
                         f"{list(length.shape)}")
    offsets, counts = packed.check_packing(offsets, counts, s.shape[0], "place")
    if runs is not None and (runs.bounds.shape != (n, RUNS_KEPT, 2) or runs.count.shape != (n,)):
        raise ValueError(f"place: runs must be [{n}, {RUNS_KEPT}, 2] and [{n}], got {list(runs.bounds.shape)} and "
                         f"{list(runs.count.shape)}")
    s = s.detach().to(torch.float32).contiguous()
    return _placed(grid, o, d, near, far, _PLACE, False, torch.empty((0, 0), device=o.device), offsets, counts,
                   length.detach().to(torch.float32), s, last_delta, runs)


def sample_importance(
    grid: GridView,
    origins: torch.Tensor,  # [B, 3]
    dirs: torch.Tensor,  # [B, 3]
    near: float,
    far: float,
    coarse: PackedSamples,
    weights: torch.Tensor,  # [M] coarse compositing weights (treated as constants)
    n_fine: int,
    perturb: bool,
    generator: torch.Generator | None = None,
    last_delta: float | None = None,
) -> PackedSamples:
    """The fine pass: coarse samples plus n_fine importance samples per ray, merged and sorted, packed.

    The pdf is `taichi_kernels.packed.importance`'s (original NeRF's sample_pdf per ray) over the
    coarse positions in s, so the new samples fall in occupied space only; they are then mapped to
    t. Rays without coarse samples get none; rays with samples need at least 3.
    """
    s_all, offsets, counts = packed.importance(coarse.s, weights, coarse.offsets, coarse.counts, n_fine, perturb,
                                               generator)
    t, dt, ray_index = _place(grid, origins, dirs, near, far, s_all, offsets, counts, coarse.length, last_delta,
                              coarse.runs)
    return PackedSamples(t=t, s=s_all, dt=dt, ray_index=ray_index, offsets=offsets, counts=counts, length=coarse.length)
