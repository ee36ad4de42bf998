"""The loss of one ray batch and its gradient, computed a block of rays at a time.

Why: the original NeRF code runs the forward pass of the whole batch, then one
backward pass. At 1024 rays x 128 samples the activations of one 128-unit layer
are 64 MB, far beyond the CPU caches, so every bias add, ReLU, ReLU backward and
concatenation streams through DRAM, and the MLP spends about half its time
there instead of in matrix products. Running forward *and* backward for a few
dozen rays at a time keeps a block's activations in L2; the same arithmetic
then takes about half the time on this machine (see `benchmarks/bench_train.py`).
Memory no longer grows with the batch size either.

The gradient is the same: the loss is a mean over rays, so it equals the sum of
the per-block losses weighted by block/batch, and gradients add up in `.grad`.
Only the order of the floating-point sums changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfprune.field import NerfModel
from nerfprune.renderer import RenderConfig, render_rays


@dataclass
class BatchLoss:
    """Loss figures of one batch (plain floats: the graph is gone after each block's backward)."""

    loss: float  # MSE(fine) + MSE(coarse), or MSE(coarse) for a coarse-only model
    mse_fine: float  # MSE of the final pass (the coarse one for a coarse-only model)


def rays_per_block(block_points: int, samples_per_ray: int, batch: int) -> int:
    """Rays per forward+backward block: `block_points` sample points (0: the whole batch)."""
    if block_points <= 0:
        return max(batch, 1)
    return max(1, block_points // max(samples_per_ray, 1))


def loss_and_backward(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, target: torch.Tensor, background: torch.Tensor,
    near: float, far: float, cfg: RenderConfig, block_points: int, training: bool = True,
    generator: torch.Generator | None = None,
) -> BatchLoss:
    """Accumulate d(loss)/d(weights) of a batch into the parameters' `.grad`.

    origins, dirs, target: [B, 3]; background: [B, 3] or [3]. The caller zeroes
    the gradients before and steps the optimizer after. Blocks are processed in
    ray order and draw their sample jitter from `generator` in that order, so a
    run is a pure function of the seed.
    """
    b = origins.shape[0]
    has_fine = cfg.n_fine > 0 and model.fine is not None
    samples = cfg.n_coarse + cfg.n_fine if has_fine else cfg.n_coarse  # points per ray of the largest MLP call
    per_block = rays_per_block(block_points, samples, b)
    loss_sum, fine_sum = 0.0, 0.0
    for start in range(0, b, per_block):
        end = min(start + per_block, b)
        bg = background[start:end] if background.dim() == 2 else background
        out = render_rays(model, origins[start:end], dirs[start:end], bg, near, far, cfg,
                          training=training, generator=generator)
        sse_fine = torch.sum((out["rgb"] - target[start:end]) ** 2)  # summed over rays and channels
        sse = sse_fine + torch.sum((out["rgb_coarse"] - target[start:end]) ** 2) if has_fine else sse_fine
        (sse / (3 * b)).backward()  # this block's share of the batch mean
        loss_sum += float(sse.detach())
        fine_sum += float(sse_fine.detach())
    return BatchLoss(loss=loss_sum / (3 * b), mse_fine=fine_sum / (3 * b))
