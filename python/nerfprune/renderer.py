"""Rays -> samples -> field -> compositing: the glue of NeRF rendering.

The rendering math runs in Taichi kernels (`taichi_kernels`) by default; the
`torch` backend runs the same steps with the slow, obviously-correct torch
references (`nerfprune._reference`) — the way the original NeRF code does it —
for comparison and benchmarking. Both take and return torch tensors.
Ray directions are unnormalised with camera-space z = -1, so sample depths t
are z-depths in [near, far] (see `nerfprune.scene.types`).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import numpy as np
import torch

from nerfprune.errors import ConfigError
from nerfprune.field import NerfMLP, NerfModel
from nerfprune.scene.types import Cameras

BACKENDS = ("taichi", "torch")
PRECISIONS = ("fp32", "bf16")
MLP_BACKWARDS = ("fused", "autograd")


@dataclass
class RenderConfig:
    """How rays are sampled and composited."""

    n_coarse: int = 64  # stratified samples per ray for the coarse network
    n_fine: int = 64  # importance samples per ray for the fine network (0: coarse only)
    lindisp: bool = False  # sample linearly in disparity instead of depth
    chunk: int = 65536  # points per MLP call: bounds memory for large batches and images
    ray_chunk: int = 4096  # rays per step when rendering whole images
    last_delta: float = 1e10  # length of the last interval of a ray (original NeRF: 1e10)
    early_stop_eps: float = 1e-4  # inference only: stop a ray once transmittance < eps (0: never)
    backend: str = "taichi"  # rendering-math backend: "taichi" (kernels) or "torch" (references)
    mlp_precision: str = "fp32"  # "bf16": the MLP's matrix products in bfloat16 (torch.autocast; fast on CPUs with AMX); weights stay fp32
    mlp_backward: str = "fused"  # training gradient of a dense fp32 MLP: "fused" (hand-written, direction term once per ray) or "autograd" (as the original code)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown render backend '{self.backend}': choose one of {', '.join(BACKENDS)}")
        if self.mlp_backward not in MLP_BACKWARDS:
            raise ConfigError(f"unknown MLP backward '{self.mlp_backward}': choose one of {', '.join(MLP_BACKWARDS)}")
        if self.mlp_precision not in PRECISIONS:
            raise ConfigError(f"unknown MLP precision '{self.mlp_precision}': choose one of {', '.join(PRECISIONS)}")
        if self.n_coarse < 1 or self.n_fine < 0 or self.chunk < 1 or self.ray_chunk < 1:
            raise ConfigError("n_coarse, chunk and ray_chunk must be >= 1 and n_fine >= 0")


def math_backend(name: str) -> ModuleType | SimpleNamespace:
    """A namespace with generate_rays, view_rays, stratified, importance, composite."""
    if name == "torch":
        return importlib.import_module("nerfprune._reference")
    if name == "taichi":
        return _taichi_math()
    raise ConfigError(f"unknown render backend '{name}': choose one of {', '.join(BACKENDS)}")


@functools.cache
def _taichi_math() -> SimpleNamespace:
    """The Taichi kernels under the names of `nerfprune._reference` (imported on first use)."""
    from taichi_kernels import compositing, rays, sampling

    return SimpleNamespace(
        generate_rays=rays.generate_rays, view_rays=rays.view_rays,
        stratified=sampling.stratified, importance=sampling.importance, composite=compositing.composite,
    )


def run_network(
    net: torch.nn.Module, pos_enc: torch.Tensor, dir_enc: torch.Tensor, chunk: int, precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate `net` on [M, P] / [M, D] inputs in chunks of `chunk` points -> float32 ([M], [M, 3]).

    precision "bf16" runs the network under `torch.autocast(bfloat16)`: the
    matrix products round their inputs to bfloat16 (8 significant bits) and
    accumulate in float32; the outputs are cast back to float32.
    """
    sig, col = [], []
    for start in range(0, pos_enc.shape[0], chunk):
        with torch.autocast(pos_enc.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            s, c = net(pos_enc[start:start + chunk], dir_enc[start:start + chunk])
        sig.append(s.float())
        col.append(c.float())
    return _joined(sig, col, pos_enc)


def _joined(sig: list[torch.Tensor], col: list[torch.Tensor], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk outputs ([n, 1], [n, 3]) -> ([N], [N, 3]); no copy for a single chunk."""
    if len(sig) <= 1:
        return (sig[0][:, 0], col[0]) if sig else (like.new_zeros(0), like.new_zeros(0, 3))
    return torch.cat(sig)[:, 0], torch.cat(col)


def field_at_samples(
    model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
    dir_enc: torch.Tensor, cfg: RenderConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate network `which` at samples t [B, S] of rays (origins, dirs [B, 3]; dir_enc [B, Dd]).

    Returns density sigma [B, S] (ReLU applied) and colour rgb [B, S, 3]. When gradients
    are being recorded for a dense fp32 `NerfMLP`, the hand-written backward of
    `nerfprune.fused_mlp` runs (unless cfg.mlp_backward = "autograd"); otherwise the
    network's own forward on per-sample direction encodings, as the original code.
    """
    b, s = t.shape
    net = model.network(which)
    points = origins[:, None, :] + t[..., None] * dirs[:, None, :]  # [B, S, 3]
    pos_enc = model.encode_points(points.reshape(-1, 3), cfg.backend)  # [B*S, P]
    fused = (cfg.mlp_backward == "fused" and cfg.mlp_precision == "fp32" and type(net) is NerfMLP
             and torch.is_grad_enabled())
    if fused:
        sigma_raw, rgb = run_network_rays(net, pos_enc, dir_enc, s, cfg.chunk)
    else:
        dir_rep = dir_enc[:, None, :].expand(b, s, dir_enc.shape[-1]).reshape(b * s, -1)  # [B*S, Dd]
        sigma_raw, rgb = run_network(net, pos_enc, dir_rep, cfg.chunk, cfg.mlp_precision)
    return torch.relu(sigma_raw).reshape(b, s), rgb.reshape(b, s, 3)


def run_network_rays(
    net: NerfMLP, pos_enc: torch.Tensor, dir_enc: torch.Tensor, samples: int, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`fused_mlp.fused_forward` on whole rays, about `chunk` points per call -> ([B*S], [B*S, 3])."""
    from nerfprune.fused_mlp import fused_forward

    rays_per_call = max(1, chunk // max(samples, 1))
    sig, col = [], []
    for start in range(0, dir_enc.shape[0], rays_per_call):
        stop = min(start + rays_per_call, dir_enc.shape[0])
        s, c = fused_forward(net, pos_enc[start * samples:stop * samples], dir_enc[start:stop], samples)
        sig.append(s)
        col.append(c)
    return _joined(sig, col, pos_enc)


def _shade(
    model: NerfModel, which: str, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor,
    dir_enc: torch.Tensor, ray_norm: torch.Tensor, background: torch.Tensor, cfg: RenderConfig,
    math: ModuleType, training: bool,
) -> dict[str, torch.Tensor]:
    """Evaluate one network at samples t [B, S] and composite."""
    sigma, rgb = field_at_samples(model, which, origins, dirs, t, dir_enc, cfg)
    colour, depth, opacity, weights = math.composite(
        sigma.contiguous(), rgb.contiguous(), t.contiguous(), ray_norm, background,
        last_delta=cfg.last_delta, early_stop_eps=0.0 if training else cfg.early_stop_eps,
    )
    return {"rgb": colour, "depth": depth, "opacity": opacity, "weights": weights}


def render_rays(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor,
    near: float, far: float, cfg: RenderConfig, training: bool = False, generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Render B rays: origins [B, 3], dirs [B, 3] (camera z = -1), background [B, 3] or [3].

    Returns "rgb" [B, 3], "depth" [B], "opacity" [B] of the fine pass (coarse when
    n_fine = 0 or the model has no fine network) and "rgb_coarse" [B, 3].
    Samples are jittered only when `training`.
    """
    math = math_backend(cfg.backend)
    b = origins.shape[0]
    ray_norm = dirs.norm(dim=-1)  # [B]
    dir_enc = model.encode_dirs(dirs / ray_norm[:, None])  # [B, Dd]
    t_coarse = math.stratified(b, cfg.n_coarse, near, far, training, lindisp=cfg.lindisp, generator=generator)
    coarse = _shade(model, "coarse", origins, dirs, t_coarse, dir_enc, ray_norm, background, cfg, math, training)
    out = {"rgb_coarse": coarse["rgb"], "rgb": coarse["rgb"], "depth": coarse["depth"], "opacity": coarse["opacity"]}
    if cfg.n_fine > 0 and model.fine is not None:
        t_all = math.importance(t_coarse, coarse["weights"].detach(), cfg.n_fine, training, generator=generator)
        fine = _shade(model, "fine", origins, dirs, t_all, dir_enc, ray_norm, background, cfg, math, training)
        out.update(rgb=fine["rgb"], depth=fine["depth"], opacity=fine["opacity"])
    return out


@torch.no_grad()
def render_view(
    model: NerfModel, cameras: Cameras, index: int, cfg: RenderConfig,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> dict[str, np.ndarray]:
    """Render view `index` of `cameras` -> "rgb" [H, W, 3], "depth" [H, W], "opacity" [H, W] (numpy float32)."""
    math = math_backend(cfg.backend)
    w, h = int(cameras.width[index]), int(cameras.height[index])
    dist = None if cameras.distortion is None else torch.from_numpy(cameras.distortion[index])
    origins, dirs = math.view_rays(
        torch.from_numpy(np.ascontiguousarray(cameras.c2w[index])), float(cameras.fx[index]), float(cameras.fy[index]),
        float(cameras.cx[index]), float(cameras.cy[index]), w, h, dist,
    )
    bg = torch.tensor(background, dtype=torch.float32)
    parts: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "opacity": []}
    for start in range(0, origins.shape[0], cfg.ray_chunk):
        out = render_rays(model, origins[start:start + cfg.ray_chunk], dirs[start:start + cfg.ray_chunk], bg,
                          cameras.near, cameras.far, cfg, training=False)
        for key in parts:
            parts[key].append(out[key])
    return {
        "rgb": torch.cat(parts["rgb"]).reshape(h, w, 3).clamp(0, 1).numpy(),
        "depth": torch.cat(parts["depth"]).reshape(h, w).numpy(),
        "opacity": torch.cat(parts["opacity"]).reshape(h, w).numpy(),
    }
