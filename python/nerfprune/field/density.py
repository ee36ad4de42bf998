"""The density activation: raw density head output -> volume density sigma >= 0 (per unit world distance).

Every place that turns the network's raw density into a density (the renderers, the occupancy grid's
`NerfModel.density`) calls `activate_density`, so one config field (`NerfModelConfig.density_activation`,
carried by `FieldConfig`) decides it everywhere. The networks themselves (dense, compacted, sparse) return
the raw value: compaction and the hand-written training backward need not know the activation, and
autograd differentiates it after them.

Why there is a choice: with ReLU (the original NeRF, and the 2022 reproduction) a density head whose raw
output is negative at every sample gives zero density and zero gradient: it can never recover. Structured
pruning at 95 % does exactly that, and the render stays empty however long it is fine-tuned. Softplus and
truncated exp are positive with a positive derivative everywhere, so gradient always reaches the head.

- "relu": max(raw, 0) (default; the original NeRF).
- "softplus": softplus(raw - 1), as mip-NeRF (its `density_bias` of -1: a freshly initialised network,
  raw ~ 0, starts at density ~0.31, i.e. mostly transparent, rather than 0.69).
- "trunc_exp": exp(raw), with the gradient exp(clamp(raw, -15, 15)) (instant-ngp / torch-ngp's
  `trunc_exp`): exp's dynamic range without exploding or vanishing gradients. The forward is not
  clamped (as torch-ngp's); it overflows to inf only for raw > 88.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nerfprune.field.config import DENSITY_ACTIVATIONS

SOFTPLUS_SHIFT = -1.0  # mip-NeRF's density_bias: softplus(raw + shift)
TRUNC_EXP_CLAMP = 15.0  # |raw| beyond which trunc_exp's gradient stops growing / shrinking (torch-ngp)


class _TruncExp(torch.autograd.Function):
    """exp(x) forward; backward g * exp(clamp(x, -15, 15)) (torch-ngp's `trunc_exp`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-TRUNC_EXP_CLAMP, TRUNC_EXP_CLAMP))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x) whose gradient is exp(clamp(x, -15, 15))."""
    return _TruncExp.apply(x)


def activate_density(raw: torch.Tensor, activation: str) -> torch.Tensor:
    """Density (same shape as `raw`) from the raw density head output, by `activation` (a key of
    `DENSITY_ACTIVATIONS`). Differentiable; ReLU stays `torch.relu`, bit for bit the former code."""
    if activation == "relu":
        return torch.relu(raw)
    if activation == "softplus":
        return F.softplus(raw + SOFTPLUS_SHIFT)
    if activation == "trunc_exp":
        return trunc_exp(raw)
    raise ValueError(f"unknown density activation {activation!r}: choose one of {', '.join(DENSITY_ACTIVATIONS)}")
