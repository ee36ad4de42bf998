"""One rendering-math interface, two implementations: the Taichi kernels and their torch references.

`RenderMath` is the contract the renderer, the trainer and the profiler program against:
ray generation, view rays, stratified and importance sampling, compositing and positional
encoding, with the shapes and conventions of `taichi_kernels.reference` (read that module
for the maths). `TAICHI` runs the kernels of this package; `TORCH` runs the references (the
original NeRF code's way, on any torch device). `BACKENDS` is the registry the CLI's
`--backend` choices come from; `render_math(name)` is the one place a name becomes an object.

Adding a kernel: write it in its module here, its torch twin in `reference.py`, a method on
`RenderMath` and on both implementations below, and a test comparing the two.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import torch

from taichi_kernels import reference, reference_grid


@runtime_checkable
class RenderMath(Protocol):
    """The rendering math of NeRF, as used by `nerfprune.renderer` (see `taichi_kernels.reference`)."""

    name: str  # registry name: "taichi" or "torch"

    def generate_rays(self, c2w, intrinsics, view, row, col, distortion=None, pixel_offset: float = 0.5
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """origins [B, 3], unnormalised directions [B, 3] (camera z = -1) of pixels (view, row, col)."""

    def view_rays(self, c2w, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                  distortion=None, pixel_offset: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """All rays of one view, row-major: origins [H*W, 3], directions [H*W, 3]."""

    def stratified(self, n_rays: int, n_samples: int, near: float, far: float, perturb: bool,
                   lindisp: bool = False, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
        """Sorted z-depths t [B, S] in [near, far] on `device`, jittered when `perturb` (drawn on the generator's device)."""

    def importance(self, t: torch.Tensor, weights: torch.Tensor, n_fine: int, perturb: bool,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Coarse and `n_fine` importance samples merged and sorted [B, S + n_fine]."""

    def composite(self, sigma, rgb, t, ray_norm, background, last_delta: float = 1e10,
                  early_stop_eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """colour [B, 3], depth [B], opacity [B], weights [B, S] (differentiable in sigma and rgb)."""

    def composite_packed(self, sigma, rgb, t, dt, offsets, counts, ray_norm, background, early_stop_eps: float = 0.0
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Packed samples (ray r owns [offsets[r], offsets[r] + counts[r])): colour [B, 3], depth [B], opacity [B],
        weights [M]; dt [M] is each sample's z-depth step (see `taichi_kernels.packed.composite`)."""

    def positional_encoding(self, x: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                            out: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, D] -> [N, D (1 + 2 n_frequencies)] (the original NeRF's gamma); with `columns` [F'] only those
        features, in that order ([N, F']); written into `out` when given."""

    def positional_encoding_at(self, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
                               ray_index: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                               out: torch.Tensor | None = None) -> torch.Tensor:
        """`positional_encoding` of the sample points origins[r] + t dirs[r] (rays [B, 3], t [N], ray index [N])."""


class TorchMath:
    """The torch references: slow, obviously correct, differentiable everywhere, any device."""

    name = "torch"
    help = "the pure-torch references (the original NeRF code's way)"
    generate_rays = staticmethod(reference.generate_rays)
    view_rays = staticmethod(reference.view_rays)
    stratified = staticmethod(reference.stratified)
    importance = staticmethod(reference.importance)
    composite = staticmethod(reference.composite)
    composite_packed = staticmethod(reference_grid.composite_packed)
    positional_encoding = staticmethod(reference.positional_encoding)
    positional_encoding_at = staticmethod(reference.positional_encoding_at)


def _kernel(module: str, function: str):
    """`taichi_kernels.<module>.<function>`, imported at its first call (importing taichi takes a while)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"taichi_kernels.{module}"), function)(*args, **kwargs)

    call.__name__, call.__doc__ = function, f"taichi_kernels.{module}.{function} (imported at the first call)"
    return staticmethod(call)


class TaichiMath:
    """The Taichi kernels (imported, and Taichi initialised, at the first call)."""

    name = "taichi"
    help = "Taichi kernels (default; CPU here, CUDA on a GPU)"
    generate_rays = _kernel("rays", "generate_rays")
    view_rays = _kernel("rays", "view_rays")
    stratified = _kernel("sampling", "stratified")
    importance = _kernel("sampling", "importance")
    composite = _kernel("compositing", "composite")
    composite_packed = _kernel("packed", "composite")
    _encode = _kernel("encoding", "positional_encoding")
    _encode_at = _kernel("encoding", "positional_encoding_at")

    def positional_encoding(self, x: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                            out: torch.Tensor | None = None) -> torch.Tensor:
        """The Taichi kernel has no backward: inputs that need a gradient take the reference."""
        if x.requires_grad:
            return reference.positional_encoding(x, n_frequencies, columns=columns, out=out)
        return self._encode(x, n_frequencies, columns=columns, out=out)

    def positional_encoding_at(self, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
                               ray_index: torch.Tensor, n_frequencies: int, *, columns: torch.Tensor | None = None,
                               out: torch.Tensor | None = None) -> torch.Tensor:
        """As `positional_encoding`: inputs that need a gradient take the reference."""
        if origins.requires_grad or dirs.requires_grad or t.requires_grad:
            return reference.positional_encoding_at(origins, dirs, t, ray_index, n_frequencies, columns=columns, out=out)
        return self._encode_at(origins, dirs, t, ray_index, n_frequencies, columns=columns, out=out)


TAICHI = TaichiMath()
TORCH = TorchMath()
BACKENDS: dict[str, RenderMath] = {TAICHI.name: TAICHI, TORCH.name: TORCH}


def render_math(name: str) -> RenderMath:
    """The backend registered as `name`; a ValueError lists the choices."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown rendering-math backend '{name}': choose one of {', '.join(BACKENDS)}") from None
