"""Chunked runners: evaluate a field network on many points, `chunk` points per call.

Three ways in: `run_network` on per-point inputs (any network: dense, masked,
compacted; the original code's way), `run_network_rays` on per-ray direction
encodings for networks that have `forward_rays` (the dense `NerfMLP`'s hand-written
training pass), and `infer_field` for rendering without gradients (the plan of
`nerfprune.field.inference`: direction term once per ray, only the encoding columns
the network reads, buffers reused). `run_field` picks for padded samples from the `MLPConfig`.
"""

from __future__ import annotations

import torch

from nerfprune.field.config import MLPConfig

INFERENCE_FUSION = {"fast": "auto", "first-layer": "first-layer", "unfused": "off"}  # MLPConfig.inference -> fuse


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


def run_network_rays(
    net: torch.nn.Module, pos_enc: torch.Tensor, dir_enc: torch.Tensor, samples: int, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`net.forward_rays` on whole rays, about `chunk` points per call -> ([B*S], [B*S, 3])."""
    rays_per_call = max(1, chunk // max(samples, 1))
    sig, col = [], []
    for start in range(0, dir_enc.shape[0], rays_per_call):
        stop = min(start + rays_per_call, dir_enc.shape[0])
        s, c = net.forward_rays(pos_enc[start * samples:stop * samples], dir_enc[start:stop], samples)
        sig.append(s)
        col.append(c)
    return _joined(sig, col, pos_enc)


def infer_field(
    net: torch.nn.Module, origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
    dir_enc: torch.Tensor, pos_frequencies: int, math, chunk: int, mlp: MLPConfig, features=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw density [n] and colour [n, 3] at the sample points origins[r] + t dirs[r], r = ray_index [n], of rays
    origins, dirs [B, 3] with direction encodings dir_enc [B, D]; no gradient.

    `math` is the `RenderMath` (its positional encoding). mlp.inference "fast" runs the network's
    `InferencePlan`, a narrow network as one fused kernel, else the encoding fused into the first layer, where
    that measured faster (Taichi backend only, `nerfprune.field.fused`); "first-layer" the same plan with only
    the first layer fused; "unfused" with no fusion (the encoding stored apart, every layer torch's); "reference"
    (or a network without a plan) its own forward on every sample's full encoding and gathered direction
    encoding, as the original code. `features` (a `FeatureGrid`, models with encoding "grid") replaces the
    positional encoding; the Rust kernels, which compute the frequency encoding themselves, are not used then.
    """
    from nerfprune.field.inference import plan_for

    plan = None
    if mlp.inference in INFERENCE_FUSION:
        plan = plan_for(net, torch.bfloat16 if mlp.precision == "bf16" else torch.float32)
    with torch.no_grad():
        if plan is None:
            points = origins[ray_index] + t[:, None] * dirs[ray_index]  # [n, 3]
            pos_enc = math.positional_encoding(points, pos_frequencies) if features is None else features(points)  # [n, P]
            return run_network(net, pos_enc, dir_enc[ray_index], chunk, mlp.precision)
        # the fused kernels replace the Taichi encoding kernel (the torch backend stays the reference)
        fuse = INFERENCE_FUSION[mlp.inference] if getattr(math, "name", "") == "taichi" else "off"
        if features is not None:  # the Taichi lookup kernel, or the torch reference (grid_sample) on the torch backend
            encode = features.kernel_encode_at if getattr(math, "name", "") == "taichi" else features.encode_at
            return plan.run(origins, dirs, t, ray_index, dir_enc, pos_frequencies, encode, chunk, fuse="off")
        return plan.run(origins, dirs, t, ray_index, dir_enc, pos_frequencies, math.positional_encoding_at, chunk,
                        fuse=fuse)


def run_field(
    net: torch.nn.Module, pos_enc: torch.Tensor, dir_enc: torch.Tensor, samples: int, chunk: int, mlp: MLPConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw density [B*S] and colour [B*S, 3] at B rays x S samples: pos_enc [B*S, P], dir_enc [B, D].

    While gradients are recorded for an fp32 network that has `forward_rays` and
    mlp.backward is "handwritten", its hand-written training pass runs; otherwise
    the network's own forward on per-sample direction encodings, as the original code.
    """
    if (mlp.backward == "handwritten" and mlp.precision == "fp32" and hasattr(net, "forward_rays")
            and torch.is_grad_enabled()):
        return run_network_rays(net, pos_enc, dir_enc, samples, chunk)
    b = dir_enc.shape[0]
    dir_rep = dir_enc[:, None, :].expand(b, samples, dir_enc.shape[-1]).reshape(b * samples, -1)  # [B*S, D]
    return run_network(net, pos_enc, dir_rep, chunk, mlp.precision)


def _joined(sig: list[torch.Tensor], col: list[torch.Tensor], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk outputs ([n, 1], [n, 3]) -> ([N], [N, 3]); no copy for a single chunk."""
    if len(sig) <= 1:
        return (sig[0][:, 0], col[0]) if sig else (like.new_zeros(0), like.new_zeros(0, 3))
    return torch.cat(sig)[:, 0], torch.cat(col)
