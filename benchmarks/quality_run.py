"""Validation PSNR of the 2x128 preset after 1k, 2k and 5k iterations (one run, evaluated at each milestone).

The learning rate follows the original NeRF schedule (x0.1 over 250k steps), so
the run up to 1k iterations is exactly the first part of the run up to 5k.

    python benchmarks/quality_run.py --scene builtin
    python benchmarks/quality_run.py --scene ../shared/datasets/mic --factor 8     # 100x100

Writes the rendered validation views beside their ground truth to <out>/<scene>/val-<iterations>/.
Prints a table, then as the very last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.scene import load_scene
from nerfprune.training import TrainConfig, Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default="builtin", help="'builtin' or a scene folder")
    p.add_argument("--factor", type=int, default=1, help="downscale factor of the scene images")
    p.add_argument("--milestones", default="1000,2000,5000", help="iterations at which to evaluate")
    p.add_argument("--val-views", type=int, default=8, help="validation views evaluated (0: all)")
    p.add_argument("--preset", default="small", help="network preset")
    p.add_argument("--out", default="outputs/quality", help="output folder (resumable)")
    args = p.parse_args()
    scene = load_scene(args.scene, factor=args.factor) if args.scene != "builtin" else load_scene("builtin")
    milestones = [int(m) for m in args.milestones.split(",")]
    cfg = TrainConfig(iterations=max(milestones), batch_size=1024, lr_decay_steps=250_000, log_every=100,
                      checkpoint_every=500, model=NerfModelConfig(preset=args.preset),
                      render=RenderConfig(n_coarse=64, n_fine=64))
    out = Path(args.out) / scene.name
    trainer = Trainer(scene, cfg, out)
    rows = []
    start = time.perf_counter()
    for m in milestones:
        model = trainer.run(resume=True, until=m)
        metrics = evaluate_views(model, scene, cfg.render, EvalConfig(split="val", max_views=args.val_views, timing_repeats=0),
                                 images_dir=out / f"val-{m}")  # rendered | ground truth, to look at
        rows.append({"iterations": m, "val_psnr": metrics["psnr"]["mean"], "val_ssim": metrics["ssim"]["mean"],
                     "elapsed_s": time.perf_counter() - start})
        print(f"milestone {m}: val PSNR {rows[-1]['val_psnr']:.2f} dB, SSIM {rows[-1]['val_ssim']:.4f}, "
              f"{rows[-1]['elapsed_s']:.0f} s", flush=True)  # partial results survive an interrupted run
        model.train()
    print(f"scene {scene.source} ({scene.width}x{scene.height}, {len(scene.split('train'))} train views), preset {args.preset}, 64+64 samples")
    print(f"{'iterations':>10s} {'val PSNR':>9s} {'val SSIM':>9s} {'elapsed':>9s}")
    for r in rows:
        print(f"{r['iterations']:10d} {r['val_psnr']:9.2f} {r['val_ssim']:9.4f} {r['elapsed_s']:8.0f}s")
    print(json.dumps({"scene": scene.name, **{f"val_psnr_{r['iterations']}": round(r["val_psnr"], 3) for r in rows},
                      "seconds_total": round(rows[-1]["elapsed_s"], 1)}))


if __name__ == "__main__":
    main()
