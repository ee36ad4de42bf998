"""Positional encoding of sample points as one Taichi kernel (forward only), optionally of some columns only.

Same features and order as the torch reference `taichi_kernels.reference.positional_encoding`:
[x_0..x_{D-1}, sin(2^0 x), cos(2^0 x), sin(2^1 x), cos(2^1 x), ...], each block D wide.
The torch version allocates and rewrites several [N, L, D] temporaries; here every
output element is written once, into a reused buffer (or the caller's `out`). No gradient
flows to the points (NeRF never needs one), so inputs that require grad are refused.

`columns` asks for some features only, in that order: a compacted network whose pruned weights no
longer read some features (`nerfprune.pruning.compact`) gets only those it reads, and octaves above
the highest one read are never computed.

Each octave is derived from the previous one by the double-angle formulas, so the
kernel is bound by memory writes rather than by sin/cos; rounding grows by about
2x per octave (~1e-5 after 10 octaves, below float32 sin's own error at 2^9 x).
A column is computed the same way whichever other columns are asked for, so the columns
of a partial encoding equal those of the full one exactly.
"""


import torch

from taichi_kernels import _buffers
from taichi_kernels._taichi import ti
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch


@ti.kernel
def _encode_kernel(x: ti.types.ndarray(), dirs: ti.types.ndarray(), t: ti.types.ndarray(), ray: ti.types.ndarray(),
                   where: ti.types.ndarray(), out: ti.types.ndarray(), at_samples: ti.template(), dims: ti.template(),
                   n_freq: ti.template(), serial: ti.template()):
    # Points x [N, D], or (at_samples) the sample points x[ray[i]] + t[i] dirs[ray[i]] of rays x, dirs [B, D].
    # where[f]: output column of feature f of the full encoding, or -1 when it is not asked for.
    # dims and n_freq are compile-time constants (a network has two encodings, so two compilations): the
    # unrolled loops ran 2x faster than loops over runtime bounds (131,072 points x 63 features: 14 vs 30 ms).
    ti.loop_config(serialize=serial)
    for i in range(out.shape[0]):
        for d in ti.static(range(dims)):
            v = 0.0
            if ti.static(at_samples):
                v = x[ray[i], d] + t[i] * dirs[ray[i], d]
            else:
                v = x[i, d]
            if where[d] >= 0:
                out[i, where[d]] = v
            # sin/cos once, then the double-angle recurrence for each next octave:
            # sin 2a = 2 sin a cos a, cos 2a = cos^2 a - sin^2 a (two products instead of two libm calls).
            s = ti.sin(v)
            c = ti.cos(v)
            for level in ti.static(range(n_freq)):
                ws, wc = where[dims * (1 + 2 * level) + d], where[dims * (2 + 2 * level) + d]
                if ws >= 0:
                    out[i, ws] = s
                if wc >= 0:
                    out[i, wc] = c
                s, c = 2.0 * s * c, c * c - s * s


_WHERE: dict[tuple, tuple[torch.Tensor, int]] = {}  # (dims, n_frequencies, columns, device) -> (table, octaves)


def _where(dims: int, n_frequencies: int, columns: torch.Tensor | None, device: torch.device) -> tuple[torch.Tensor, int]:
    """The kernel's table (output column of every feature [D (1 + 2L)] int32, -1 if unused) and the octaves to run."""
    features = dims * (1 + 2 * n_frequencies)
    picked = tuple(range(features)) if columns is None else tuple(int(c) for c in columns.tolist())
    key = (dims, n_frequencies, picked, str(device))
    if key not in _WHERE:
        if any(not 0 <= c < features for c in picked):
            raise ValueError(f"positional_encoding: columns must lie in [0, {features}) for {dims} inputs and "
                             f"{n_frequencies} frequencies, got {list(picked)}")
        if len(set(picked)) != len(picked):
            raise ValueError(f"positional_encoding: columns must not repeat, got {list(picked)}")
        where = torch.full((features,), -1, dtype=torch.int32)
        for out_col, feature in enumerate(picked):
            where[feature] = out_col
        octaves = max(((f // dims - 1) // 2 + 1 for f in picked if f >= dims), default=0)  # sin/cos blocks 1, 2 = octave 0
        if len(_WHERE) > 64:  # a handful of networks per process; never grow without bound
            _WHERE.clear()
        _WHERE[key] = (where.to(device), octaves)
    return _WHERE[key]


def positional_encoding(x: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """x [N, D] float32 -> [N, D * (1 + 2 * n_frequencies)], or [N, len(columns)]: those features, in that order.

    Written into `out` when given (float32, contiguous, N rows and at least as many columns as features: the
    features go to its first columns, the others are left as they are, e.g. a column of ones that carries the
    next layer's bias, `nerfprune.field.inference`), else into a pooled buffer (see `_buffers`). Returns the
    features ([N, F], a view of `out`).
    """
    _check(x, "x", n_frequencies)
    x = x.detach().to(torch.float32).contiguous()
    unused = x.new_zeros(1)
    return _encode(x, x, unused, unused.to(torch.int64), False, x.shape[0], n_frequencies, columns, out)


def positional_encoding_at(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
                           n_frequencies: int, *, columns: torch.Tensor | None = None,
                           out: torch.Tensor | None = None) -> torch.Tensor:
    """The encoding of the sample points origins[r] + t dirs[r] (rays [B, D], t [N], ray index r [N] int64),
    computed on the fly: the same features as `positional_encoding` of those points, without gathering the
    rays and writing the [N, D] points first. `columns` and `out` as there."""
    _check(origins, "origins", n_frequencies)
    if dirs.shape != origins.shape or t.dim() != 1 or ray_index.shape != t.shape:
        raise ValueError(f"positional_encoding_at: need origins and dirs [B, D] and t, ray_index [N], got "
                         f"{list(origins.shape)}, {list(dirs.shape)}, {list(t.shape)}, {list(ray_index.shape)}")
    f32 = [a.detach().to(torch.float32).contiguous() for a in (origins, dirs, t)]
    return _encode(*f32, ray_index.detach().to(torch.int64).contiguous(), True, t.shape[0], n_frequencies, columns,
                   out)


def _check(x: torch.Tensor, name: str, n_frequencies: int) -> None:
    if x.dim() != 2:
        raise ValueError(f"positional_encoding: {name} must be [N, D], got {list(x.shape)}")
    if x.requires_grad:
        raise ValueError("positional_encoding: the Taichi kernel has no backward; use taichi_kernels.reference.positional_encoding for inputs that need gradients")
    if n_frequencies < 0:
        raise ValueError(f"positional_encoding: n_frequencies must be >= 0, got {n_frequencies}")


def _encode(x, dirs, t, ray, at_samples: bool, n: int, n_frequencies: int, columns, out) -> torch.Tensor:
    ensure_initialized()
    dims = x.shape[1]
    where, octaves = _where(dims, n_frequencies, columns, x.device)
    shape = (n, dims * (1 + 2 * n_frequencies) if columns is None else columns.numel())
    if out is None:
        out = _buffers.empty("encoding", shape, torch.float32, x.device)
    elif (out.dim() != 2 or out.shape[0] != n or out.shape[1] < shape[1] or out.dtype != torch.float32
          or not out.is_contiguous() or out.device != x.device):
        raise ValueError(f"positional_encoding: out must be a contiguous float32 tensor of {n} rows and at least "
                         f"{shape[1]} columns on {x.device}, got {out.dtype} {list(out.shape)} on {out.device}")
    if n and shape[1]:
        launch(_encode_kernel, x, dirs, t, ray, where, out, at_samples, dims, octaves, serial_launch(n * dims))
    return out[:, :shape[1]]
