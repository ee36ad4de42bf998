"""Slow, obviously-correct torch versions of every Taichi kernel (tests compare against them).

Each function has the same signature and conventions as its twin in `taichi_kernels/`
(see `docs/kernels.md`; `taichi_kernels.backend` puts both sets behind one `RenderMath` interface); the Taichi version must give the same numbers. Nothing here is
tuned: it is written to be read next to the formulas, one step per line, with plain
torch autograd providing the gradients the hand-written Taichi backward is checked against.

Conventions shared with the kernels:
- cameras: 3x4 camera-to-world `c2w`, OpenGL camera (x right, y up, looks down -z);
- pixel (row, col) is sampled at (col + pixel_offset, row + pixel_offset); 0.5 is the
  pixel centre, 0.0 reproduces the original NeRF code (rays through pixel corners);
- ray directions are not normalised: camera-space z = -1, so the ray parameter t is z-depth;
- distortion: OpenCV radial-tangential with k1..k4 (radial up to r^8) and p1, p2.
"""

from __future__ import annotations

import torch

from taichi_kernels.constants import PDF_EPS, UNDISTORT_ITERATIONS

__all__ = [
    "PDF_EPS", "UNDISTORT_ITERATIONS", "composite", "distort", "generate_rays", "importance",
    "pdf_uniforms", "positional_encoding", "sample_pdf", "stratified", "undistort", "uniforms", "view_rays",
]


# ------------------------------------------------------------------ encoding


def positional_encoding(x: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """Positional encoding of the original NeRF (Mildenhall et al. 2020, eq. 4): x [N, D] -> [N, D (1 + 2L)].

    gamma(p) = (p, sin(2^0 p), cos(2^0 p), ..., sin(2^(L-1) p), cos(2^(L-1) p)), the input
    included first. Like the original code, frequencies are 2^k without the factor pi
    (`torch.sin(2**k * x)`), which works for scenes scaled to a few units. Feature order:
    [x, y, z, sin(f0 x), sin(f0 y), sin(f0 z), cos(f0 x), ...].
    `columns` [F'] int64 keeps those features only, in that order ([N, F']); `out` ([N, >= F']) receives them
    in its first columns (as the Taichi kernel, `taichi_kernels.encoding`).
    """
    if n_frequencies == 0:
        enc = x
    else:
        freqs = 2.0 ** torch.arange(n_frequencies, dtype=x.dtype, device=x.device)  # [L]
        scaled = x[:, None, :] * freqs[None, :, None]  # [N, L, D]
        parts = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=2)  # [N, L, 2, D]
        enc = torch.cat([x, parts.reshape(x.shape[0], 2 * n_frequencies * x.shape[1])], dim=-1)
    if columns is not None:
        enc = enc.index_select(1, columns.to(device=x.device, dtype=torch.int64))
    return enc if out is None else out[:, :enc.shape[1]].copy_(enc)


def positional_encoding_at(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
                           n_frequencies: int, *, columns: torch.Tensor | None = None,
                           out: torch.Tensor | None = None) -> torch.Tensor:
    """`positional_encoding` of the sample points origins[r] + t dirs[r] (rays [B, D], t [N], ray index r [N])."""
    points = origins[ray_index] + t[:, None] * dirs[ray_index]  # [N, D]
    return positional_encoding(points, n_frequencies, columns=columns, out=out)


# --------------------------------------------------------------------------- rays


def distort(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV radial-tangential distortion of normalised image coordinates (y pointing down).

    x, y: [...] undistorted coordinates; k: [..., 6] = (k1, k2, k3, k4, p1, p2).
    Returns the distorted coordinates (x_d, y_d).
    """
    k1, k2, k3, k4, p1, p2 = k.unbind(-1)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    x_d = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    y_d = y * radial + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y)
    return x_d, y_d


def undistort(x_d: torch.Tensor, y_d: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert `distort` by Newton's method (fixed iteration count), starting from (x_d, y_d)."""
    x, y = x_d.clone(), y_d.clone()
    for _ in range(UNDISTORT_ITERATIONS):
        xr = x.detach().requires_grad_(True)
        yr = y.detach().requires_grad_(True)
        with torch.enable_grad():
            fx, fy = distort(xr, yr, k)
            fx_x, fx_y = torch.autograd.grad(fx.sum(), (xr, yr), retain_graph=True)
            fy_x, fy_y = torch.autograd.grad(fy.sum(), (xr, yr))
        rx, ry = fx.detach() - x_d, fy.detach() - y_d
        det = fx_x * fy_y - fx_y * fy_x
        ok = det.abs() > 1e-12
        det = torch.where(ok, det, torch.ones_like(det))
        step_x = torch.where(ok, (rx * fy_y - ry * fx_y) / det, torch.zeros_like(det))
        step_y = torch.where(ok, (ry * fx_x - rx * fy_x) / det, torch.zeros_like(det))
        x, y = x - step_x, y - step_y
    return x, y


def generate_rays(
    c2w: torch.Tensor,  # [N, 3, 4]
    intrinsics: torch.Tensor,  # [N, 4] fx, fy, cx, cy in pixels
    view: torch.Tensor,  # [B] int64 camera index
    row: torch.Tensor,  # [B] int64 pixel row (0 = top)
    col: torch.Tensor,  # [B] int64 pixel column (0 = left)
    distortion: torch.Tensor | None = None,  # [N, 6] k1 k2 k3 k4 p1 p2, or None
    pixel_offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space origins [B, 3] and unnormalised directions [B, 3] (camera z = -1)."""
    fx, fy, cx, cy = intrinsics[view].unbind(-1)  # [B] each
    u = col.to(c2w.dtype) + pixel_offset
    v = row.to(c2w.dtype) + pixel_offset
    x = (u - cx) / fx  # right
    y = (v - cy) / fy  # down (image convention)
    if distortion is not None:
        x, y = undistort(x, y, distortion[view])
    d_cam = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)  # [B, 3] OpenGL camera
    rot = c2w[view, :, :3]  # [B, 3, 3]
    directions = (rot @ d_cam.unsqueeze(-1)).squeeze(-1)
    origins = c2w[view, :, 3].clone()
    return origins, directions


def view_rays(
    c2w: torch.Tensor,  # [3, 4]
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    distortion: torch.Tensor | None = None,  # [6] or None
    pixel_offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All rays of one view, row-major: origins [H*W, 3], directions [H*W, 3] (on c2w's device)."""
    dev = c2w.device
    rows, cols = torch.meshgrid(torch.arange(height, device=dev), torch.arange(width, device=dev), indexing="ij")
    intr = torch.tensor([[fx, fy, cx, cy]], dtype=c2w.dtype, device=dev)
    dist = None if distortion is None else distortion.reshape(1, 6).to(c2w.dtype)
    view = torch.zeros(height * width, dtype=torch.int64, device=dev)
    return generate_rays(c2w.reshape(1, 3, 4), intr, view, rows.reshape(-1), cols.reshape(-1), dist, pixel_offset)


# ----------------------------------------------------------------------- sampling


def uniforms(shape: tuple[int, int], generator: torch.Generator | None, device: torch.device | str = "cpu") -> torch.Tensor:
    """`torch.rand(shape, generator=generator)` drawn on the generator's device (the CPU for None), moved to `device`.

    Why: the trainer's generators live on the CPU, so a run draws the same jitter whether its
    tensors are on the CPU or on CUDA (one small host-to-device copy per draw on a GPU).
    """
    draw_on = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=draw_on).to(device)


def stratified(
    n_rays: int,
    n_samples: int,
    near: float,
    far: float,
    perturb: bool,
    lindisp: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Original NeRF's stratified samples t [B, S] (z-depth), sorted, inside [near, far], on `device`.

    Deterministic: S points evenly spaced from near to far inclusive (in depth, or in
    disparity 1/t when `lindisp`). Perturbed: each sample uniform in its bin, whose edges
    are the midpoints between neighbouring deterministic points (and near, far at the ends).
    The uniforms are one `uniforms([B, S], generator, device)` draw.
    """
    s = torch.linspace(0.0, 1.0, n_samples, device=device)  # [S]
    if lindisp:
        t = 1.0 / (1.0 / near * (1.0 - s) + 1.0 / far * s)
    else:
        t = near * (1.0 - s) + far * s
    t = t.expand(n_rays, n_samples)
    if perturb:
        u = uniforms((n_rays, n_samples), generator, device)
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        upper = torch.cat([mids, t[:, -1:]], dim=-1)
        lower = torch.cat([t[:, :1], mids], dim=-1)
        t = lower + (upper - lower) * u
    return t.contiguous().clamp(near, far)


def pdf_uniforms(
    n_rays: int, n_fine: int, perturb: bool, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The sorted CDF levels u [B, n_fine] in [0, 1] the importance sampler inverts, on `device`.

    Deterministic: linspace(0, 1, n_fine) (original NeRF). Random: one uniform per
    stratum, u_j = (j + xi_j) / n_fine (as mip-NeRF), which keeps u sorted; the xi are one
    `uniforms([B, n_fine], generator, device)` draw.
    """
    if perturb:
        xi = uniforms((n_rays, n_fine), generator, device)
        return (torch.arange(n_fine, dtype=torch.float32, device=device) + xi) / n_fine
    return torch.linspace(0.0, 1.0, n_fine, device=device).expand(n_rays, n_fine)


def sample_pdf(t: torch.Tensor, weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Invert the piecewise-constant pdf of each ray at the levels u [B, M] -> [B, M].

    Bins run between midpoints of consecutive coarse samples t [B, S] (S - 1 edges,
    S - 2 bins); bin k has weight weights[:, k + 1] + PDF_EPS (the end weights are
    dropped, as in original NeRF's sample_pdf). Within a bin the CDF is linear.
    """
    edges = 0.5 * (t[:, 1:] + t[:, :-1])  # [B, S-1]
    w = weights[:, 1:-1].detach() + PDF_EPS  # [B, S-2]
    cdf = torch.cumsum(w, dim=-1) / w.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1)  # [B, S-1], cdf[:, 0] = 0
    n_bins = w.shape[-1]
    k = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True) - 1
    k = k.clamp(0, n_bins - 1)  # bin index with cdf[k] <= u < cdf[k+1]
    c_lo, c_hi = cdf.gather(1, k), cdf.gather(1, k + 1)
    e_lo, e_hi = edges.gather(1, k), edges.gather(1, k + 1)
    denom = c_hi - c_lo
    frac = torch.where(denom > 0, (u - c_lo) / torch.where(denom > 0, denom, 1.0), 0.0).clamp(0.0, 1.0)
    return e_lo + frac * (e_hi - e_lo)


def importance(
    t: torch.Tensor,  # [B, S] sorted coarse samples
    weights: torch.Tensor,  # [B, S] coarse compositing weights (no gradient)
    n_fine: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hierarchical sampling: coarse and n_fine new samples, merged and sorted [B, S + n_fine]."""
    if n_fine == 0:
        return t.detach().clone()
    u = pdf_uniforms(t.shape[0], n_fine, perturb, generator, t.device).to(t.dtype)
    fine = sample_pdf(t.detach(), weights, u)
    return torch.sort(torch.cat([t.detach(), fine], dim=-1), dim=-1).values


# --------------------------------------------------------------------- compositing


def composite(
    sigma: torch.Tensor,  # [B, S] densities >= 0
    rgb: torch.Tensor,  # [B, S, 3] colours
    t: torch.Tensor,  # [B, S] sample depths (sorted)
    ray_norm: torch.Tensor,  # [B] |direction|, turns z-depth steps into distances
    background: torch.Tensor,  # [B, 3] or [3]
    last_delta: float = 1e10,
    early_stop_eps: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Volume rendering: colour [B, 3], depth [B], opacity [B], weights [B, S].

    alpha_i = 1 - exp(-sigma_i delta_i), T_i = prod_{j<i} (1 - alpha_j), w_i = T_i alpha_i,
    delta_i = (t_{i+1} - t_i) |d| and the last delta = last_delta |d|;
    colour = sum w_i c_i + (1 - opacity) background, depth = sum w_i t_i, opacity = sum w_i.
    With early_stop_eps > 0, samples whose incoming T is below it get weight 0.
    """
    n_rays, n_samples = sigma.shape
    dt = torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], last_delta)], dim=-1)[:, :n_samples]
    delta = dt * ray_norm[:, None]  # [B, S]
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha], dim=-1), dim=-1)[:, :-1]
    if early_stop_eps > 0:
        trans = torch.where(trans < early_stop_eps, torch.zeros_like(trans), trans)
    weights = trans * alpha  # [B, S]
    opacity = weights.sum(dim=-1)
    depth = (weights * t).sum(dim=-1)
    colour = (weights[..., None] * rgb).sum(dim=-2) + (1.0 - opacity)[:, None] * background.expand(n_rays, 3)
    return colour, depth, opacity, weights
