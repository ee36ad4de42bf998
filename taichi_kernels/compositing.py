"""Volume compositing (emission-absorption), forward and hand-written backward, as one autograd op.

Per ray, with samples i = 0..S-1:
    delta_i = (t_{i+1} - t_i) |d|,  delta_{S-1} = last_delta |d|
    alpha_i = 1 - exp(-sigma_i delta_i),  T_i = prod_{j<i} (1 - alpha_j),  w_i = T_i alpha_i
    colour = sum_i w_i c_i + (1 - opacity) background,  depth = sum_i w_i t_i,  opacity = sum_i w_i

Backward (derivation in docs/kernels.md): with g_i = gC.(c_i - b) + gD t_i + gO + gW_i,
    dL/dc_i = w_i gC,   dL/db = T_S gC,
    dL/dsigma_k = delta_k (T_{k+1} g_k - sum_{i>k} w_i g_i),   T_{k+1} = T_S + sum_{i>k} w_i,
where T_S, the transmittance left after the last sample, is saved by the forward (using
1 - opacity instead would turn its rounding error, times a last delta of 1e10, into garbage).
One ray per thread walks its samples backwards keeping running suffix sums, so the backward
needs neither sigma nor an exp: it reads the saved colours, depths and weights.

Taichi's own autodiff is not used: it gave wrong density gradients for the loop carrying T
(see ../shared/notes/taichi.md). float32 and float64 tensors both work (float64 lets
`torch.autograd.gradcheck` test the backward). The torch reference is
`taichi_kernels.reference.composite`.
"""


import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch

_REAL = {torch.float32: ti.f32, torch.float64: ti.f64}


@ti.kernel
def _forward_kernel(
    sigma: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(), norm: ti.types.ndarray(),
    bg: ti.types.ndarray(), last_delta: ti.f32, eps: ti.f32, real: ti.template(),
    colour: ti.types.ndarray(), depth: ti.types.ndarray(), opacity: ti.types.ndarray(), weights: ti.types.ndarray(),
    trans_end: ti.types.ndarray(), serial: ti.template(),
):
    n_samples = sigma.shape[1]
    ti.loop_config(serialize=serial)
    for r in range(sigma.shape[0]):
        trans = ti.cast(1.0, real)
        acc = ti.Vector.zero(real, 3)
        dep = ti.cast(0.0, real)
        op = ti.cast(0.0, real)
        for i in range(n_samples):
            w = ti.cast(0.0, real)
            if trans >= eps:  # early ray termination (eps = 0 never stops)
                dt = ti.cast(last_delta, real)
                if i + 1 < n_samples:
                    dt = t[r, i + 1] - t[r, i]
                keep = ti.exp(-sigma[r, i] * dt * norm[r])  # 1 - alpha
                w = trans * (1.0 - keep)
                trans *= keep
                acc += w * ti.Vector([rgb[r, i, 0], rgb[r, i, 1], rgb[r, i, 2]])
                dep += w * t[r, i]
                op += w
            weights[r, i] = w
        for c in ti.static(range(3)):
            colour[r, c] = acc[c] + (1.0 - op) * bg[r, c]
        depth[r] = dep
        opacity[r] = op
        trans_end[r] = trans


@ti.kernel
def _backward_kernel(
    rgb: ti.types.ndarray(), t: ti.types.ndarray(), norm: ti.types.ndarray(), bg: ti.types.ndarray(),
    trans_end: ti.types.ndarray(), weights: ti.types.ndarray(), g_colour: ti.types.ndarray(),
    g_depth: ti.types.ndarray(), g_opacity: ti.types.ndarray(), g_weights: ti.types.ndarray(),
    last_delta: ti.f32, has_g_weights: ti.template(), real: ti.template(),
    g_sigma: ti.types.ndarray(), g_rgb: ti.types.ndarray(), serial: ti.template(),
):
    n_samples = t.shape[1]
    ti.loop_config(serialize=serial)
    for r in range(t.shape[0]):
        gc = ti.Vector([g_colour[r, 0], g_colour[r, 1], g_colour[r, 2]])
        g_const = g_opacity[r] - (gc[0] * bg[r, 0] + gc[1] * bg[r, 1] + gc[2] * bg[r, 2])
        t_end = trans_end[r]  # transmittance after the last sample, as the forward left it
        suffix_wg = ti.cast(0.0, real)  # sum_{i>k} w_i g_i
        suffix_w = ti.cast(0.0, real)  # sum_{i>k} w_i
        for j in range(n_samples):
            k = n_samples - 1 - j
            w = weights[r, k]
            g = g_const + gc[0] * rgb[r, k, 0] + gc[1] * rgb[r, k, 1] + gc[2] * rgb[r, k, 2] + g_depth[r] * t[r, k]
            if ti.static(has_g_weights):
                g += g_weights[r, k]
            dt = ti.cast(last_delta, real)
            if k + 1 < n_samples:
                dt = t[r, k + 1] - t[r, k]
            g_sigma[r, k] = dt * norm[r] * ((t_end + suffix_w) * g - suffix_wg)
            for c in ti.static(range(3)):
                g_rgb[r, k, c] = w * gc[c]
            suffix_wg += w * g
            suffix_w += w


class _Composite(torch.autograd.Function):
    """Taichi forward and backward; inputs already checked, contiguous and of one dtype."""

    @staticmethod
    def forward(ctx, sigma, rgb, t, ray_norm, background, last_delta, early_stop_eps):
        # detached: Taichi would attach a zero .grad to tensors that require grad (taichi #8340)
        sigma, rgb, t, ray_norm, background = (x.detach() for x in (sigma, rgb, t, ray_norm, background))
        n_rays, n_samples = sigma.shape
        dtype, device = sigma.dtype, sigma.device
        colour = _buffers.empty("composite.colour", (n_rays, 3), dtype, device)
        depth = _buffers.empty("composite.depth", (n_rays,), dtype, device)
        opacity = _buffers.empty("composite.opacity", (n_rays,), dtype, device)
        weights = _buffers.empty("composite.weights", (n_rays, n_samples), dtype, device)
        trans_end = _buffers.empty("composite.trans_end", (n_rays,), dtype, device)
        if n_rays > 0:
            launch(_forward_kernel, sigma, rgb, t, ray_norm, background, last_delta, early_stop_eps, _REAL[dtype],
                            colour, depth, opacity, weights, trans_end, serial_launch(sigma.numel()))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rgb, t, ray_norm, background, trans_end, weights)
        ctx.last_delta = last_delta
        return colour, depth, opacity, weights

    @staticmethod
    def backward(ctx, g_colour, g_depth, g_opacity, g_weights):
        rgb, t, ray_norm, background, trans_end, weights = (x.detach() for x in ctx.saved_tensors)
        n_rays, n_samples = t.shape
        dtype, device = t.dtype, t.device

        def dense(g, shape):  # a missing gradient is zero; a present one is made contiguous
            return torch.zeros(shape, dtype=dtype, device=device) if g is None else g.to(dtype).contiguous()

        g_colour = dense(g_colour, (n_rays, 3))
        g_depth = dense(g_depth, (n_rays,))
        g_opacity = dense(g_opacity, (n_rays,))
        has_gw = g_weights is not None
        g_weights = g_weights.to(dtype).contiguous() if has_gw else g_depth  # placeholder, never read
        g_sigma = _buffers.empty("composite.g_sigma", (n_rays, n_samples), dtype, device)
        g_rgb = _buffers.empty("composite.g_rgb", (n_rays, n_samples, 3), dtype, device)
        if n_rays > 0:
            launch(_backward_kernel, rgb, t, ray_norm, background, trans_end, weights, g_colour, g_depth, g_opacity,
                             g_weights, ctx.last_delta, has_gw, _REAL[dtype], g_sigma, g_rgb, serial_launch(t.numel()))
        g_bg = trans_end[:, None] * g_colour if ctx.needs_input_grad[4] else None
        return g_sigma, g_rgb, None, None, g_bg, None, None


def composite(
    sigma: torch.Tensor,  # [B, S] densities >= 0 (per unit distance)
    rgb: torch.Tensor,  # [B, S, 3] sample colours
    t: torch.Tensor,  # [B, S] sorted sample z-depths
    ray_norm: torch.Tensor,  # [B] |direction|: converts z-depth steps to distances
    background: torch.Tensor,  # [B, 3] or [3] colour behind the volume
    last_delta: float = 1e10,
    early_stop_eps: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite samples into colour [B, 3], depth [B], opacity [B] and weights [B, S].

    Differentiable w.r.t. sigma, rgb and background (all four outputs carry gradients,
    weights included); t and ray_norm get none. `early_stop_eps > 0` stops each ray once its
    transmittance drops below it (later weights are 0): inference only, so it raises if a
    gradient would be needed. Outputs are pooled buffers reused once dropped (see `_buffers`).
    """
    ensure_initialized()
    if sigma.dim() != 2:
        raise ValueError(f"composite: sigma must be [B, S], got {list(sigma.shape)}")
    n_rays, n_samples = sigma.shape
    expect = {"rgb": (rgb, (n_rays, n_samples, 3)), "t": (t, (n_rays, n_samples)), "ray_norm": (ray_norm, (n_rays,))}
    prep, needs_grad = checked_inputs("composite", sigma, rgb, background, n_rays, early_stop_eps, expect)

    # a [3] background is expanded here, so autograd's expand backward sums its gradient over rays
    args = (prep(sigma), prep(rgb), prep(t).detach(), prep(ray_norm).detach(), prep(background.expand(n_rays, 3)))
    if not needs_grad:
        with torch.no_grad():
            return _Composite.forward(_NoCtx(), *(a.detach() if torch.is_tensor(a) else a for a in args),
                                      float(last_delta), float(early_stop_eps))
    return _Composite.apply(*args, float(last_delta), float(early_stop_eps))


def checked_inputs(caller: str, sigma, rgb, background, n_rays: int, early_stop_eps: float, expect: dict):
    """Shape, background and early-stop checks shared by the padded and the packed compositing.

    `expect` maps an argument name to (tensor, expected shape). Returns (prep, needs_grad): prep(x)
    makes a tensor contiguous in sigma's real dtype (float32 unless float64), as Taichi needs.
    """
    for name, (x, shape) in expect.items():
        if tuple(x.shape) != shape:
            raise ValueError(f"{caller}: '{name}' has shape {list(x.shape)}, expected {list(shape)} (sigma is {list(sigma.shape)})")
    if tuple(background.shape) not in ((3,), (n_rays, 3)):
        raise ValueError(f"{caller}: background must be [3] or [{n_rays}, 3], got {list(background.shape)}")
    dtype = sigma.dtype if sigma.dtype in _REAL else torch.float32
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (sigma, rgb, background))
    if early_stop_eps > 0 and needs_grad:
        raise ValueError(f"{caller}: early_stop_eps > 0 is for inference only; call it under torch.no_grad()")

    def prep(x):  # Taichi needs contiguous tensors of one dtype, without autograd history
        return x.to(dtype).contiguous()

    return prep, needs_grad


class _NoCtx:
    """Stands in for autograd's ctx when no gradient is needed (skips the Function machinery)."""

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        pass
