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
from nerfprune.field.density import activate_density
from nerfprune.field.mlp import NerfModel
from nerfprune.field.runners import infer_field, run_network
from nerfprune.occupancy import OccupancyGrid
from nerfprune.marching import shade_in_rounds
from taichi_kernels.backend import RenderMath


MIN_COARSE = 4  # coarse samples of a ray that crosses any occupied space (importance sampling needs >= 3)


def field_at(model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
             ray_index: torch.Tensor, dir_enc: torch.Tensor, chunk: int, math: RenderMath, mlp: MLPConfig,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Density sigma [n] (the model's density activation applied) and colour rgb [n, 3] of network `which` at n samples (t [n] on rays ray_index [n])."""
    net = model.network(which)
    activation = model.field_cfg.density_activation
    if not torch.is_grad_enabled():  # rendering: direction term once per ray, only the encoding columns read
        sigma_raw, rgb = infer_field(net, origins, dirs, t, ray_index, dir_enc, model.field_cfg.pos_frequencies, math,
                                     chunk, mlp, features=model.features)
        return activate_density(sigma_raw, activation), rgb
    points = origins[ray_index] + t[:, None] * dirs[ray_index]  # [n, 3]
    pos_enc = model.encode_points(points, math.positional_encoding)  # [n, P]
    if (mlp.backward == "handwritten" and mlp.precision == "fp32" and hasattr(net, "forward_rays")
            and torch.is_grad_enabled()):  # training: the hand-written gradient, direction term once per ray
        sigma_raw, rgb = net.forward_rays(pos_enc, dir_enc, ray_index)
        return activate_density(sigma_raw[:, 0], activation), rgb
    sigma_raw, rgb = run_network(net, pos_enc, dir_enc[ray_index], chunk, mlp.precision)
    return activate_density(sigma_raw, activation), rgb


def shade_packed(model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, samples, dir_enc: torch.Tensor,
                 ray_norm: torch.Tensor, background: torch.Tensor, cfg, math: RenderMath, mlp: MLPConfig, training: bool,
                 ) -> tuple[tuple[torch.Tensor, ...], int]:
    """Evaluate network `which` at packed samples and composite: ((colour, depth, opacity, weights), MLP points).

    When rendering (not training) with early termination, the field runs in rounds
    (`nerfprune.marching`), only for rays still visible.
    """
    eps = 0.0 if training else cfg.early_stop_eps

    def shade(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return field_at(model, which, origins, dirs, samples.t.index_select(0, index),
                        samples.ray_index.index_select(0, index), dir_enc, cfg.chunk, math, mlp)

    if training:
        sigma, rgb = field_at(model, which, origins, dirs, samples.t, samples.ray_index, dir_enc, cfg.chunk, math, mlp)
        evaluated = samples.t.numel()
    else:
        sigma, rgb, evaluated = shade_in_rounds(shade, samples, ray_norm, eps, cfg.round_samples)
    out = math.composite_packed(sigma, rgb, samples.t, samples.dt, samples.offsets, samples.counts, ray_norm, background,
                                early_stop_eps=eps)
    return out, evaluated


def render_rays_packed(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor, near: float, far: float,
    cfg, grid: OccupancyGrid, training: bool, generator: torch.Generator | None, math: RenderMath, mlp: MLPConfig,
) -> dict[str, torch.Tensor]:
    """`render_rays` with samples only where `grid` is occupied; same outputs, plus "samples" (MLP points, int)."""
    ray_norm = dirs.norm(dim=-1)  # [B]
    dir_enc = math.positional_encoding(dirs / ray_norm[:, None], model.field_cfg.dir_frequencies)  # [B, Dd]
    # the dense sampler's spacing inside occupied space: fewer coarse samples where a ray crosses little of it
    coarse = grid.sample(origins, dirs, near, far, cfg.n_coarse, training, generator, last_delta=cfg.last_delta,
                         min_samples=min(cfg.n_coarse, MIN_COARSE))
    (colour, depth, opacity, weights), n = shade_packed(model, "coarse", origins, dirs, coarse, dir_enc, ray_norm,
                                                        background, cfg, math, mlp, training)
    out = {"rgb_coarse": colour, "rgb": colour, "depth": depth, "opacity": opacity, "samples": n}
    if cfg.n_fine > 0 and model.fine is not None and coarse.t.numel():
        fine = grid.sample_fine(origins, dirs, near, far, coarse, weights.detach(), cfg.n_fine, training, generator,
                                last_delta=cfg.last_delta)
        (colour, depth, opacity, _), n = shade_packed(model, "fine", origins, dirs, fine, dir_enc, ray_norm, background,
                                                      cfg, math, mlp, training)
        out.update(rgb=colour, depth=depth, opacity=opacity, samples=out["samples"] + n)
    return out
