"""The MLP's forward + backward time against the number of sample points per block.

Why: `nerfprune.backprop` runs forward and backward a block of rays at a time so
that a block's activations stay in the CPU caches (`docs/training.md`). The best
block size depends on the cache of the machine; this sweep measures it. Each
row runs the same fine network on the same points (one training batch: 1,024 rays
x the preset's fine samples), split into blocks of the given size, forward and
backward per block, gradients accumulating as in training. Block sizes are
interleaved round-robin, median of `--repeats`.

    python benchmarks/bench_blocks.py [--repeats 5] [--presets small,nerf] [--threads T]

Prints a table, then as the very last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from nerfprune.field import FieldConfig, NerfMLP, PRESETS

BLOCKS = (0, 32768, 16384, 8192, 4096, 2048, 1024)  # points per block; 0 = the whole batch at once
POINTS = {"small": 1024 * 128, "nerf": 1024 * 192}  # fine-network points of one 1,024-ray batch


def fwd_bwd(net: NerfMLP, pos: torch.Tensor, dirs: torch.Tensor, block: int) -> float:
    """Seconds for forward + backward of `net` over all points, `block` points at a time."""
    net.zero_grad(set_to_none=True)
    n = pos.shape[0]
    step = n if block <= 0 else block
    start = time.perf_counter()
    for lo in range(0, n, step):
        sigma, rgb = net(pos[lo:lo + step], dirs[lo:lo + step])
        (sigma.sum() + rgb.sum()).backward()
    return time.perf_counter() - start


def sweep(cfg: FieldConfig, n_points: int, repeats: int) -> dict[int, float]:
    torch.manual_seed(0)
    net = NerfMLP(cfg)
    pos = torch.randn(n_points, cfg.pos_features)  # [N, P]
    dirs = torch.randn(n_points, cfg.dir_features)  # [N, Dd]
    times: dict[int, list[float]] = {b: [] for b in BLOCKS}
    for r in range(repeats + 1):  # the first round warms up
        for b in BLOCKS:
            t = fwd_bwd(net, pos, dirs, b)
            if r:
                times[b].append(t)
    return {b: statistics.median(v) for b, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    p.add_argument("--presets", default="small,nerf", help="comma-separated network presets")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    figures: dict[str, float] = {}
    print(f"torch threads: {torch.get_num_threads()}; MLP forward + backward, median of {args.repeats}")
    print(f"{'preset':8s} {'points':>8s} " + " ".join(f"{('all' if b == 0 else str(b)):>8s}" for b in BLOCKS) + "  best")
    for preset in args.presets.split(","):
        medians = sweep(PRESETS[preset], POINTS[preset], args.repeats)
        best = min(medians, key=medians.get)
        print(f"{preset:8s} {POINTS[preset]:8d} " + " ".join(f"{1000 * medians[b]:6.0f}ms" for b in BLOCKS)
              + f"  {best} ({medians[best] / medians[0]:.2f}x whole batch)")
        for b, t in medians.items():
            figures[f"{preset}_ms_block_{b or 'all'}"] = round(1000 * t, 1)
        figures[f"{preset}_best_block"] = best
        figures[f"{preset}_best_ratio_to_whole"] = round(medians[best] / medians[0], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
