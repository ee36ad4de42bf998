"""Dense vs pruned rendering, side by side: time per image and PSNR for every inference path and sparsity.

One dense parent is trained (N iterations) and, as the PSNR baseline, continued
to 2N iterations ("its dense parent trained for the same total number of
iterations"). For each sparsity, the parent is pruned (one-shot) and fine-tuned
for N iterations twice: unstructured global magnitude pruning (the 2022 study)
and structured pruning (whole neurons, ours). Each pruned model is then run
through the inference paths:

  masked     the study's way: weight * mask on every forward, then a dense product
  baked      mask multiplied into the weights once; dense product
  compacted  dead neurons removed (unstructured masks leave few dead)
  sparse     compacted + CSR products where measured faster
  int8       compacted + dynamic int8 Linear layers
  structured structured-pruned model, compacted
  structured+sparse / structured+int8   the same with CSR / int8 layers

Timings: one test view, all paths interleaved round-robin (so machine load hits
all of them alike), median of --repeats after a warm-up. PSNR: mean over the
test views. Resumable: trained models are kept in --out.

    python benchmarks/bench_prune.py [--iterations 500] [--sparsities 0.8,0.9,0.95,0.98] [--repeats 7]

Prints a table with ratios to dense, then as the very last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from nerfprune.field import NerfModelConfig
from nerfprune.field.graph import int8_available
from nerfprune.pruning.variants import build_variant
from nerfprune.experiments.compare import compare_paths, format_table
from nerfprune.pruning.lottery import PruneConfig, run_pruning
from nerfprune.renderer import RenderConfig
from nerfprune.scene import load_scene
from nerfprune.training import TrainConfig, Trainer, load_model

UNSTRUCTURED_PATHS = ("masked", "baked", "compacted", "sparse", "int8")
STRUCTURED_PATHS = {"structured": "compacted", "structured+sparse": "sparse", "structured+int8": "int8"}


def train_dense(scene, cfg: TrainConfig, out: Path, iterations: int) -> Path:
    """Train (or resume) the dense model to `iterations`; returns its folder."""
    folder = out / f"dense-{iterations}"
    if not (folder / "checkpoint.safetensors").exists() and iterations > cfg.iterations:
        # Continue the shorter run: the schedule (decay over 250k steps) makes it the same run.
        shorter = out / f"dense-{cfg.iterations}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shorter / "checkpoint.safetensors", folder / "checkpoint.safetensors")
    run_cfg = TrainConfig(**{**cfg.__dict__, "iterations": iterations})
    Trainer(scene, run_cfg, folder).run(resume=True)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default="builtin", help="'builtin' (default) or a scene folder")
    p.add_argument("--factor", type=int, default=1, help="downscale factor for a scene folder")
    p.add_argument("--iterations", type=int, default=500, help="N: dense pre-training and per-model fine-tuning iterations")
    p.add_argument("--sparsities", default="0.8,0.9,0.95,0.98", help="comma-separated sparsities")
    p.add_argument("--repeats", type=int, default=7, help="timed renders per path (after one warm-up)")
    p.add_argument("--test-views", type=int, default=4, help="test views for PSNR")
    p.add_argument("--out", default="outputs/bench_prune", help="where trained models are kept (resumable)")
    args = p.parse_args()

    scene = load_scene(args.scene, factor=args.factor) if args.scene != "builtin" else load_scene("builtin")
    out = Path(args.out) / scene.name
    n = args.iterations
    cfg = TrainConfig(iterations=n, batch_size=1024, lr_decay_steps=250_000, log_every=100, checkpoint_every=250,
                      model=NerfModelConfig(preset="small"), render=RenderConfig(n_coarse=64, n_fine=64))
    parent = train_dense(scene, cfg, out, n)
    baseline = train_dense(scene, cfg, out, 2 * n)
    sparsities = [float(s) for s in args.sparsities.split(",")]

    models = {}  # path label -> model
    dense_model, _, _ = load_model(baseline)
    models[("dense", 0.0)] = dense_model
    for s in sparsities:
        for method in ("global", "structured"):
            folder = out / f"{method}-{s:.2f}"
            run_pruning(parent, scene, PruneConfig(sparsity=s, method=method, retrain_iterations=n, eval_views=0), folder)
            model, _, ckpt = load_model(folder / "round-1")
            paths = UNSTRUCTURED_PATHS if method == "global" else STRUCTURED_PATHS
            for label in paths:
                variant = label if method == "global" else STRUCTURED_PATHS[label]
                if variant == "int8" and not int8_available():
                    continue
                models[(label, s)] = build_variant(model, ckpt.masks, variant)

    results = compare_paths(models, scene, cfg.render, views=args.test_views, repeats=args.repeats)
    median = {(r.label, r.sparsity): r.median_s for r in results}
    psnr = {(r.label, r.sparsity): r.psnr for r in results}
    dense_t, dense_psnr = median[("dense", 0.0)], psnr[("dense", 0.0)]

    print(f"scene {scene.source} {scene.width}x{scene.height}; 2x128, 64+64 samples; dense trained {2 * n} it, "
          f"pruned = {n} it pre-training + {n} it fine-tuning; one test view timed, median of {args.repeats}")
    print(format_table(results))
    figures = {"dense_s": round(dense_t, 4), "dense_psnr": round(dense_psnr, 3)}
    for r in results[1:]:
        figures[f"{r.label}_{r.sparsity:.2f}_ratio"] = round(r.median_s / dense_t, 3)
        figures[f"{r.label}_{r.sparsity:.2f}_dpsnr"] = round(r.psnr - dense_psnr, 3)
    at95 = [(median[k] / dense_t, psnr[k] - dense_psnr, k[0]) for k in median if k[1] == 0.95 and k[0] != "masked"]
    if at95:
        ok = [x for x in at95 if x[1] >= -0.5]
        best = min(ok or at95)
        print(f"best path at 95% within 0.5 dB: {best[2]} at {best[0]:.2f}x dense time, {best[1]:+.2f} dB (goal <= 0.20x)"
              if ok else f"no path at 95% stays within 0.5 dB; fastest: {best[2]} {best[0]:.2f}x, {best[1]:+.2f} dB")
        figures["best95_path"], figures["best95_ratio"], figures["best95_dpsnr"] = best[2], round(best[0], 3), round(best[1], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
