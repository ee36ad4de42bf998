"""Rays -> samples -> field -> compositing: the glue of NeRF rendering.

Every step of rendering math goes through one `RenderMath` object
(`taichi_kernels.backend`): the Taichi kernels by default, or the slow,
obviously-correct torch references (`taichi_kernels.reference`, the way the
original NeRF code does it) for comparison and benchmarking. The caller passes
that object in (the trainer, the profiler); `cfg.backend` names it otherwise.
The field (MLP) runs through `nerfprune.field.runners`. Ray directions are
unnormalised with camera-space z = -1, so sample depths t are z-depths in
[near, far] (see `nerfprune.scene.types`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nerfprune.config import check_choice, check_fields, check_range
from nerfprune.errors import ConfigError
from nerfprune.field.config import MLPConfig
from nerfprune.field.density import activate_density
from nerfprune.field.mlp import NerfModel
from nerfprune.field.runners import infer_field, run_field
from nerfprune.scene.types import Cameras
from taichi_kernels.backend import BACKENDS, RenderMath

MAX_SAMPLES = 4096  # samples per ray, coarse or fine (the original NeRF uses 64 + 128)


@dataclass
class RenderConfig:
    """How rays are sampled and composited."""

    n_coarse: int = 64  # stratified samples per ray for the coarse network
    n_fine: int = 64  # importance samples per ray for the fine network (0: coarse only)
    lindisp: bool = False  # sample linearly in disparity instead of depth
    chunk: int = 65536  # points per MLP call: bounds memory for large batches and images
    ray_chunk: int = 16384  # rays per step when rendering whole images (a 100x100 view in one step: each step has a fixed cost)
    last_delta: float = 1e10  # length of the last interval of a ray (original NeRF: 1e10)
    early_stop_eps: float = 1e-4  # inference only: stop a ray once transmittance < eps (0: never)
    backend: str = "taichi"  # rendering math: "taichi" (kernels, default) or "torch" (the pure-torch references)
    # inference: samples per ray per marching round, rays whose transmittance fell below early_stop_eps stop
    # (0: all at once; rounds saved < 1 % of the MLP samples on every model measured and cost 5-25 % of the time)
    round_samples: int = 0
    skip_empty: bool = True  # sample only where the model's occupancy grid is occupied (models trained with an occupancy grid)

    def validate(self) -> None:
        """Types and ranges; sizes bounded (docs/validation.md) so no config asks for absurd memory or time."""
        check_fields(self)
        check_choice("backend", self.backend, BACKENDS, "render backend")
        check_range("n_coarse", self.n_coarse, 1, MAX_SAMPLES)
        check_range("n_fine", self.n_fine, 0, MAX_SAMPLES)
        check_range("chunk", self.chunk, 1, 2**24)
        check_range("ray_chunk", self.ray_chunk, 1, 2**20)
        if self.ray_chunk * (self.n_coarse + self.n_fine) > 2**27:  # training's bound on a step too
            raise ConfigError(f"ray_chunk x (n_coarse + n_fine) must be <= 2^27 samples per rendering step, got "
                              f"{self.ray_chunk} x {self.n_coarse + self.n_fine}")
        check_range("last_delta", self.last_delta, 0.0, 1e30, low_open=True)
        check_range("early_stop_eps", self.early_stop_eps, 0.0, 1.0, high_open=True)
        check_range("round_samples", self.round_samples, 0, MAX_SAMPLES)

    def math(self) -> RenderMath:
        """The rendering-math object `backend` names."""
        self.validate()
        return BACKENDS[self.backend]


def field_at_samples(
    model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
    dir_enc: torch.Tensor, cfg: RenderConfig, math: RenderMath, mlp: MLPConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate network `which` at samples t [B, S] of rays (origins, dirs [B, 3]; dir_enc [B, Dd]).

    Returns density sigma [B, S] (the model's density activation applied) and colour rgb [B, S, 3].
    """
    b, s = t.shape
    if not torch.is_grad_enabled():  # rendering: direction term once per ray, only the encoding columns read
        ray_index = torch.arange(b, device=t.device).repeat_interleave(s)  # [B*S]
        sigma_raw, rgb = infer_field(model.network(which), origins, dirs, t.reshape(-1), ray_index, dir_enc,
                                     model.field_cfg.pos_frequencies, math, cfg.chunk, mlp, features=model.features)
        return activate_density(sigma_raw, model.field_cfg.density_activation).reshape(b, s), rgb.reshape(b, s, 3)
    points = origins[:, None, :] + t[..., None] * dirs[:, None, :]  # [B, S, 3]
    pos_enc = model.encode_points(points.reshape(-1, 3), math.positional_encoding)  # [B*S, P]
    sigma_raw, rgb = run_field(model.network(which), pos_enc, dir_enc, s, cfg.chunk, mlp)
    return activate_density(sigma_raw, model.field_cfg.density_activation).reshape(b, s), rgb.reshape(b, s, 3)


def _shade(
    model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
    dir_enc: torch.Tensor, ray_norm: torch.Tensor, background: torch.Tensor, cfg: RenderConfig,
    math: RenderMath, mlp: MLPConfig, training: bool,
) -> dict[str, torch.Tensor]:
    """Evaluate one network at samples t [B, S] and composite.

    Rendering (not training) with early termination marches the rays in rounds (`nerfprune.marching`):
    the MLP runs only for rays still visible; the image is the one of evaluating every sample.
    """
    if not training and cfg.early_stop_eps > 0 and cfg.round_samples > 0:
        from nerfprune.marching import packed_from_padded
        from nerfprune.packed_renderer import shade_packed

        samples = packed_from_padded(t.contiguous(), cfg.last_delta)
        (colour, depth, opacity, weights), n = shade_packed(model, which, origins, dirs, samples, dir_enc, ray_norm,
                                                            background, cfg, math, mlp, training)
        return {"rgb": colour, "depth": depth, "opacity": opacity, "weights": weights.reshape(t.shape), "samples": n}
    sigma, rgb = field_at_samples(model, which, origins, dirs, t, dir_enc, cfg, math, mlp)
    colour, depth, opacity, weights = math.composite(
        sigma.contiguous(), rgb.contiguous(), t.contiguous(), ray_norm, background,
        last_delta=cfg.last_delta, early_stop_eps=0.0 if training else cfg.early_stop_eps,
    )
    return {"rgb": colour, "depth": depth, "opacity": opacity, "weights": weights, "samples": t.numel()}


def render_rays(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor,
    near: float, far: float, cfg: RenderConfig, training: bool = False, generator: torch.Generator | None = None,
    *, math: RenderMath | None = None, mlp: MLPConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Render B rays: origins [B, 3], dirs [B, 3] (camera z = -1), background [B, 3] or [3].

    Returns "rgb" [B, 3], "depth" [B], "opacity" [B] of the fine pass (coarse when
    n_fine = 0 or the model has no fine network) and "rgb_coarse" [B, 3].
    Samples are jittered only when `training`. `math` defaults to `cfg.math()`, `mlp` to the model's `mlp`.
    A model with an occupancy grid (`model.grid`) samples only in occupied space when `cfg.skip_empty`
    (`nerfprune.packed_renderer`; its output also has "samples", the MLP points evaluated).
    """
    math = math or cfg.math()
    mlp = mlp or model.mlp
    grid = getattr(model, "grid", None)
    if grid is not None and cfg.skip_empty:
        from nerfprune.packed_renderer import render_rays_packed

        return render_rays_packed(model, origins, dirs, background, near, far, cfg, grid, training, generator, math, mlp)
    b = origins.shape[0]
    ray_norm = dirs.norm(dim=-1)  # [B]
    dir_enc = math.positional_encoding(dirs / ray_norm[:, None], model.field_cfg.dir_frequencies)  # [B, Dd]
    t_coarse = math.stratified(b, cfg.n_coarse, near, far, training, lindisp=cfg.lindisp, generator=generator,
                               device=origins.device)
    coarse = _shade(model, "coarse", origins, dirs, t_coarse, dir_enc, ray_norm, background, cfg, math, mlp, training)
    out = {"rgb_coarse": coarse["rgb"], "rgb": coarse["rgb"], "depth": coarse["depth"], "opacity": coarse["opacity"],
           "samples": coarse["samples"]}
    if cfg.n_fine > 0 and model.fine is not None:
        t_all = math.importance(t_coarse, coarse["weights"].detach(), cfg.n_fine, training, generator=generator)
        fine = _shade(model, "fine", origins, dirs, t_all, dir_enc, ray_norm, background, cfg, math, mlp, training)
        out.update(rgb=fine["rgb"], depth=fine["depth"], opacity=fine["opacity"], samples=out["samples"] + fine["samples"])
    return out


@torch.no_grad()
def render_view(
    model: NerfModel, cameras: Cameras, index: int, cfg: RenderConfig,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0), *, math: RenderMath | None = None,
    mlp: MLPConfig | None = None,
) -> dict[str, np.ndarray]:
    """Render view `index` of `cameras` -> "rgb" [H, W, 3], "depth" [H, W], "opacity" [H, W] (numpy float32)
    and "mlp_samples_per_ray" (float: MLP evaluations per pixel, coarse + fine).

    The rays are made on the model's device (`NerfModel.device`); the images come back to the host.
    """
    from nerfprune.scene.validate import validate_camera

    math = math or cfg.math()
    device = model.device
    w, h = int(cameras.width[index]), int(cameras.height[index])
    dist = None if cameras.distortion is None else torch.from_numpy(cameras.distortion[index]).to(device)
    validate_camera(cameras.c2w[index], float(cameras.fx[index]), float(cameras.fy[index]), float(cameras.cx[index]),
                    float(cameras.cy[index]), w, h, cameras.near, cameras.far, where=f"camera {index}",
                    distortion=None if cameras.distortion is None else cameras.distortion[index])
    origins, dirs = math.view_rays(
        torch.from_numpy(np.ascontiguousarray(cameras.c2w[index])).to(device), float(cameras.fx[index]),
        float(cameras.fy[index]), float(cameras.cx[index]), float(cameras.cy[index]), w, h, dist,
    )
    bg = torch.tensor(background, dtype=torch.float32, device=device)
    parts: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "opacity": []}
    samples = 0
    for start in range(0, origins.shape[0], cfg.ray_chunk):
        out = render_rays(model, origins[start:start + cfg.ray_chunk], dirs[start:start + cfg.ray_chunk], bg,
                          cameras.near, cameras.far, cfg, training=False, math=math, mlp=mlp)
        for key in parts:
            parts[key].append(out[key])
        samples += out["samples"]
    return {
        "rgb": torch.cat(parts["rgb"]).reshape(h, w, 3).clamp(0, 1).cpu().numpy(),
        "depth": torch.cat(parts["depth"]).reshape(h, w).cpu().numpy(),
        "opacity": torch.cat(parts["opacity"]).reshape(h, w).cpu().numpy(),
        "mlp_samples_per_ray": samples / max(h * w, 1),  # MLP evaluations per pixel, coarse + fine
    }
