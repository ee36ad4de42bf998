"""The fused Rust kernels (the encoding + first layer; a whole network) against the unfused path, over widths.

Unfused (the plan's way without the kernel): the Taichi encoding kernel writes the 63 encoded features of every
sample into a reused [chunk, 64] buffer (its last column the ones that carry the bias), `torch.mm` multiplies
it by [W | b]^T, ReLU over the output. Fused: `nerfprune._native.encode_first_layer` computes the encoding of
16 samples on the stack and writes only the layer (`rust/core/src/fused/first_layer.rs`). Both over the same samples
(`--samples`, about one mic view of a pruned model at 100x100), in chunks of `--chunk` as the renderer runs
them, interleaved `--repeats` times after a warm-up; medians. The plan fuses the first layer at every width
where the whole network cannot run as one kernel (`InferencePlan.fused_first_layer`): this table is why.

`--network`: whole networks (2 hidden layers of each width, the colour branch half as wide, 10 + 4 octaves: the
shapes of a structured pruned 2x128 NeRF compacted) through `InferencePlan.run` three ways: "off" (the Taichi
encoding kernel, every layer a torch product, chunk by chunk), "first-layer" (the encoding fused into the first
layer, the others torch's) and "auto" (`nerfprune._native.run_network`: the encoding and every layer per block of
samples in one kernel, `rust/core/src/fused/network.rs`). The plan runs every network it can as one kernel
(`InferencePlan.fused_network`): this table is why.

    python benchmarks/bench_fused.py [--network] [--widths 8,20,32,64,128] [--samples 370000] [--repeats 7] [--threads T]

Prints a table, then as the very last line one JSON object (per width: both times, the ratio, the largest
difference of the outputs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import nerfprune  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, nerfprune/__init__.py)
import torch

from nerfprune.field.config import FieldConfig
from nerfprune.field.fused import FusedFirstLayer, rays_for_kernel
from nerfprune.field.inference import plan_for
from nerfprune.field.mlp import NerfMLP
from taichi_kernels.encoding import positional_encoding_at
from taichi_kernels.reference import positional_encoding

N_FREQUENCIES = 10
FEATURES = 3 * (1 + 2 * N_FREQUENCIES)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="8,20,32,64,128", help="first-layer widths (comma-separated)")
    p.add_argument("--samples", type=int, default=370_000, help="sample points per pass")
    p.add_argument("--rays", type=int, default=10_000, help="rays the samples lie on")
    p.add_argument("--chunk", type=int, default=65_536, help="samples per call (RenderConfig.chunk)")
    p.add_argument("--repeats", type=int, default=7, help="timed passes of each way (after one warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch, Taichi and kernel threads (0: leave torch's)")
    p.add_argument("--network", action="store_true", help="whole networks: unfused / first layer fused / one kernel")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    origins = torch.randn(args.rays, 3, generator=gen)
    dirs = torch.nn.functional.normalize(torch.randn(args.rays, 3, generator=gen), dim=-1)
    t = torch.rand(args.samples, generator=gen) * 4.0
    ray_index = torch.randint(0, args.rays, (args.samples,), generator=gen).sort().values  # rays' samples together
    if args.network:
        return networks(args, origins, dirs, t, ray_index)
    rays_np = rays_for_kernel(origins, dirs)
    enc = torch.ones(args.chunk, FEATURES + 1)  # the plan's workspace layout: a column of ones for the bias
    columns = torch.arange(FEATURES)
    results = {}
    for width in (int(w) for w in args.widths.split(",")):
        weight = torch.randn(width, FEATURES + 1, generator=gen) / FEATURES ** 0.5  # [W | b]
        layer = FusedFirstLayer(weight, columns.numpy(), N_FREQUENCIES, "relu")
        out_unfused, out_fused = torch.ones(args.chunk, width + 1), torch.ones(args.chunk, width + 1)
        last = {}

        def unfused():
            for start in range(0, args.samples, args.chunk):
                stop = min(start + args.chunk, args.samples)
                rows = stop - start
                positional_encoding_at(origins, dirs, t[start:stop], ray_index[start:stop], N_FREQUENCIES,
                                       columns=columns, out=enc[:rows])
                torch.mm(enc[:rows], weight.t(), out=out_unfused[:rows, :width])
                out_unfused[:rows].relu_()
            last["unfused"] = out_unfused[:rows, :width].clone()

        def fused():
            for start in range(0, args.samples, args.chunk):
                stop = min(start + args.chunk, args.samples)
                rows = stop - start
                layer(*rays_np, t[start:stop], ray_index[start:stop], out_fused[:rows])
            last["fused"] = out_fused[:rows, :width].clone()

        times: dict[str, list[float]] = {"unfused": [], "fused": []}
        for rep in range(args.repeats + 1):
            for name, run in (("unfused", unfused), ("fused", fused)):
                start = time.perf_counter()
                run()
                if rep:
                    times[name].append(time.perf_counter() - start)
        u, f = (statistics.median(times[k]) for k in ("unfused", "fused"))
        diff = float((last["fused"] - last["unfused"]).abs().max())
        results[width] = {"unfused_ms": round(u * 1e3, 2), "fused_ms": round(f * 1e3, 2), "ratio": round(f / u, 3),
                          "max_diff": diff}
    print(f"{args.samples:,} samples x {FEATURES} features, chunks of {args.chunk:,}, {torch.get_num_threads()} threads")
    print(f"{'width':>6} {'encode + BLAS ms':>17} {'fused ms':>9} {'fused / unfused':>16} {'max diff':>9}")
    for width, r in results.items():
        print(f"{width:>6} {r['unfused_ms']:>17.1f} {r['fused_ms']:>9.1f} {r['ratio']:>16.3f} {r['max_diff']:>9.1e}")
    print(json.dumps({"samples": args.samples, "threads": torch.get_num_threads(),
                      "widths": {str(w): r for w, r in results.items()}}))


NETWORK_WAYS = ("off", "first-layer", "auto")  # InferencePlan.run's fuse


def networks(args, origins, dirs, t, ray_index) -> None:
    """The --network table: each width's network through the plan, the three ways interleaved."""
    dir_enc = positional_encoding(dirs, 4)  # [B, 27]
    results = {}
    for width in (int(w) for w in args.widths.split(",")):
        torch.manual_seed(width)
        net = NerfMLP(FieldConfig(depth=2, width=width, skips=(), pos_frequencies=N_FREQUENCIES, dir_frequencies=4))
        plan = plan_for(net)  # kept: its kernels are built at the first call
        run_args = (origins, dirs, t, ray_index, dir_enc, N_FREQUENCIES, positional_encoding_at, args.chunk)
        times: dict[str, list[float]] = {way: [] for way in NETWORK_WAYS}
        last = {}
        for rep in range(args.repeats + 1):
            for way in NETWORK_WAYS:
                start = time.perf_counter()
                last[way] = plan.run(*run_args, fuse=way)
                if rep:
                    times[way].append(time.perf_counter() - start)
        med = {way: statistics.median(v) for way, v in times.items()}
        diff = max(float((a - b).abs().max()) for a, b in zip(last["auto"], last["off"]))
        results[width] = {**{f"{way}_ms": round(med[way] * 1e3, 2) for way in NETWORK_WAYS},
                          "network_vs_off": round(med["auto"] / med["off"], 3),
                          "network_vs_first_layer": round(med["auto"] / med["first-layer"], 3),
                          "max_diff": diff}
    print(f"{args.samples:,} samples, 2 hidden layers, chunks of {args.chunk:,}, {torch.get_num_threads()} threads")
    print(f"{'width':>6} {'unfused ms':>11} {'first layer ms':>15} {'network ms':>11} {'net/unfused':>12} "
          f"{'net/first':>10} {'max diff':>9}")
    for width, r in results.items():
        print(f"{width:>6} {r['off_ms']:>11.1f} {r['first-layer_ms']:>15.1f} {r['auto_ms']:>11.1f} "
              f"{r['network_vs_off']:>12.3f} {r['network_vs_first_layer']:>10.3f} {r['max_diff']:>9.1e}")
    print(json.dumps({"mode": "network", "samples": args.samples, "threads": torch.get_num_threads(), "widths": {str(w): r for w, r in results.items()}}))


if __name__ == "__main__":
    main()
