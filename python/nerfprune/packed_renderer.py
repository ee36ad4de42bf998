"""Rendering through an occupancy grid: samples only in occupied space, packed (a variable count per ray).

The same coarse + fine architecture as `nerfprune.renderer.render_rays`, on the packed samples of
`nerfprune.occupancy.OccupancyGrid`: stratified coarse samples over each ray's occupied length, the
coarse network and packed compositing, importance samples from the coarse weights (again only in
occupied space), the fine network and packed compositing. A ray that meets no occupied cell has no
samples: it takes the background colour without a single MLP call. With an all-occupied grid the
samples, and so the images, are those of `render_rays` (tests/test_packed_renderer.py).

Shapes: B rays; M packed samples, ray r owning [offsets[r], offsets[r] + counts[r]).
"""

from __future__ import annotations

import torch

from nerfprune.field.config import MLPConfig
from nerfprune.field.mlp import NerfModel
from nerfprune.field.runners import run_network
from nerfprune.occupancy import OccupancyGrid
from taichi_kernels import packed
from taichi_kernels.backend import RenderMath


def _shade_packed(model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, samples, dir_enc: torch.Tensor,
                  chunk: int, math: RenderMath, mlp: MLPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Density sigma [M] (ReLU applied) and colour rgb [M, 3] of network `which` at packed samples."""
    ri = samples.ray_index  # [M]
    points = origins[ri] + samples.t[:, None] * dirs[ri]  # [M, 3]
    pos_enc = math.positional_encoding(points, model.field_cfg.pos_frequencies)  # [M, P]
    sigma_raw, rgb = run_network(model.network(which), pos_enc, dir_enc[ri], chunk, mlp.precision)
    return torch.relu(sigma_raw), rgb


def render_rays_packed(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor, near: float, far: float,
    cfg, grid: OccupancyGrid, training: bool, generator: torch.Generator | None, math: RenderMath, mlp: MLPConfig,
) -> dict[str, torch.Tensor]:
    """`render_rays` with samples only where `grid` is occupied; same outputs, plus "samples" (MLP points, int)."""
    ray_norm = dirs.norm(dim=-1)  # [B]
    dir_enc = math.positional_encoding(dirs / ray_norm[:, None], model.field_cfg.dir_frequencies)  # [B, Dd]
    eps = 0.0 if training else cfg.early_stop_eps
    coarse = grid.sample(origins, dirs, near, far, cfg.n_coarse, training, generator, last_delta=cfg.last_delta)
    sigma, rgb = _shade_packed(model, "coarse", origins, dirs, coarse, dir_enc, cfg.chunk, math, mlp)
    colour, depth, opacity, weights = packed.composite(sigma, rgb, coarse.t, coarse.dt, coarse.offsets, coarse.counts,
                                                       ray_norm, background, early_stop_eps=eps)
    out = {"rgb_coarse": colour, "rgb": colour, "depth": depth, "opacity": opacity, "samples": int(coarse.t.numel())}
    if cfg.n_fine > 0 and model.fine is not None and coarse.t.numel():
        fine = grid.sample_fine(origins, dirs, near, far, coarse, weights.detach(), cfg.n_fine, training, generator,
                                last_delta=cfg.last_delta)
        sigma, rgb = _shade_packed(model, "fine", origins, dirs, fine, dir_enc, cfg.chunk, math, mlp)
        colour, depth, opacity, _ = packed.composite(sigma, rgb, fine.t, fine.dt, fine.offsets, fine.counts, ray_norm,
                                                     background, early_stop_eps=eps)
        out.update(rgb=colour, depth=depth, opacity=opacity, samples=out["samples"] + int(fine.t.numel()))
    return out
