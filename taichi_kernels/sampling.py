"""Sample depths along rays: stratified (coarse) and importance / inverse-CDF (fine) sampling.

Both follow the original NeRF code (`render_rays`, `sample_pdf`), with two documented changes
to the importance sampler (see `docs/kernels.md`): random CDF levels are stratified,
u_j = (j + xi_j) / M, instead of i.i.d., and the sampled bin is found by clamping the bin
index rather than by original NeRF's `denom < 1e-5 -> 1` patch (the sample is then a
continuous function of the weights). Random numbers come from torch (`generator`, or torch's
default generator), so `torch.manual_seed` makes runs repeatable and the reference
(`taichi_kernels.reference`) sees the very same draws. Everything is float32; samples are z-depths.
"""


import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.constants import PDF_EPS
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch


@ti.func
def _depth(s: ti.f32, near: ti.f32, far: ti.f32, lindisp: ti.template()) -> ti.f32:
    """Depth at fraction s in [0, 1] of [near, far], linear in depth or in disparity."""
    t = 0.0
    if ti.static(lindisp):
        t = 1.0 / (1.0 / near * (1.0 - s) + 1.0 / far * s)
    else:
        t = near * (1.0 - s) + far * s
    return t


@ti.kernel
def _stratified_kernel(
    u: ti.types.ndarray(), near: ti.f32, far: ti.f32, perturb: ti.template(), lindisp: ti.template(),
    out: ti.types.ndarray(), serial: ti.template(),
):
    n_samples = out.shape[1]
    step = 1.0 / ti.max(n_samples - 1, 1)
    ti.loop_config(serialize=serial)
    for r in range(out.shape[0]):  # one ray per thread (a 2-D ndrange pays an integer division per sample)
        for i in range(n_samples):
            t = _depth(i * step, near, far, lindisp)
            if ti.static(perturb):
                # the bin runs between the midpoints to the neighbouring points (the point itself at the ends)
                lower, upper = t, t
                if i > 0:
                    lower = 0.5 * (_depth((i - 1) * step, near, far, lindisp) + t)
                if i < n_samples - 1:
                    upper = 0.5 * (t + _depth((i + 1) * step, near, far, lindisp))
                t = lower + (upper - lower) * u[r, i]
            out[r, i] = ti.min(ti.max(t, near), far)


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
    """Coarse sample depths t [n_rays, n_samples], sorted and inside [near, far].

    Deterministic (evaluation): n_samples points evenly spaced from near to far inclusive,
    in depth, or in disparity 1/t when `lindisp` (needs near > 0). `perturb` (training):
    each sample uniform in its bin, the bins being bounded by midpoints between neighbouring
    deterministic points; the uniforms are one `torch.rand([n_rays, n_samples], generator)`
    draw on the generator's device, moved to `device` (where the result lives).
    The result is a pooled buffer, reused once dropped (see `_buffers`).
    """
    ensure_initialized()
    if n_rays < 0 or n_samples < 0:
        raise ValueError(f"stratified: n_rays and n_samples must be >= 0, got {n_rays}, {n_samples}")
    if not (0.0 <= near < far) or (lindisp and near <= 0.0):
        raise ValueError(
            f"stratified: need 0 <= near < far (and near > 0 with lindisp), got near={near}, far={far}"
        )
    shape = (int(n_rays), int(n_samples))
    u = _buffers.uniforms("stratified.u", shape, generator, device) if perturb else torch.empty((0, 0), device=device)
    out = _buffers.empty("stratified.t", shape, torch.float32, torch.device(device))
    if out.numel() > 0:
        launch(_stratified_kernel, u, float(near), float(far), bool(perturb), bool(lindisp), out, serial_launch(out.numel()))
    return out


@ti.kernel
def _importance_kernel(
    t: ti.types.ndarray(), w: ti.types.ndarray(), xi: ti.types.ndarray(), n_fine: ti.i32, perturb: ti.template(),
    merge: ti.template(), out: ti.types.ndarray(), serial: ti.template(),
):
    """One ray per thread: walk the CDF and the sorted levels u together, merging as we go.

    Bin k (0..m-1, m = S - 2) runs from edge e_k to e_{k+1}, e_k = (t_k + t_{k+1}) / 2, and
    has probability (w_{k+1} + eps) / total. The levels u_j are sorted, so each ray is one
    pass over its bins and levels (no per-ray scratch memory), and so are the samples.
    """
    n_coarse = t.shape[1]
    m = n_coarse - 2
    ti.loop_config(serialize=serial)
    for r in range(t.shape[0]):
        total = 0.0
        for k in range(m):
            total += w[r, k + 1] + PDF_EPS
        k = 0  # current bin
        run = w[r, 1] + PDF_EPS  # unnormalised CDF at the bin's upper edge
        c_lo, c_hi = 0.0, run / total
        i = 0  # next coarse sample to emit
        o = 0  # next output slot
        for j in range(n_fine):
            u = 0.0
            if ti.static(perturb):
                u = (j + xi[r, j]) / n_fine
            else:
                u = j / ti.max(n_fine - 1, 1)
            while k < m - 1 and c_hi <= u:  # searchsorted(right=True), clamped to the last bin
                k += 1
                run += w[r, k + 1] + PDF_EPS
                c_lo, c_hi = c_hi, run / total
            e_lo = 0.5 * (t[r, k] + t[r, k + 1])
            e_hi = 0.5 * (t[r, k + 1] + t[r, k + 2])
            frac = 0.0
            if c_hi > c_lo:
                frac = ti.min(ti.max((u - c_lo) / (c_hi - c_lo), 0.0), 1.0)
            sample = e_lo + frac * (e_hi - e_lo)
            if ti.static(merge):
                while i < n_coarse and t[r, i] <= sample:
                    out[r, o] = t[r, i]
                    i += 1
                    o += 1
            out[r, o] = sample
            o += 1
        if ti.static(merge):
            while i < n_coarse:
                out[r, o] = t[r, i]
                i += 1
                o += 1


def _fine_samples(
    t: torch.Tensor, weights: torch.Tensor, n_fine: int, perturb: bool, generator: torch.Generator | None, merge: bool
) -> torch.Tensor:
    """Checks the arguments and runs `_importance_kernel`; see `importance`.

    With merge=False only the n_fine new samples are returned, in increasing order [B, n_fine]
    (the tests use this to check their distribution).
    """
    ensure_initialized()
    caller = "importance"
    if t.dim() != 2 or weights.shape != t.shape:
        raise ValueError(f"{caller}: t and weights must both be [B, S], got {list(t.shape)} and {list(weights.shape)}")
    if n_fine < 0:
        raise ValueError(f"{caller}: n_fine must be >= 0, got {n_fine}")
    n_rays, n_coarse = t.shape
    if n_fine > 0 and n_coarse < 3:
        raise ValueError(
            f"{caller}: need at least 3 coarse samples per ray to form a bin between midpoints, got {n_coarse}"
        )
    t = t.detach().to(torch.float32).contiguous()
    weights = weights.detach().to(torch.float32).contiguous()
    xi = (
        _buffers.uniforms("importance.xi", (n_rays, n_fine), generator, t.device)
        if perturb and n_fine > 0
        else torch.empty((0, 0), device=t.device)
    )
    width = n_coarse + n_fine if merge else n_fine
    out = _buffers.empty("importance.t", (n_rays, width), torch.float32, t.device)
    if n_fine == 0:
        if merge:
            out.copy_(t)
    elif n_rays > 0:
        launch(_importance_kernel, t, weights, xi, int(n_fine), bool(perturb), bool(merge), out, serial_launch(out.numel()))
    return out


def importance(
    t: torch.Tensor,  # [B, S] sorted coarse sample depths
    weights: torch.Tensor,  # [B, S] coarse compositing weights
    n_fine: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hierarchical sampling: coarse samples and n_fine new ones, merged and sorted [B, S + n_fine].

    New samples follow the piecewise-constant pdf over the bins between coarse midpoints
    (bin k between midpoints k and k+1 has weight weights[:, k+1] + 1e-5, as original NeRF's
    `sample_pdf`). `perturb=False` inverts the CDF at linspace(0, 1, n_fine); `perturb=True`
    at u_j = (j + xi_j) / n_fine with xi one `torch.rand([B, n_fine], generator)` draw. The
    weights are treated as constants (no gradient). Needs S >= 3 when n_fine > 0.
    """
    return _fine_samples(t, weights, n_fine, perturb, generator, merge=True)

