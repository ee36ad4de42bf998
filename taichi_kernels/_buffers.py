"""Reusable output buffers for the kernels.

Why: a freshly allocated large tensor is paid for again on every call (the allocator
returns big blocks to the OS, so each new one page-faults as it is first written: about
18 ms for 64 MB here, against 1.8 ms to rewrite a reused one). The kernels therefore
write into buffers kept in a small pool, keyed by (name, shape, dtype, device).

Safety: a buffer is handed out as a new tensor sharing the pooled tensor's storage
(`detach()`), so while the caller (or autograd, which saves tensors for backward) still holds
it, the storage has an extra owner and the pool will not hand it out again; it allocates
another instead. Only when the storage's use count is back to what it was when only the pool
held it is the memory rewritten. (Taichi's compiler keeps the arguments of the call that
compiled a kernel in a reference cycle until Python's garbage collector runs: such a buffer
just counts as busy until then.) Results returned to callers are therefore never overwritten behind their back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

MAX_PER_KEY = 3  # buffers kept per (name, shape, dtype, device); more in use at once are allocated fresh
MAX_KEYS = 24  # distinct keys kept (least recently used dropped), so varying shapes do not leak memory

_pool: "OrderedDict[tuple, list[tuple[torch.Tensor, int]]]" = OrderedDict()  # key -> [(buffer, refs when free)]
_lock = threading.Lock()
_use_count = getattr(torch._C, "_storage_Use_Count", None)  # absent in some torch builds: no pooling then


def _storage_refs(buf: torch.Tensor) -> int:
    """Owners of the buffer's storage, counting the temporary storage object this call makes."""
    return _use_count(buf.untyped_storage()._cdata)  # type: ignore[misc]


def empty(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised tensor of `shape`, reusing a pooled buffer when one is free.

    The caller must overwrite every element (the contents are stale). `name` separates
    buffers of different roles that happen to share a shape.
    """
    shape = tuple(int(s) for s in shape)
    if _use_count is None or any(s == 0 for s in shape):
        return torch.empty(shape, dtype=dtype, device=device)
    key = (name, shape, dtype, torch.device(device))
    with _lock:
        bufs = _pool.get(key)
        if bufs is None:
            bufs = _pool[key] = []
            while len(_pool) > MAX_KEYS:
                _pool.popitem(last=False)
        else:
            _pool.move_to_end(key)
        for buf, refs_when_free in bufs:
            if _storage_refs(buf) == refs_when_free:
                return buf.detach()
        buf = torch.empty(shape, dtype=dtype, device=device)
        if len(bufs) < MAX_PER_KEY:
            bufs.append((buf, _storage_refs(buf)))
            return buf.detach()
        return buf


def rows(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`empty(name, shape, ...)` for a row count that changes from call to call (packed samples: M per chunk):
    the first `shape[0]` rows of a pooled buffer whose row count is rounded up to a power of two (at least
    1,024), so a handful of keys serve every M and the pages stay warm. Contiguous; stale contents."""
    n = int(shape[0])
    capacity = max(1024, 1 << max(n - 1, 0).bit_length())
    return empty(name, (capacity, *shape[1:]), dtype, device)[:n]


def uniforms(name: str, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """The same numbers as `reference.uniforms(shape, generator, device)`, drawn into a pooled buffer.

    They are drawn on the generator's device (the CPU for None, as the trainer's generators are),
    then moved to `device`: a run draws the same jitter whether its kernels run on the CPU or on CUDA.
    """
    draw_on = generator.device if generator is not None else torch.device("cpu")
    return empty(name, shape, torch.float32, draw_on).uniform_(0.0, 1.0, generator=generator).to(device)


def clear() -> None:
    """Drop every pooled buffer (memory is released once callers drop their views)."""
    with _lock:
        _pool.clear()
