"""Packed volume compositing and packed importance sampling: rays with different sample counts.

Packed layout (as `taichi_kernels.occupancy.PackedSamples`, nerfacc's `packed_info`): the M samples
of B rays lie in one list; ray r owns [offsets[r], offsets[r] + counts[r]); a ray may have none.

Compositing is `taichi_kernels.compositing.composite` with the step given per sample instead of
taken from the next sample's depth (empty-space skipping leaves gaps between samples that must not
be integrated over):
    delta_i = dt_i |d|,  alpha_i = 1 - exp(-sigma_i delta_i),  T_i = prod_{j<i} (1 - alpha_j),
    w_i = T_i alpha_i,  colour = sum w_i c_i + (1 - opacity) background,
    depth = sum w_i t_i,  opacity = sum w_i.
A ray with no samples shows the background with opacity 0 and depth 0. The backward is the padded
one (derivation in docs/kernels.md): one ray per thread walks its samples in reverse with running
suffix sums, reading the saved weights and T after the last sample, no exp.

Importance sampling is `taichi_kernels.sampling.importance` per ray, over any sorted per-ray
coordinate (the fine pass of empty-space skipping uses the occupied length s, so the new samples
fall in occupied space). float32 and float64 both work for compositing (float64 for gradcheck);
importance is float32. Torch twins: `taichi_kernels.reference_grid`.
"""

import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.compositing import _REAL, _NoCtx, checked_inputs
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch
from taichi_kernels.sampling import PDF_EPS



@ti.kernel
def _forward_kernel(
    sigma: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(), dt: ti.types.ndarray(),
    offsets: ti.types.ndarray(), counts: ti.types.ndarray(), norm: ti.types.ndarray(), bg: ti.types.ndarray(),
    eps: ti.f32, real: ti.template(), colour: ti.types.ndarray(), depth: ti.types.ndarray(),
    opacity: ti.types.ndarray(), weights: ti.types.ndarray(), trans_end: ti.types.ndarray(), serial: ti.template(),
):
    ti.loop_config(serialize=serial)
    for r in range(counts.shape[0]):
        off = offsets[r]
        trans = ti.cast(1.0, real)
        acc = ti.Vector.zero(real, 3)
        dep = ti.cast(0.0, real)
        op = ti.cast(0.0, real)
        for i in range(ti.cast(counts[r], ti.i32)):
            j = off + i
            w = ti.cast(0.0, real)
            if trans >= eps:  # early ray termination (eps = 0 never stops)
                keep = ti.exp(-sigma[j] * dt[j] * norm[r])  # 1 - alpha
                w = trans * (1.0 - keep)
                trans *= keep
                acc += w * ti.Vector([rgb[j, 0], rgb[j, 1], rgb[j, 2]])
                dep += w * t[j]
                op += w
            weights[j] = w
        for c in ti.static(range(3)):
            colour[r, c] = acc[c] + (1.0 - op) * bg[r, c]
        depth[r] = dep
        opacity[r] = op
        trans_end[r] = trans


@ti.kernel
def _backward_kernel(
    rgb: ti.types.ndarray(), t: ti.types.ndarray(), dt: ti.types.ndarray(), offsets: ti.types.ndarray(),
    counts: ti.types.ndarray(), norm: ti.types.ndarray(), bg: ti.types.ndarray(), trans_end: ti.types.ndarray(),
    weights: ti.types.ndarray(), g_colour: ti.types.ndarray(), g_depth: ti.types.ndarray(),
    g_opacity: ti.types.ndarray(), g_weights: ti.types.ndarray(), has_g_weights: ti.template(), real: ti.template(),
    g_sigma: ti.types.ndarray(), g_rgb: ti.types.ndarray(), serial: ti.template(),
):
    """dL/dsigma_k = delta_k (T_{k+1} g_k - sum_{i>k} w_i g_i), T_{k+1} = T_end + sum_{i>k} w_i; dL/dc_k = w_k gC."""
    ti.loop_config(serialize=serial)
    for r in range(counts.shape[0]):
        off = offsets[r]
        n = ti.cast(counts[r], ti.i32)
        gc = ti.Vector([g_colour[r, 0], g_colour[r, 1], g_colour[r, 2]])
        g_const = g_opacity[r] - (gc[0] * bg[r, 0] + gc[1] * bg[r, 1] + gc[2] * bg[r, 2])
        t_end = trans_end[r]
        suffix_wg = ti.cast(0.0, real)  # sum_{i>k} w_i g_i
        suffix_w = ti.cast(0.0, real)  # sum_{i>k} w_i
        for i in range(n):
            k = off + n - 1 - i
            w = weights[k]
            g = g_const + gc[0] * rgb[k, 0] + gc[1] * rgb[k, 1] + gc[2] * rgb[k, 2] + g_depth[r] * t[k]
            if ti.static(has_g_weights):
                g += g_weights[k]
            g_sigma[k] = dt[k] * norm[r] * ((t_end + suffix_w) * g - suffix_wg)
            for c in ti.static(range(3)):
                g_rgb[k, c] = w * gc[c]
            suffix_wg += w * g
            suffix_w += w


class _Composite(torch.autograd.Function):
    """Taichi forward and backward; inputs already checked, contiguous and of one dtype."""

    @staticmethod
    def forward(ctx, sigma, rgb, t, dt, offsets, counts, ray_norm, background, early_stop_eps):
        # detached: Taichi would attach a zero .grad to tensors that require grad (taichi #8340)
        sigma, rgb, t, dt, ray_norm, background = (x.detach() for x in (sigma, rgb, t, dt, ray_norm, background))
        n_rays, m = counts.shape[0], sigma.shape[0]
        dtype, device = sigma.dtype, sigma.device
        # per-ray outputs have a steady shape (pooled); the packed weights change size every call (fresh)
        colour = _buffers.empty("packed.colour", (n_rays, 3), dtype, device)
        depth = _buffers.empty("packed.depth", (n_rays,), dtype, device)
        opacity = _buffers.empty("packed.opacity", (n_rays,), dtype, device)
        trans_end = _buffers.empty("packed.trans_end", (n_rays,), dtype, device)
        weights = torch.empty(m, dtype=dtype, device=device)
        if n_rays > 0:
            launch(_forward_kernel, sigma, rgb, t, dt, offsets, counts, ray_norm, background, early_stop_eps,
                   _REAL[dtype], colour, depth, opacity, weights, trans_end, serial_launch(m))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rgb, t, dt, offsets, counts, ray_norm, background, trans_end, weights)
        return colour, depth, opacity, weights

    @staticmethod
    def backward(ctx, g_colour, g_depth, g_opacity, g_weights):
        rgb, t, dt, offsets, counts, ray_norm, background, trans_end, weights = (x.detach() for x in ctx.saved_tensors)
        n_rays, m = counts.shape[0], t.shape[0]
        dtype, device = t.dtype, t.device

        def dense(g, shape):  # a missing gradient is zero; a present one is made contiguous
            return torch.zeros(shape, dtype=dtype, device=device) if g is None else g.to(dtype).contiguous()

        g_colour = dense(g_colour, (n_rays, 3))
        g_depth = dense(g_depth, (n_rays,))
        g_opacity = dense(g_opacity, (n_rays,))
        has_gw = g_weights is not None
        g_weights = g_weights.to(dtype).contiguous() if has_gw else g_depth  # placeholder, never read
        g_sigma = torch.empty(m, dtype=dtype, device=device)
        g_rgb = torch.empty((m, 3), dtype=dtype, device=device)
        if n_rays > 0:
            launch(_backward_kernel, rgb, t, dt, offsets, counts, ray_norm, background, trans_end, weights, g_colour,
                   g_depth, g_opacity, g_weights, has_gw, _REAL[dtype], g_sigma, g_rgb, serial_launch(m))
        g_bg = trans_end[:, None] * g_colour if ctx.needs_input_grad[7] else None
        return g_sigma, g_rgb, None, None, None, None, None, g_bg, None


def check_packing(offsets: torch.Tensor, counts: torch.Tensor, m: int, caller: str) -> tuple[torch.Tensor, torch.Tensor]:
    """offsets, counts [B] as contiguous int64, after checking every ray's samples lie inside [0, m).

    Why: the kernels index without bounds checks; a wrong offset would read past the buffers.
    """
    if offsets.dim() != 1 or counts.shape != offsets.shape:
        raise ValueError(f"{caller}: offsets and counts must both be [B], got {list(offsets.shape)} and {list(counts.shape)}")
    if offsets.dtype.is_floating_point or counts.dtype.is_floating_point:
        raise ValueError(f"{caller}: offsets and counts must be integer tensors, got {offsets.dtype} and {counts.dtype}")
    offsets, counts = offsets.to(torch.int64).contiguous(), counts.to(torch.int64).contiguous()
    if counts.numel() and (bool((counts < 0).any()) or bool((offsets < 0).any()) or int((offsets + counts).max()) > m):
        raise ValueError(f"{caller}: offsets/counts must address samples inside the {m} given (counts >= 0)")
    return offsets, counts


def composite(
    sigma: torch.Tensor,  # [M] densities >= 0 (per unit distance)
    rgb: torch.Tensor,  # [M, 3] sample colours
    t: torch.Tensor,  # [M] sample z-depths (for the depth output)
    dt: torch.Tensor,  # [M] z-depth length each sample stands for (delta = dt |d|)
    offsets: torch.Tensor,  # [B] int first sample of each ray
    counts: torch.Tensor,  # [B] int samples per ray (may be 0)
    ray_norm: torch.Tensor,  # [B] |direction|: converts z-depth steps to distances
    background: torch.Tensor,  # [B, 3] or [3] colour behind the volume
    early_stop_eps: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite packed samples into colour [B, 3], depth [B], opacity [B] and weights [M].

    Differentiable w.r.t. sigma, rgb and background (all four outputs carry gradients); t, dt
    and ray_norm get none. `early_stop_eps > 0` gives weight 0 to samples whose incoming
    transmittance is below it: inference only (raises if a gradient would be needed). With every
    count equal to S and dt the padded deltas (last: last_delta), this is `compositing.composite`.
    """
    ensure_initialized()
    if sigma.dim() != 1:
        raise ValueError(f"packed.composite: sigma must be [M], got {list(sigma.shape)}")
    m = sigma.shape[0]
    offsets, counts = check_packing(offsets, counts, m, "packed.composite")
    n_rays = counts.shape[0]
    expect = {"rgb": (rgb, (m, 3)), "t": (t, (m,)), "dt": (dt, (m,)), "ray_norm": (ray_norm, (n_rays,))}
    prep, needs_grad = checked_inputs("packed.composite", sigma, rgb, background, n_rays, early_stop_eps, expect)

    # a [3] background is expanded here, so autograd's expand backward sums its gradient over rays
    args = (prep(sigma), prep(rgb), prep(t).detach(), prep(dt).detach(), offsets, counts, prep(ray_norm).detach(),
            prep(background.expand(n_rays, 3)))
    if not needs_grad:
        with torch.no_grad():
            return _Composite.forward(_NoCtx(), *(a.detach() for a in args), float(early_stop_eps))
    return _Composite.apply(*args, float(early_stop_eps))


# ---------------------------------------------------------------- importance sampling


@ti.kernel
def _importance_kernel(
    s: ti.types.ndarray(), w: ti.types.ndarray(), offsets: ti.types.ndarray(), counts: ti.types.ndarray(),
    xi: ti.types.ndarray(), n_fine: ti.i32, perturb: ti.template(), out_offsets: ti.types.ndarray(),
    out: ti.types.ndarray(), serial: ti.template(),
):
    """`sampling._importance_kernel` on packed rays: bins between midpoints of ray r's samples,
    bin k weighted w_{k+1} + PDF_EPS; sorted levels, so bins, new samples and the merge advance together."""
    ti.loop_config(serialize=serial)
    for r in range(counts.shape[0]):
        off = offsets[r]
        n_coarse = ti.cast(counts[r], ti.i32)
        o = out_offsets[r]
        if n_coarse > 0:
            m = n_coarse - 2
            total = 0.0
            for b in range(m):
                total += w[off + b + 1] + PDF_EPS
            k = 0
            run = w[off + 1] + PDF_EPS
            c_lo, c_hi = 0.0, run / total
            i = 0
            for j in range(n_fine):
                u = 0.0
                if ti.static(perturb):
                    u = (j + xi[r, j]) / n_fine
                else:
                    u = j / ti.max(n_fine - 1, 1)
                while k < m - 1 and c_hi <= u:  # searchsorted(right=True), clamped to the last bin
                    k += 1
                    run += w[off + k + 1] + PDF_EPS
                    c_lo, c_hi = c_hi, run / total
                e_lo = 0.5 * (s[off + k] + s[off + k + 1])
                e_hi = 0.5 * (s[off + k + 1] + s[off + k + 2])
                frac = 0.0
                if c_hi > c_lo:
                    frac = ti.min(ti.max((u - c_lo) / (c_hi - c_lo), 0.0), 1.0)
                sample = e_lo + frac * (e_hi - e_lo)
                while i < n_coarse and s[off + i] <= sample:
                    out[o] = s[off + i]
                    i += 1
                    o += 1
                out[o] = sample
                o += 1
            while i < n_coarse:
                out[o] = s[off + i]
                i += 1
                o += 1


def importance(
    s: torch.Tensor,  # [M] sorted coarse positions per ray (z-depth, or occupied length)
    weights: torch.Tensor,  # [M] coarse compositing weights (no gradient)
    offsets: torch.Tensor,  # [B] int
    counts: torch.Tensor,  # [B] int
    n_fine: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per ray, coarse and n_fine new samples merged and sorted: (s_all [M'], offsets' [B], counts' [B]).

    The rule is `sampling.importance`'s for each ray's own samples (original NeRF's sample_pdf:
    bins between coarse midpoints, bin k weighted weights[k+1] + 1e-5, stratified levels
    u_j = (j + xi_j) / n_fine with xi one `torch.rand([B, n_fine], generator)` draw when
    `perturb`, linspace(0, 1, n_fine) otherwise). A ray with samples gets counts + n_fine and
    needs at least 3; a ray with none keeps none. Output rays are laid out in ray order.
    """
    ensure_initialized()
    if s.dim() != 1 or weights.shape != s.shape:
        raise ValueError(f"packed.importance: s and weights must both be [M], got {list(s.shape)} and {list(weights.shape)}")
    if n_fine < 0:
        raise ValueError(f"packed.importance: n_fine must be >= 0, got {n_fine}")
    offsets, counts = check_packing(offsets, counts, s.shape[0], "packed.importance")
    n_rays, dev = counts.shape[0], s.device
    if n_fine > 0 and bool(((counts > 0) & (counts < 3)).any()):
        raise ValueError("packed.importance: every ray with samples needs at least 3 to form a bin between midpoints")
    new_counts = torch.where(counts > 0, counts + n_fine, 0)
    new_offsets = torch.cumsum(new_counts, 0) - new_counts
    s = s.detach().to(torch.float32).contiguous()
    weights = weights.detach().to(torch.float32).contiguous()
    if perturb and n_fine > 0:
        xi = _buffers.uniforms("packed.xi", (n_rays, n_fine), generator, dev)
    else:
        xi = torch.empty((0, 0), device=dev)
    out = torch.empty(int(new_counts.sum()), device=dev)
    if n_fine == 0:
        starts = torch.repeat_interleave(offsets - new_offsets, counts)  # input index - output index, per sample
        out.copy_(s[torch.arange(out.shape[0], device=dev) + starts])
    elif n_rays > 0:
        launch(_importance_kernel, s, weights, offsets, counts, xi, int(n_fine), bool(perturb), new_offsets, out,
               serial_launch(out.shape[0]))
    return out, new_offsets, new_counts
