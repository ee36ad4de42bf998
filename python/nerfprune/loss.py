"""The training loss (MSE of the coarse and fine passes) of one ray batch and its gradient, a block of rays at a time.

Why: the original NeRF code runs the forward pass of the whole batch, then one
backward pass. At 1024 rays x 128 samples the activations of one 256-unit layer
are 128 MB, far beyond the CPU caches, so every bias add, ReLU, ReLU backward and
concatenation streams through DRAM, and the MLP spends much of its time there
instead of in matrix products. Running forward *and* backward for a block of
rays at a time keeps a block's tensors near the cores; for the 8x256 network
the same arithmetic then takes about half the time on a 2-core machine (see
docs/training.md). Memory no longer grows with the batch size either.

The gradient is the same: the loss is a mean over rays, so it equals the sum of
the per-block losses weighted by block/batch, and the gradients add up. Only the
order of the floating-point sums changes.

Distillation (fine-tuning a pruned model): with a `Teacher`, each block also renders
the teacher's colours of the same rays, without gradient and with the same sample
jitter, and the loss gains `weight` x the MSE between the two models' colours, pass by
pass. Without one, nothing of this runs.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch

from nerfprune.field.mlp import NerfModel
from nerfprune.renderer import RenderConfig, render_rays
from taichi_kernels.backend import RenderMath


@dataclass
class BatchLoss:
    """Loss figures of one batch (plain floats: the graph is gone after each block's backward)."""

    loss: float  # MSE(fine) + MSE(coarse), or MSE(coarse) for a coarse-only model; + teacher weight x `distill`
    mse_fine: float  # MSE of the final pass (the coarse one for a coarse-only model)
    distill: float = 0.0  # the distillation term: the same MSEs against the teacher's colours (0 without a teacher)


@dataclass
class Teacher:
    """A model whose rendered colours the trained one is also pulled towards (distillation from the dense parent).

    `targets` renders the same rays with the same sample jitter as the student's render: coarse samples are then
    identical; the fine ones follow each model's own coarse weights (with an occupancy grid, each model's grid).
    """

    model: NerfModel  # the teacher (the dense model pruning started from); never trained here
    weight: float  # w in loss = photometric + w x distillation term

    @torch.no_grad()
    def targets(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor, near: float, far: float,
                cfg: RenderConfig, training: bool, generator: torch.Generator | None, math: RenderMath,
                ) -> dict[str, torch.Tensor]:
        """The teacher's "rgb" [B, 3] and "rgb_coarse" [B, 3] of the rays, sampled as the student's (`training`: jittered)."""
        out = render_rays(self.model, origins, dirs, background, near, far, cfg, training=training, generator=generator,
                          math=math)
        return {"rgb": out["rgb"], "rgb_coarse": out["rgb_coarse"]}


def _same_draws(generator: torch.Generator | None) -> torch.Generator | None:
    """A generator that will draw what `generator` draws next (the teacher's jitter = the student's)."""
    return None if generator is None else torch.Generator().set_state(generator.get_state())


def auto_block_points(width: int) -> int:
    """Default points per block for an MLP `width` units wide: 2^29 / width^2.

    The work per point grows with width^2, so this keeps a block's arithmetic about
    constant and the fixed per-block costs (kernel launches, Python, thread hand-offs)
    a constant share: 8,192 points for 256 units, 32,768 for 128. Both were the fastest
    measured sizes on the 2-core development machine (`benchmarks/bench_blocks.py`,
    docs/training.md).
    """
    return max(1024, 2**29 // max(width, 1) ** 2)


def rays_per_block(block_points: int, samples_per_ray: int, batch: int) -> int:
    """Rays per forward+backward block: `block_points` sample points (0: the whole batch)."""
    if block_points <= 0:
        return max(batch, 1)
    return max(1, block_points // max(samples_per_ray, 1))


def block_generators(generator: torch.Generator | None, n_blocks: int) -> list[torch.Generator | None]:
    """One generator per block, seeded from `generator` in block order.

    The sample jitter of a block then depends only on the step's generator and the
    block's index, not on which thread runs the block or when. They are CPU generators on
    every device: the kernels draw on the CPU and move the numbers to the rays' device
    (`taichi_kernels.reference.uniforms`), so CPU and GPU runs draw the same jitter.
    """
    if generator is None:
        return [None] * n_blocks
    seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator).tolist()
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def loss_and_backward(
    model: NerfModel, origins: torch.Tensor, dirs: torch.Tensor, target: torch.Tensor, background: torch.Tensor,
    near: float, far: float, cfg: RenderConfig, block_points: int, training: bool = True,
    generator: torch.Generator | None = None, workers: int = 1, math: RenderMath | None = None,
    teacher: Teacher | None = None,
) -> BatchLoss:
    """Accumulate d(loss)/d(weights) of a batch into the parameters' `.grad`.

    origins, dirs, target: [B, 3]; background: [B, 3] or [3]. The caller zeroes
    the gradients before and steps the optimizer after. Each block draws its
    sample jitter from its own generator (`block_generators`), so a run is a
    pure function of the seed.

    workers = 2 runs the blocks on two threads, each with half of torch's threads,
    taking blocks in turn (even / odd); each thread sums its blocks' gradients in
    block order and the two sums are added at the end, so the result is the
    same from run to run. On 2 cores this keeps both busy through the small
    element-wise operations that one 2-thread pool cannot split well.

    `teacher` adds its weight x the distillation term (see `Teacher`) to the loss of every block.
    """
    b = origins.shape[0]
    has_fine = cfg.n_fine > 0 and model.fine is not None
    samples = cfg.n_coarse + cfg.n_fine if has_fine else cfg.n_coarse  # points per ray of the largest MLP call
    per_block = rays_per_block(block_points, samples, b)
    spans = [(start, min(start + per_block, b)) for start in range(0, b, per_block)]
    gens = block_generators(generator, len(spans))
    math = math or cfg.math()

    def squared_errors(out: dict[str, torch.Tensor], want: dict[str, torch.Tensor] | torch.Tensor) -> tuple:
        """(summed squared error of both passes, of the final pass), over rays and channels."""
        fine, coarse = (want["rgb"], want["rgb_coarse"]) if isinstance(want, dict) else (want, want)
        sse_fine = torch.sum((out["rgb"] - fine) ** 2)
        return (sse_fine + torch.sum((out["rgb_coarse"] - coarse) ** 2) if has_fine else sse_fine), sse_fine

    def block_loss(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(the block's summed loss to differentiate, its summed fine squared error, its summed distillation term)."""
        start, end = spans[k]
        bg = background[start:end] if background.dim() == 2 else background
        taught = None if teacher is None else teacher.targets(origins[start:end], dirs[start:end], bg, near, far, cfg,
                                                              training, _same_draws(gens[k]), math)
        out = render_rays(model, origins[start:end], dirs[start:end], bg, near, far, cfg,
                          training=training, generator=gens[k], math=math)
        sse, sse_fine = squared_errors(out, target[start:end])
        if taught is None:
            return sse, sse_fine, None
        distill, _ = squared_errors(out, taught)
        return sse + teacher.weight * distill, sse_fine, distill

    sums = [(0.0, 0.0, 0.0)] * len(spans)
    if workers <= 1 or len(spans) < 2:
        for k in range(len(spans)):
            objective, sse_fine, distill = block_loss(k)
            (objective / (3 * b)).backward()  # this block's share of the batch mean
            sums[k] = _figures(objective, sse_fine, distill)
    else:
        _two_threads(model, block_loss, len(spans), 3 * b, sums)
    loss, mse_fine, distill = (sum(column) / (3 * b) for column in zip(*sums))
    return BatchLoss(loss=loss, mse_fine=mse_fine, distill=distill)


def _figures(objective: torch.Tensor, sse_fine: torch.Tensor, distill: torch.Tensor | None) -> tuple[float, float, float]:
    """A block's sums as floats (its graph is gone after the backward)."""
    return float(objective.detach()), float(sse_fine.detach()), 0.0 if distill is None else float(distill.detach())


def _two_threads(model: NerfModel, block_loss, n_blocks: int, denominator: int, sums: list) -> None:
    """Blocks 0, 2, 4, ... on one thread and 1, 3, 5, ... on another; gradients into `.grad`.

    An error in one thread, or Ctrl-C in the caller's, stops the other thread after its
    current block and is raised here; `.grad` is then left untouched.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    threads = torch.get_num_threads()
    stop = threading.Event()

    def work(first: int) -> list[torch.Tensor | None]:
        torch.set_num_threads(max(1, threads // 2))  # the caller's threads, split between the two
        total: list[torch.Tensor | None] = [None] * len(params)
        for k in range(first, n_blocks, 2):
            if stop.is_set():
                break
            objective, sse_fine, distill = block_loss(k)
            grads = torch.autograd.grad(objective / denominator, params, allow_unused=True)
            sums[k] = _figures(objective, sse_fine, distill)
            total = [_add_(t, g) for t, g in zip(total, grads)]
        return total

    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="nerfprune-block") as pool:
            futures = [pool.submit(work, 0), pool.submit(work, 1)]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # raises the first thread's error, if any
                parts = [f.result() for f in futures]
            except BaseException:
                stop.set()
                raise
    finally:
        torch.set_num_threads(threads)
    for p, even, odd in zip(params, *parts):
        p.grad = _add_(p.grad, _add_(even, odd))


def _add_(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """a + b written into a, where None stands for a gradient that is zero."""
    return b if a is None else (a if b is None else a.add_(b))
