"""Slow, obviously-correct torch twins of `taichi_kernels.occupancy` and `taichi_kernels.packed`.

Nothing here walks a grid: the traversal twin intersects the ray with *every* cell box exactly
(slab method, [B, R^3] at once), keeps the occupied pieces, sorts and merges them per ray with a
Python loop. Compositing pads the packed samples to [B, max count] and composites with cumprod;
importance sampling runs `taichi_kernels.reference.sample_pdf` ray by ray. Tests run these in
float64 and compare the kernels against them.

The occupancy is given as a bool grid [R, R, R] indexed (x, y, z) here, not as bits, so the
kernels' bit reading is tested too.
"""

from __future__ import annotations

import torch

from taichi_kernels import reference as ref


def ray_box(o: torch.Tensor, d: torch.Tensor, lo, hi, near: float, far: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[t_lo, t_hi] per ray: [near, far] clipped to the box (empty when t_lo >= t_hi). o, d: [B, 3]."""
    lo = torch.as_tensor(lo, dtype=o.dtype)
    hi = torch.as_tensor(hi, dtype=o.dtype)
    t_a, t_b = _slabs(o[:, None, :], d[:, None, :], lo[None, None], hi[None, None])  # [B, 1, 3] each
    t_lo = torch.maximum(t_a.amax(-1)[:, 0], torch.full_like(o[:, 0], near))
    t_hi = torch.minimum(t_b.amin(-1)[:, 0], torch.full_like(o[:, 0], far))
    return t_lo, t_hi


def _slabs(o, d, lo, hi):
    """Per-axis entry/exit t of the slabs lo <= x <= hi (broadcast); a ray parallel to a slab is inside
    it for every t when lo <= o <= hi, else for none."""
    inside = (o >= lo) & (o <= hi)
    zero = d == 0
    safe = torch.where(zero, torch.ones_like(d), d)
    t0, t1 = (lo - o) / safe, (hi - o) / safe
    inf = torch.full_like(t0, float("inf"))
    t_in = torch.where(zero, torch.where(inside, -inf, inf), torch.minimum(t0, t1))
    t_out = torch.where(zero, torch.where(inside, inf, -inf), torch.maximum(t0, t1))
    return t_in, t_out


def cell_boxes(aabb_min, aabb_max, res: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper corners [R^3, 3] of every cell, in flat order (i R + j) R + k."""
    lo = torch.as_tensor(aabb_min, dtype=dtype)
    size = (torch.as_tensor(aabb_max, dtype=dtype) - lo) / res
    ijk = torch.stack(torch.meshgrid(*(torch.arange(res),) * 3, indexing="ij"), dim=-1).reshape(-1, 3).to(dtype)
    return lo + ijk * size, lo + (ijk + 1) * size


def cell_segments(o, d, near, far, aabb_min, aabb_max, res):
    """Exact intersection of each ray with each cell inside [near, far]: t_in, t_out [B, R^3].

    A cell is crossed with a positive length where t_out > t_in.
    """
    c_lo, c_hi = cell_boxes(aabb_min, aabb_max, res, o.dtype)
    t_a, t_b = _slabs(o[:, None, :], d[:, None, :], c_lo[None], c_hi[None])  # [B, R^3, 3]
    t_in = torch.clamp(t_a.amax(-1), min=near)
    t_out = torch.clamp(t_b.amin(-1), max=far)
    return t_in, t_out


def occupied_intervals(occupancy, o, d, near, far, aabb_min, aabb_max) -> list[torch.Tensor]:
    """Per ray, the occupied t-intervals [n_r, 2], sorted, adjacent ones merged (touching ends)."""
    res = occupancy.shape[0]
    t_in, t_out = cell_segments(o, d, near, far, aabb_min, aabb_max, res)
    occ = occupancy.reshape(-1).to(torch.bool)
    out = []
    for r in range(o.shape[0]):
        keep = occ & (t_out[r] > t_in[r])
        pieces = sorted(zip(t_in[r][keep].tolist(), t_out[r][keep].tolist()))
        merged: list[list[float]] = []
        for a, b in pieces:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out.append(torch.tensor(merged, dtype=o.dtype).reshape(-1, 2))
    return out


def t_of_s(intervals: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Map occupied-length positions s [n] of one ray to t, given its intervals [k, 2] (k >= 1)."""
    lengths = intervals[:, 1] - intervals[:, 0]
    end = torch.cumsum(lengths, 0)  # occupied length at the end of each interval
    k = torch.searchsorted(end, s).clamp(max=intervals.shape[0] - 1)  # first interval ending at or after s
    start = end[k] - lengths[k]
    return (intervals[k, 0] + (s - start)).clamp(intervals[k, 0], intervals[k, 1])


def s_of_t(intervals: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Occupied length before each t [n] of one ray (continuous, unlike t_of_s's inverse)."""
    a, b = intervals[:, 0], intervals[:, 1]
    return (t[:, None] - a[None]).clamp(min=0).minimum((b - a)[None]).sum(-1)


def stratified_positions(length: torch.Tensor, n_samples: int, u: torch.Tensor | None) -> torch.Tensor:
    """`taichi_kernels.reference.stratified` on [0, L] per ray: s [B, S] (u [B, S] uniforms, or None)."""
    frac = torch.linspace(0.0, 1.0, n_samples, dtype=length.dtype)
    s = length[:, None] * frac[None]
    if u is not None:
        mids = 0.5 * (s[:, 1:] + s[:, :-1])
        upper = torch.cat([mids, s[:, -1:]], dim=-1)
        lower = torch.cat([s[:, :1], mids], dim=-1)
        s = lower + (upper - lower) * u.to(length.dtype)
    return torch.minimum(s.clamp(min=0), length[:, None])


def steps(s: torch.Tensor, length: torch.Tensor, last_delta: float | None) -> torch.Tensor:
    """dt [B, S] from positions s [B, S]: the gap to the next sample; the last: L - s or last_delta."""
    last = length[:, None] - s[:, -1:] if last_delta is None else torch.full_like(s[:, -1:], last_delta)
    return torch.cat([s[:, 1:] - s[:, :-1], last], dim=-1)


def sample_stratified(occupancy, o, d, near, far, aabb_min, aabb_max, n_samples, perturb, generator=None,
                      last_delta=None):
    """Twin of `occupancy.sample_stratified`: returns (t, s, dt, offsets, counts, length), packed."""
    intervals = occupied_intervals(occupancy, o, d, near, far, aabb_min, aabb_max)
    length = torch.stack([(iv[:, 1] - iv[:, 0]).sum() for iv in intervals]) if intervals else o.new_zeros(0)
    u = torch.rand((o.shape[0], n_samples), generator=generator) if perturb else None
    s = stratified_positions(length, n_samples, u)  # [B, S]
    dt = steps(s, length, last_delta)
    counts = torch.where(length > 0, n_samples, 0)
    t = [t_of_s(iv, s[r]) for r, iv in enumerate(intervals) if counts[r] > 0]
    keep = counts > 0
    cat = (lambda xs: torch.cat(xs) if xs else o.new_zeros(0))  # noqa: E731
    return cat(t), s[keep].reshape(-1), dt[keep].reshape(-1), torch.cumsum(counts, 0) - counts, counts, length


# ------------------------------------------------------------------- packed compositing


def _padded_index(offsets: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index [B, Smax] of each ray's samples in the packed list, and the mask of real ones."""
    width = int(counts.max()) if counts.numel() else 0
    col = torch.arange(width)[None]
    valid = col < counts[:, None]
    return torch.where(valid, offsets[:, None] + col, 0), valid


def composite_packed(sigma, rgb, t, dt, offsets, counts, ray_norm, background, early_stop_eps=0.0):
    """Twin of `packed.composite`: colour [B, 3], depth [B], opacity [B], weights [M].

    Pads to [B, Smax] (padding has alpha 0), then the textbook formulas:
    alpha = 1 - exp(-sigma dt |d|), T = cumprod(1 - alpha) shifted, w = T alpha.
    """
    n_rays = counts.shape[0]
    idx, valid = _padded_index(offsets, counts)

    def pad(x):
        return torch.where(valid if x.dim() == 1 else valid[..., None], x[idx] if x.numel() else
                           torch.zeros(idx.shape + x.shape[1:], dtype=x.dtype), 0.0)

    delta = pad(dt) * ray_norm[:, None]
    alpha = 1.0 - torch.exp(-pad(sigma) * delta)  # [B, Smax]; 0 on padding
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha], dim=-1), dim=-1)[:, :-1]
    if early_stop_eps > 0:
        trans = torch.where(trans < early_stop_eps, torch.zeros_like(trans), trans)
    w = trans * alpha
    opacity = w.sum(-1)
    depth = (w * pad(t)).sum(-1)
    colour = (w[..., None] * pad(rgb)).sum(-2) + (1.0 - opacity)[:, None] * background.expand(n_rays, 3)
    weights = torch.zeros(sigma.shape[0], dtype=w.dtype).index_put((idx[valid],), w[valid])
    return colour, depth, opacity, weights


def importance_packed(s, weights, offsets, counts, n_fine, perturb, generator=None):
    """Twin of `packed.importance`: (s_all [M'], offsets' [B], counts' [B]), ray by ray.

    The uniforms are one `pdf_uniforms(B, n_fine)` draw, as the padded sampler's.
    """
    n_rays = counts.shape[0]
    u = ref.pdf_uniforms(n_rays, n_fine, perturb, generator).to(s.dtype)
    out, new_counts = [], []
    for r in range(n_rays):
        o, c = int(offsets[r]), int(counts[r])
        if c == 0 or n_fine == 0:
            out.append(s[o:o + c])
            new_counts.append(c)
            continue
        fine = ref.sample_pdf(s[None, o:o + c], weights[None, o:o + c], u[r:r + 1])[0]
        out.append(torch.sort(torch.cat([s[o:o + c], fine])).values)
        new_counts.append(c + n_fine)
    counts_all = torch.tensor(new_counts, dtype=torch.int64)
    s_all = torch.cat(out) if out else s.new_zeros(0)
    return s_all, torch.cumsum(counts_all, 0) - counts_all, counts_all


def ray_cdf(s: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """CDF (float64) at x [n] of one ray's importance pdf: bins between midpoints of its sorted
    positions s [S], bin k weighted w[k + 1] + PDF_EPS (as `sample_pdf`), linear inside a bin.

    Tests compare importance samples here: a float32 rounding of the CDF moves a sample that
    lands in a near-empty bin (probability ~1e-5) by much of the bin; its CDF value barely moves.
    """
    edges = 0.5 * (s[1:] + s[:-1]).double()
    p = w[1:-1].double() + ref.PDF_EPS
    inside = (x.double()[:, None] - edges[None, :-1]) / (edges[None, 1:] - edges[None, :-1])
    return (inside.clamp(0, 1) * (p / p.sum())[None]).sum(dim=-1)
