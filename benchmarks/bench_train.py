"""Seconds per training iteration: nerfprune (Rust batcher + Taichi kernels) vs a pure-torch pipeline.

The pure-torch pipeline is what the original NeRF code does, built from
`nerfprune._reference`: torch ray generation, `searchsorted` importance
sampling, `cumprod` compositing, a torch random-pixel batcher, and one forward
pass over the whole batch followed by one backward pass. nerfprune runs the
forward and backward a block of rays at a time (`nerfprune.backprop`), so the
MLP's activations stay in cache. Both run the same MLP, the same loss and the
same Adam step, in the same process, alternating. nerfprune also computes the
MLP's gradient by hand (`nerfprune.fused_mlp`: the view-direction term once per
ray, no concatenations) where the torch pipeline uses autograd. Three ablation
rows show where the difference comes from: nerfprune without blocks, nerfprune
with the autograd MLP, and the torch pipeline with blocks. A last row runs
nerfprune with the opt-in bfloat16 MLP (`--mlp-precision bf16`): different
arithmetic, so it is not the headline ratio.

Stage shares: each stage is timed with perf_counter between stages. The
backward pass of compositing cannot be separated from the MLP's inside one
`loss.backward()`; it is timed on its own (same shapes, same backend) after each
iteration, and the MLP backward is the total backward minus it.

    python benchmarks/bench_train.py [--iterations N] [--presets small,nerf] [--threads T]

Prints a table, then as the very last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from nerfprune.backprop import loss_and_backward, rays_per_block
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig, field_at_samples, math_backend
from nerfprune.scene.batching import RayBatcher
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.train import TrainConfig, Trainer, camera_tensors

SETTINGS = {"small": (64, 64), "nerf": (64, 128)}  # preset -> (coarse, fine) samples per ray
STAGES = ("batching", "rays", "sampling", "mlp_fwd", "composite_fwd", "mlp_bwd", "composite_bwd", "two_workers", "optimizer")


class TorchBatcher:
    """The original NeRF code's batching: random pixels drawn with torch from float images."""

    def __init__(self, scene, batch_size: int, seed: int):
        self.views = torch.from_numpy(scene.split("train"))
        self.images = torch.from_numpy(scene.images_float())  # [N, H, W, 3]
        self.batch_size, self.seed = batch_size, seed

    def batch(self, iteration: int):
        g = torch.Generator().manual_seed(self.seed * 7919 + iteration)
        n, (h, w) = self.batch_size, self.images.shape[1:3]
        view = self.views[torch.randint(len(self.views), (n,), generator=g)]
        row, col = torch.randint(h, (n,), generator=g), torch.randint(w, (n,), generator=g)
        from types import SimpleNamespace

        return SimpleNamespace(view=view, row=row, col=col, rgb=self.images[view, row, col], background=torch.ones(n, 3))


def timed_step(trainer: Trainer, batcher, cams, math_ns, it: int, block_points: int, workers: int) -> dict[str, float]:
    """One training iteration with per-stage wall-clock times (seconds).

    The same steps as `Trainer.step` with `nerfprune.backprop.loss_and_backward`,
    unrolled so each stage can be timed: rays are processed in blocks of
    `block_points` sample points (0: the whole batch, as the original NeRF code).
    With two block workers the blocks run on two threads at once, so their stages
    overlap: `loss_and_backward` itself runs and is timed as one stage, "two_workers".
    """
    cfg, model, scene = trainer.cfg, trainer.model, trainer.scene
    times = dict.fromkeys(STAGES, 0.0)
    gen = torch.Generator().manual_seed(it)
    clock = time.perf_counter
    t0 = clock()
    b = batcher.batch(it)
    b = b.to_torch() if hasattr(b, "to_torch") else b
    t1 = clock()
    times["batching"] = t1 - t0
    origins, dirs = math_ns.generate_rays(cams["c2w"], cams["intrinsics"], b.view, b.row, b.col, cams["distortion"])
    norm_all = dirs.norm(dim=-1)
    dir_enc_all = model.encode_dirs(dirs / norm_all[:, None])
    times["rays"] = clock() - t1
    n_total = origins.shape[0]
    per_block = rays_per_block(block_points, cfg.render.n_coarse + cfg.render.n_fine, n_total)
    trainer.optimizer.zero_grad(set_to_none=True)
    if workers > 1:
        s0 = clock()
        loss_and_backward(model, origins, dirs, b.rgb, b.background, scene.cameras.near, scene.cameras.far, cfg.render,
                          block_points, training=True, generator=gen, workers=workers)
        times["two_workers"] = clock() - s0
        n_total = 0  # the loop below has nothing left to do
    for lo in range(0, n_total, per_block):
        hi = min(lo + per_block, n_total)
        o, d, norm, bg = origins[lo:hi], dirs[lo:hi], norm_all[lo:hi], b.background[lo:hi]
        dir_enc = dir_enc_all[lo:hi].detach()
        n = hi - lo
        saved = []

        def shade(which: str, t: torch.Tensor):
            s0 = clock()
            sig, rgb = field_at_samples(model, which, o, d, t, dir_enc, cfg.render)
            s1 = clock()
            out = math_ns.composite(sig.contiguous(), rgb.contiguous(), t.contiguous(), norm, bg)
            s2 = clock()
            times["mlp_fwd"] += s1 - s0
            times["composite_fwd"] += s2 - s1
            saved.append((sig.detach(), rgb.detach(), t.detach()))
            return out

        s0 = clock()
        t_coarse = math_ns.stratified(n, cfg.render.n_coarse, scene.cameras.near, scene.cameras.far, True, generator=gen)
        times["sampling"] += clock() - s0
        coarse = shade("coarse", t_coarse)
        s0 = clock()
        t_all = math_ns.importance(t_coarse, coarse[3].detach(), cfg.render.n_fine, True, generator=gen)
        times["sampling"] += clock() - s0
        fine = shade("fine", t_all)
        target = b.rgb[lo:hi]
        loss = (torch.sum((fine[0] - target) ** 2) + torch.sum((coarse[0] - target) ** 2)) / (3 * n_total)
        s0 = clock()
        loss.backward()
        backward = clock() - s0
        # Compositing backward alone, same shapes and backend.
        comp_bwd = 0.0
        for sig, rgb, t in saved:
            sig, rgb = sig.clone().requires_grad_(), rgb.clone().requires_grad_()
            colour = math_ns.composite(sig, rgb, t.contiguous(), norm, bg)[0]
            grad = torch.ones_like(colour)
            s0 = clock()
            torch.autograd.backward(colour, grad)
            comp_bwd += clock() - s0
        times["composite_bwd"] += min(comp_bwd, backward)
        times["mlp_bwd"] += backward - min(comp_bwd, backward)
    s0 = clock()
    trainer.optimizer.step()
    times["optimizer"] = clock() - s0
    return times


# pipeline -> (rendering-math backend, batcher, forward+backward in blocks?, MLP precision, MLP backward, block workers)
PIPELINES = {
    "nerfprune": ("taichi", "rust", True, "fp32", "fused", 2),  # what `nerfprune train` runs
    "torch": ("torch", "torch", False, "fp32", "autograd", 1),  # the original NeRF code's way: whole batch forward, then backward
    # Ablations: what each part contributes. The one-worker row also gives the stage shares.
    "nerfprune_1worker": ("taichi", "rust", True, "fp32", "fused", 1),
    "nerfprune_1block": ("taichi", "rust", False, "fp32", "fused", 1),
    "nerfprune_autograd": ("taichi", "rust", True, "fp32", "autograd", 2),
    "torch_blocked": ("torch", "torch", True, "fp32", "autograd", 1),
    # Opt-in, not the same arithmetic: the MLP's products in bfloat16 (`--mlp-precision bf16`; autograd backward).
    "nerfprune_bf16": ("taichi", "rust", True, "bf16", "autograd", 2),
}
ABLATIONS = {"nerfprune_1worker": "one block worker", "nerfprune_1block": "no blocks", "nerfprune_autograd": "autograd MLP",
             "torch_blocked": "torch + blocks", "nerfprune_bf16": "opt-in bf16 MLP"}
SHARES_FROM = "nerfprune_1worker"  # stage shares of nerfprune's step, from the row whose stages do not overlap


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per pipeline (after 2 warm-up)")
    p.add_argument("--presets", default="small,nerf", help="comma-separated presets: small (2x128, 64+64), nerf (8x256, 64+128)")
    p.add_argument("--threads", type=int, default=0, help="torch and Taichi threads (0: leave torch's default)")
    p.add_argument("--batch-size", type=int, default=1024, help="rays per iteration")
    p.add_argument("--block-points", type=int, default=None,
                   help="sample points per forward+backward block of the blocked pipelines (default: nerfprune's default for the preset)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = make_builtin_scene(BuiltinSceneConfig(width=100, height=100, n_views=40, n_test=0))
    results: dict[str, dict] = {}
    for preset in args.presets.split(","):
        n_coarse, n_fine = SETTINGS[preset]
        runs = {}
        for pipeline, (backend, batching, blocked, precision, mlp_backward, workers) in PIPELINES.items():
            render = RenderConfig(n_coarse=n_coarse, n_fine=n_fine, backend=backend, mlp_precision=precision,
                                  mlp_backward=mlp_backward)
            cfg = TrainConfig(iterations=10**6, batch_size=args.batch_size, model=NerfModelConfig(preset=preset), render=render,
                              block_workers=workers)
            trainer = Trainer(scene, cfg, "/tmp/nerfprune-bench-train")
            batcher = RayBatcher(scene, "train", args.batch_size, 0) if batching == "rust" else TorchBatcher(scene, args.batch_size, 0)
            block_points = (args.block_points if args.block_points is not None else cfg.points_per_block()) if blocked else 0
            runs[pipeline] = (trainer, batcher, camera_tensors(scene), math_backend(backend), block_points,
                              workers)
        samples: dict[str, list[dict]] = {name: [] for name in runs}
        for it in range(args.iterations + 2):  # alternate the pipelines so load changes hit all of them
            for pipeline, (trainer, batcher, cams, math_ns, block_points, workers) in runs.items():
                t = timed_step(trainer, batcher, cams, math_ns, it, block_points, workers)
                if it >= 2:
                    samples[pipeline].append(t)
        results[preset] = {}
        for pipeline, rows in samples.items():
            totals = [sum(r.values()) for r in rows]
            stage_median = {s: statistics.median(r[s] for r in rows) for s in STAGES}
            results[preset][pipeline] = {"s_per_it": statistics.median(totals), "stages": stage_median,
                                         "spread": [min(totals), max(totals)]}
    print(f"{'preset':8s} {'pipeline':18s} {'s/it':>7s} {'min-max':>13s}  " + " ".join(f"{s:>13s}" for s in STAGES))
    figures = {}
    for preset, by_pipe in results.items():
        for pipeline, r in by_pipe.items():
            shares = " ".join(f"{100 * r['stages'][s] / r['s_per_it']:12.1f}%" for s in STAGES)
            spread = f"{r['spread'][0]:.3f}-{r['spread'][1]:.3f}"
            print(f"{preset:8s} {pipeline:18s} {r['s_per_it']:7.3f} {spread:>13s}  {shares}")
        torch_s = by_pipe["torch"]["s_per_it"]
        ratio = by_pipe["nerfprune"]["s_per_it"] / torch_s
        ablations = "; ".join(f"{label} {by_pipe[name]['s_per_it'] / torch_s:.2f}" for name, label in ABLATIONS.items())
        print(f"{preset:8s} ratio nerfprune/torch = {ratio:.2f} (goal <= 0.67); ablations: {ablations}")
        for pipeline, r in by_pipe.items():
            figures[f"{preset}_s_per_it_{pipeline}"] = round(r["s_per_it"], 4)
        figures[f"{preset}_ratio"] = round(ratio, 3)
        for name in ABLATIONS:
            figures[f"{preset}_ratio_{name}"] = round(by_pipe[name]["s_per_it"] / torch_s, 3)
        for s in STAGES:
            figures[f"{preset}_share_{s}"] = round(by_pipe[SHARES_FROM]["stages"][s] / by_pipe[SHARES_FROM]["s_per_it"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
