"""Taichi start-up: one lazy `ti.init`, never at import time.

The backend is chosen once, at the first kernel call:
- `NERFPRUNE_TI_ARCH` (or `set_arch()`, which the CLI's `--ti-arch` flag calls)
  picks one of `auto`, `cpu`, `cuda`, `vulkan`, `metal`; default `auto` takes
  CUDA when torch sees a GPU, Metal on macOS, else the CPU.
- CPU threads follow `TI_CPU_MAX_NUM_THREADS`, else torch's thread count, so
  Taichi's and torch's thread pools have the same size (they take turns).
- The offline cache stays on; `ti.reset` is registered at exit because the cache
  is only written then (see shared notes on Taichi).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import threading
import warnings

ARCHES = ("auto", "cpu", "cuda", "vulkan", "metal")
_lock = threading.Lock()
_launch_lock = threading.RLock()  # Taichi's launch path is not documented as thread-safe: one launch at a time
_state: dict[str, object] = {"arch": None, "requested": None}


def set_arch(name: str) -> None:
    """Choose the backend before the first kernel runs (`auto`, `cpu`, `cuda`, ...)."""
    if name not in ARCHES:
        raise ValueError(f"unknown Taichi backend '{name}': choose one of {', '.join(ARCHES)}")
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
            raise ValueError(
                f"NERFPRUNE_TI_ARCH='{requested}' is not a Taichi backend: choose one of {', '.join(ARCHES)}"
            )
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
        _state["arch"] = str(ti.lang.impl.current_cfg().arch.name)
        return _state["arch"]  # type: ignore[return-value]


SERIAL_BELOW = 1 << 16  # launches over fewer items (samples, points) run on the launching thread


def serial_launch(items: int) -> bool:
    """Whether a launch over `items` samples or points should run its loop on the calling thread.

    Why: a training block (64 rays x 128 samples) is microseconds of work; waking Taichi's
    thread pool for it costs more, and on 2 cores its threads take the core from the torch
    work running beside it. Large launches (whole images) still use all threads.
    """
    return items < SERIAL_BELOW


def launch(kernel, *args) -> None:
    """Run a Taichi kernel, one launch at a time across Python threads.

    Training may run two blocks of rays on two threads (`nerfprune.loss`); the
    torch work runs in parallel, the (short) kernel launches take turns.
    """
    with _launch_lock:
        kernel(*args)
