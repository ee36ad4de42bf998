"""Taichi start-up: one lazy `ti.init`, never at import time.

The backend is chosen once, at the first kernel call:
- `NERFPRUNE_TI_ARCH` (or `set_arch()`, which the CLI's `--ti-arch` flag calls)
  picks one of `auto`, `cpu`, `cuda`, `vulkan`, `metal`; default `auto` takes
  CUDA when torch sees a GPU, Metal on macOS, else the CPU.
- CPU threads follow `TI_CPU_MAX_NUM_THREADS`, else torch's thread count, so
  Taichi's and torch's thread pools have the same size (they take turns).
- The offline cache stays on; `ti.reset` is registered at exit because the cache
  is only written then (see shared notes on Taichi).

Taichi's backend and torch's device go together: kernels on CUDA read CUDA tensors, kernels on
the CPU read CPU tensors. `torch_device("auto")` gives the device that matches Taichi's backend,
and `launch` refuses a tensor on any other device (`BackendError`) instead of letting Taichi
copy it: a CPU tensor passed to a CUDA kernel is copied to the GPU and back around every launch,
with a synchronisation each way (taichi/runtime/cuda/kernel_launcher.cpp), and a CUDA tensor
passed to a CPU kernel is copied to the host and back (taichi/lang/kernel_impl.py). Both give
right numbers at a silent cost, which is worse than an error that says where the tensor came from.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import threading
import warnings

ARCHES = ("auto", "cpu", "cuda", "vulkan", "metal")
DEVICES = ("auto", "cpu", "cuda")  # torch devices `torch_device` accepts
CPU_ARCHES = ("x64", "arm64")  # Taichi's names of its CPU backends (`current_arch()`)
_lock = threading.Lock()
_launch_lock = threading.RLock()  # Taichi's launch path is not documented as thread-safe: one launch at a time
_state: dict[str, object] = {"arch": None, "requested": None}


class BackendError(ValueError):
    """A Taichi backend that cannot run here, or a tensor on a device the backend does not run on."""


def _require_cuda(what: str) -> None:
    """Raise `BackendError` unless torch can use a CUDA GPU (Taichi's CUDA kernels read torch's CUDA tensors)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendError(f"{what} was asked for, but torch sees no CUDA GPU on this machine "
                           "(torch.cuda.is_available() is False); use 'cpu' or 'auto'")


def set_arch(name: str) -> None:
    """Choose the backend before the first kernel runs (`auto`, `cpu`, `cuda`, ...).

    `cuda` on a machine without a CUDA GPU raises `BackendError` here, at once, rather than
    at the first kernel (or, as `ti.init` does, by falling back to the CPU with a warning).
    """
    if name not in ARCHES:
        raise BackendError(f"unknown Taichi backend '{name}': choose one of {', '.join(ARCHES)}")
    if name == "cuda":
        _require_cuda("Taichi backend 'cuda'")
    if _state["arch"] is not None and name != _state["requested"]:
        raise RuntimeError(f"Taichi is already initialised on '{_state['arch']}'; set the backend before the first kernel call")
    _state["requested"] = name


def current_arch() -> str | None:
    """The backend Taichi runs on, or None before the first kernel call."""
    return _state["arch"]  # type: ignore[return-value]


def _detect_gpu_backend() -> str:
    """`cuda` when torch sees an NVIDIA GPU, `metal` on macOS, else `cpu`.

    `ti.gpu` itself is not used: on a machine without a GPU its Vulkan probe
    crashed the process here (segfault) instead of falling back.
    """
    import sys

    import torch

    if torch.cuda.is_available():
        return "cuda"
    if sys.platform == "darwin":
        return "metal"
    return "cpu"


def ensure_initialized() -> str:
    """Initialise Taichi once (thread-safe) and return the backend name."""
    if _state["arch"] is not None:
        return _state["arch"]  # type: ignore[return-value]
    with _lock:
        if _state["arch"] is not None:
            return _state["arch"]  # type: ignore[return-value]
        requested = _state["requested"] or os.environ.get("NERFPRUNE_TI_ARCH", "auto")
        if requested not in ARCHES:
            raise BackendError(
                f"NERFPRUNE_TI_ARCH='{requested}' is not a Taichi backend: choose one of {', '.join(ARCHES)}"
            )
        if requested == "cuda":
            _require_cuda("Taichi backend 'cuda' (NERFPRUNE_TI_ARCH or set_arch)")
        os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import taichi as ti
        kwargs: dict[str, object] = {"offline_cache": True, "default_fp": ti.f32}
        if "TI_CPU_MAX_NUM_THREADS" not in os.environ:
            import torch

            kwargs["cpu_max_num_threads"] = max(1, torch.get_num_threads())
        if requested == "auto":
            requested = _detect_gpu_backend()
        arch = {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan, "metal": ti.metal}[requested]
        # ti.init prints its arch line on stdout; keep library output clean.
        with contextlib.redirect_stdout(io.StringIO()):
            ti.init(arch=arch, **kwargs)
        atexit.register(ti.reset)
        arch_name = str(ti.lang.impl.current_cfg().arch.name)
        if requested in ("cuda", "vulkan", "metal") and arch_name != requested:
            raise BackendError(f"Taichi could not start its '{requested}' backend here (it fell back to '{arch_name}')")
        _state["arch"] = arch_name
        return _state["arch"]  # type: ignore[return-value]


def torch_device(name: str = "auto"):
    """The torch device (`torch.device`) whose tensors Taichi's kernels read: `auto`, `cpu` or `cuda`.

    `auto` follows Taichi's backend: the one it runs on, else the one requested (`set_arch`,
    `NERFPRUNE_TI_ARCH`), and for `auto` there CUDA when torch sees a GPU, else the CPU. Vulkan
    and Metal read host memory, so they pair with the CPU. CI has no GPU: `auto` is the CPU there.
    """
    import torch

    if name not in DEVICES:
        raise BackendError(f"unknown device '{name}': choose one of {', '.join(DEVICES)}")
    what = f"torch device '{name}'"
    if name == "auto":
        arch = _state["arch"] or _state["requested"] or os.environ.get("NERFPRUNE_TI_ARCH", "auto")
        if arch == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            name = "cuda" if arch == "cuda" else "cpu"
            what = f"Taichi backend '{arch}' (NERFPRUNE_TI_ARCH or set_arch)"
    if name == "cuda":
        _require_cuda(what)
    return torch.device(name)


SERIAL_BELOW = 1 << 16  # launches over fewer items (samples, points) run on the launching thread


def serial_launch(items: int) -> bool:
    """Whether a launch over `items` samples or points should run its loop on the calling thread.

    Why: a training block (64 rays x 128 samples) is microseconds of work; waking Taichi's
    thread pool for it costs more, and on 2 cores its threads take the core from the torch
    work running beside it. Large launches (whole images) still use all threads. On a GPU
    a serialised loop would run on one GPU thread: never there.
    """
    return items < SERIAL_BELOW and _state["arch"] in CPU_ARCHES


def check_devices(kernel, args: tuple) -> None:
    """Raise `BackendError` if a tensor in `args` is not on the device Taichi's backend reads.

    Vulkan and Metal are not checked (they copy host memory in and out by design).
    """
    arch = _state["arch"]
    want = "cuda" if arch == "cuda" else "cpu" if arch in CPU_ARCHES else None
    if want is None:
        return
    for arg in args:
        device = getattr(arg, "device", None)
        if device is not None and getattr(device, "type", device) != want:
            raise BackendError(
                f"{getattr(kernel, '__name__', 'kernel')}: a tensor argument is on '{device}' but Taichi runs on "
                f"'{arch}', which reads {want} tensors only: put the model and its inputs on '{want}' "
                f"(torch_device('auto') gives it), or start Taichi on the backend that matches them"
            )


def launch(kernel, *args) -> None:
    """Run a Taichi kernel, one launch at a time across Python threads.

    Training may run two blocks of rays on two threads (`nerfprune.loss`); the
    torch work runs in parallel, the (short) kernel launches take turns. Tensors on a device
    other than the backend's are refused (`check_devices`) rather than copied.
    """
    check_devices(kernel, args)
    with _launch_lock:
        kernel(*args)
