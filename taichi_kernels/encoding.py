"""Positional encoding of sample points as one Taichi kernel (forward only).

Same features and order as the torch reference `taichi_kernels.reference.positional_encoding`:
[x_0..x_{D-1}, sin(2^0 x), cos(2^0 x), sin(2^1 x), cos(2^1 x), ...], each block D wide.
The torch version allocates and rewrites several [N, L, D] temporaries; here every
output element is written once, into a reused buffer. No gradient flows to the
points (NeRF never needs one), so inputs that require grad are refused.

Each octave is derived from the previous one by the double-angle formulas, so the
kernel is bound by memory writes rather than by sin/cos; rounding grows by about
2x per octave (~1e-5 after 10 octaves, below float32 sin's own error at 2^9 x).
"""


import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch


@ti.kernel
def _encode_kernel(x: ti.types.ndarray(), n_freq: ti.i32, out: ti.types.ndarray(), serial: ti.template()):
    n, dims = x.shape[0], x.shape[1]
    ti.loop_config(serialize=serial)
    for i, d in ti.ndrange(n, dims):
        v = x[i, d]
        out[i, d] = v
        # sin/cos once, then the double-angle recurrence for each next octave:
        # sin 2a = 2 sin a cos a, cos 2a = cos^2 a - sin^2 a (two products instead of two libm calls).
        s = ti.sin(v)
        c = ti.cos(v)
        for level in range(n_freq):
            out[i, dims * (1 + 2 * level) + d] = s
            out[i, dims * (2 + 2 * level) + d] = c
            s, c = 2.0 * s * c, c * c - s * s


def positional_encoding(x: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """x [N, D] float32 -> [N, D * (1 + 2 * n_frequencies)] (a pooled buffer, see `_buffers`)."""
    if x.dim() != 2:
        raise ValueError(f"positional_encoding: x must be [N, D], got {list(x.shape)}")
    if x.requires_grad:
        raise ValueError("positional_encoding: the Taichi kernel has no backward; use taichi_kernels.reference.positional_encoding for inputs that need gradients")
    if n_frequencies < 0:
        raise ValueError(f"positional_encoding: n_frequencies must be >= 0, got {n_frequencies}")
    ensure_initialized()
    x = x.detach().to(torch.float32).contiguous()
    n, dims = x.shape
    out = _buffers.empty("encoding", (n, dims * (1 + 2 * n_frequencies)), torch.float32, x.device)
    if n:
        launch(_encode_kernel, x, n_frequencies, out, serial_launch(x.numel()))
    return out
