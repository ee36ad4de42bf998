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


class _ReluLeakyGrad(torch.autograd.Function):
    """max(x, 0) forward; backward g where x > 0, and below 0 leak * min(g, 0): only the part of the
    gradient that asks for *more* density (a descent step raises x). The part asking for less is dropped,
    as by the ReLU itself: a density of 0 cannot go lower, and passing that part on (measured: a
    symmetric leak) pushed raw down at every empty sample and killed a small pruned network's density
    head that the plain ReLU had kept."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, leak: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.leak = leak
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, grad, grad.clamp(max=0.0) * ctx.leak), None


def activate_density(raw: torch.Tensor, activation: str, grad_leak: float = 0.0) -> torch.Tensor:
    """Density (same shape as `raw`) from the raw density head output, by `activation` (a key of
    `DENSITY_ACTIVATIONS`). Differentiable; ReLU stays `torch.relu`, bit for bit the former code.

    `grad_leak` > 0 (ReLU only; training): the forward is still max(raw, 0), but below 0 the part of the
    incoming gradient that asks for more density passes, times `grad_leak`, instead of nothing, so a
    density head whose raw output is negative everywhere (pruning leaves that: docs/pruning.md) still
    learns where density is wanted and comes back.
    """
    if activation == "relu":
        if grad_leak > 0 and raw.requires_grad:
            return _ReluLeakyGrad.apply(raw, float(grad_leak))
        return torch.relu(raw)
    if activation == "softplus":
        return F.softplus(raw + SOFTPLUS_SHIFT)
    if activation == "trunc_exp":
        return trunc_exp(raw)
    raise ValueError(f"unknown density activation {activation!r}: choose one of {', '.join(DENSITY_ACTIVATIONS)}")
