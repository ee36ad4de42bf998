"""Seconds per training iteration: nerfprune (Rust batcher + Taichi kernels) vs a pure-torch pipeline.

The pure-torch pipeline is what the original NeRF code does, built from
`nerfprune._reference`: torch ray generation, `searchsorted` importance
sampling, `cumprod` compositing, and a torch random-pixel batcher. Both run the
same MLP, the same loss and the same Adam step, in the same process, alternating.

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

from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig, math_backend, run_network
from nerfprune.scene.batching import RayBatcher
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.train import TrainConfig, Trainer, camera_tensors

SETTINGS = {"small": (64, 64), "nerf": (64, 128)}  # preset -> (coarse, fine) samples per ray
STAGES = ("batching", "rays", "sampling", "mlp_fwd", "composite_fwd", "mlp_bwd", "composite_bwd", "optimizer")


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


def timed_step(trainer: Trainer, batcher, cams, math_ns, it: int) -> dict[str, float]:
    """One training iteration with per-stage wall-clock times (seconds)."""
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
    norm = dirs.norm(dim=-1)
    dir_enc = model.encode_dirs(dirs / norm[:, None])
    t2 = clock()
    times["rays"] = t2 - t1
    n = origins.shape[0]
    saved = []

    def shade(which: str, t: torch.Tensor):
        s0 = clock()
        pts = origins[:, None] + t[..., None] * dirs[:, None]
        s = t.shape[1]
        sig, rgb = run_network(model.network(which), model.encode_points(pts.reshape(-1, 3), cfg.render.backend),
                               dir_enc[:, None].expand(n, s, dir_enc.shape[-1]).reshape(n * s, -1), cfg.render.chunk)
        sig = torch.relu(sig).reshape(n, s)
        rgb = rgb.reshape(n, s, 3)
        s1 = clock()
        out = math_ns.composite(sig.contiguous(), rgb.contiguous(), t.contiguous(), norm, b.background)
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
    loss = torch.mean((fine[0] - b.rgb) ** 2) + torch.mean((coarse[0] - b.rgb) ** 2)
    trainer.optimizer.zero_grad(set_to_none=True)
    s0 = clock()
    loss.backward()
    backward = clock() - s0
    s0 = clock()
    trainer.optimizer.step()
    times["optimizer"] = clock() - s0
    # Compositing backward alone, same shapes and backend.
    comp_bwd = 0.0
    for sig, rgb, t in saved:
        sig, rgb = sig.clone().requires_grad_(), rgb.clone().requires_grad_()
        colour = math_ns.composite(sig, rgb, t.contiguous(), norm, b.background)[0]
        grad = torch.ones_like(colour)
        s0 = clock()
        torch.autograd.backward(colour, grad)
        comp_bwd += clock() - s0
    times["composite_bwd"] = min(comp_bwd, backward)
    times["mlp_bwd"] = backward - times["composite_bwd"]
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per pipeline (after 2 warm-up)")
    p.add_argument("--presets", default="small,nerf", help="comma-separated presets: small (2x128, 64+64), nerf (8x256, 64+128)")
    p.add_argument("--threads", type=int, default=0, help="torch and Taichi threads (0: leave torch's default)")
    p.add_argument("--batch-size", type=int, default=1024, help="rays per iteration")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = make_builtin_scene(BuiltinSceneConfig(width=100, height=100, n_views=40, n_test=0))
    results: dict[str, dict] = {}
    for preset in args.presets.split(","):
        n_coarse, n_fine = SETTINGS[preset]
        runs = {}
        for pipeline in ("nerfprune", "torch"):
            backend = "taichi" if pipeline == "nerfprune" else "torch"
            cfg = TrainConfig(iterations=10**6, batch_size=args.batch_size, model=NerfModelConfig(preset=preset),
                              render=RenderConfig(n_coarse=n_coarse, n_fine=n_fine, backend=backend))
            trainer = Trainer(scene, cfg, "/tmp/nerfprune-bench-train")
            batcher = RayBatcher(scene, "train", args.batch_size, 0) if pipeline == "nerfprune" else TorchBatcher(scene, args.batch_size, 0)
            runs[pipeline] = (trainer, batcher, camera_tensors(scene), math_backend(backend))
        samples: dict[str, list[dict]] = {"nerfprune": [], "torch": []}
        for it in range(args.iterations + 2):  # alternate the pipelines so load changes hit both
            for pipeline, (trainer, batcher, cams, math_ns) in runs.items():
                t = timed_step(trainer, batcher, cams, math_ns, it)
                if it >= 2:
                    samples[pipeline].append(t)
        results[preset] = {}
        for pipeline, rows in samples.items():
            totals = [sum(r.values()) for r in rows]
            stage_median = {s: statistics.median(r[s] for r in rows) for s in STAGES}
            results[preset][pipeline] = {"s_per_it": statistics.median(totals), "stages": stage_median,
                                         "spread": [min(totals), max(totals)]}
    print(f"{'preset':8s} {'pipeline':10s} {'s/it':>7s}  " + " ".join(f"{s:>13s}" for s in STAGES))
    figures = {}
    for preset, by_pipe in results.items():
        for pipeline, r in by_pipe.items():
            shares = " ".join(f"{100 * r['stages'][s] / r['s_per_it']:12.1f}%" for s in STAGES)
            print(f"{preset:8s} {pipeline:10s} {r['s_per_it']:7.3f}  {shares}")
        ratio = by_pipe["nerfprune"]["s_per_it"] / by_pipe["torch"]["s_per_it"]
        print(f"{preset:8s} ratio nerfprune/torch = {ratio:.2f} (goal <= 0.67)")
        figures[f"{preset}_s_per_it_nerfprune"] = round(by_pipe["nerfprune"]["s_per_it"], 4)
        figures[f"{preset}_s_per_it_torch"] = round(by_pipe["torch"]["s_per_it"], 4)
        figures[f"{preset}_ratio"] = round(ratio, 3)
        for s in STAGES:
            figures[f"{preset}_share_{s}"] = round(by_pipe["nerfprune"]["stages"][s] / by_pipe["nerfprune"]["s_per_it"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
