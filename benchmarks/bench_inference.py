"""Dense vs compacted 95 % models on the same renderer, before and after the inference path, side by side.

Before: each network's own forward on per-sample inputs (`MLPConfig(inference="reference")`: every encoding
feature, the direction encoding gathered for every sample and concatenated, fresh tensors per chunk), as the
original code. After: `nerfprune.field.inference` (`inference="fast"`, the default: direction term once per
ray, only the encoding columns read, buffers reused). Both run through `render_view` with marching in rounds,
so a ratio never comes from a slow dense baseline: each pruned model is divided by the dense model on the
same path.

Models: the 2x128 network (the 2022 study's), random initialisation (render time does not depend on training
except through early ray termination, which random weights rarely trigger: every ray runs all its samples),
pruned to 95 % of its prunable weights two ways and compacted: structured (whole neurons) and unstructured
(layer-wise magnitude; on random weights global magnitude empties whole layers, see bench_masks.py). All six
(model, path) pairs are rendered round-robin, `--repeats` rounds after a warm-up, so machine load hits them
alike; wall-clock and process CPU-time medians (CPU time is steadier on a shared machine). `--profile` adds
the per-stage profile (`experiments/profile.py`) of the dense and structured models on both paths, and
`--chunks` the render time over chunk sizes (`RenderConfig.chunk`).

    OMP_NUM_THREADS=1 TI_CPU_MAX_NUM_THREADS=1 python benchmarks/bench_inference.py [--size 64] [--repeats 5]

Prints tables, then as the very last line one JSON object. The default run takes about two minutes here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # taichi_kernels/ from a source checkout

PATHS = {"before": "reference", "after": "fast"}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64, help="image width and height of the built-in view, pixels")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds over all models and paths (after a warm-up)")
    p.add_argument("--sparsity", type=float, default=0.95, help="fraction of the prunable weights removed")
    p.add_argument("--profile", action="store_true", help="also print the per-stage profile (dense, structured)")
    p.add_argument("--chunks", default="", help="comma-separated chunk sizes to time the fast path at (e.g. 4096,16384,65536)")
    return p.parse_args()


def build_models(sparsity: float):
    """dense, structured and unstructured (layer-wise) pruned + compacted, from one random initialisation."""
    from nerfprune.pruning.lottery import PruneConfig, next_masks
    from nerfprune.pruning.variants import build_variant
    from nerfprune.training import TrainConfig, build_model

    dense = build_model(TrainConfig())
    models = {"dense": dense}
    for label, method in (("structured", "structured"), ("unstructured", "layerwise")):
        masks = next_masks(dense, None, PruneConfig(method=method, sparsity=sparsity), 1)
        models[label] = build_variant(dense, masks, "compacted")
    return models


def widths(model) -> str:
    """The coarse network's layer widths after compaction, e.g. "63>20>20 | 47>10"."""
    net = model.coarse
    topo = net.topology
    trunk = [topo.inputs[0][1]] + [l.out_features for l in topo.layers if l.name.startswith("pts.")]
    return ">".join(map(str, trunk)) + f" | views {topo.layer('views.0').in_features}>{topo.layer('views.0').out_features}"


def time_renders(models, scene, view: int, render, repeats: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, path) -> (median wall s, median CPU s) over `repeats` interleaved rounds after one warm-up."""
    from nerfprune.field.config import MLPConfig
    from nerfprune.renderer import render_view

    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(repeats + 1):
        for name, model in models.items():
            for when, path in PATHS.items():
                wall, cpu = time.perf_counter(), time.process_time()
                render_view(model, scene.cameras, view, render, scene.background, mlp=MLPConfig(inference=path))
                if round_:
                    samples.setdefault((name, when), []).append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)) for k, v in samples.items()}


def encoding_figures(repeats: int) -> dict[str, float]:
    """ms to encode 131,072 points (10 octaves): all 63 features, the 33 of the 5 lowest octaves, every
    other feature; and the full encoding followed by a gather of 33 columns (the previous way)."""
    import torch

    from taichi_kernels.backend import TAICHI

    x = torch.rand(131072, 3) * 4 - 2
    low, half = torch.arange(33), torch.arange(0, 63, 2)
    out = torch.empty(131072, 64)
    cases = {"all 63": lambda: TAICHI.positional_encoding(x, 10, out=out),
             "33 (5 octaves)": lambda: TAICHI.positional_encoding(x, 10, columns=low, out=out),
             "32 (every other)": lambda: TAICHI.positional_encoding(x, 10, columns=half, out=out),
             "all 63 + gather 33": lambda: TAICHI.positional_encoding(x, 10, out=out)[:, :63].index_select(1, low)}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for round_ in range(3 * repeats + 1):
        for name, fn in cases.items():
            start = time.process_time()
            fn()
            if round_:
                times[name].append((time.process_time() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    opts = parse()
    from nerfprune.experiments.profile import profile_render, stage_sort_key
    from nerfprune.field.config import MLPConfig
    from nerfprune.renderer import RenderConfig
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    scene = make_builtin_scene(BuiltinSceneConfig(width=opts.size, height=opts.size, n_views=8, n_test=1))
    view = int(scene.split("val")[0])
    render = RenderConfig()
    models = build_models(opts.sparsity)
    timed = time_renders(models, scene, view, render, opts.repeats)

    print(f"{opts.size}x{opts.size} built-in view, 2x128 coarse + fine, {render.n_coarse} + {render.n_fine} samples, "
          f"chunk {render.chunk}, random init; {opts.sparsity:.0%} pruned + compacted; medians of {opts.repeats} "
          "interleaved rounds")
    print(f"{'model':13s} {'coarse widths':24s} {'before s':>9s} {'after s':>9s} {'before cpu':>11s} {'after cpu':>10s}"
          f" {'x dense before':>15s} {'x dense after':>14s} {'speed-up':>9s}")
    figures: dict = {"size": opts.size, "repeats": opts.repeats, "sparsity": opts.sparsity, "chunk": render.chunk,
                     "models": {}}
    for name, model in models.items():
        (bw, bc), (aw, ac) = timed[(name, "before")], timed[(name, "after")]
        ratio_b, ratio_a = bc / timed[("dense", "before")][1], ac / timed[("dense", "after")][1]
        print(f"{name:13s} {widths(model):24s} {bw:9.3f} {aw:9.3f} {bc:11.3f} {ac:10.3f} {ratio_b:15.3f} {ratio_a:14.3f}"
              f" {bc / ac:9.2f}")
        figures["models"][name] = {"before_wall_s": round(bw, 4), "after_wall_s": round(aw, 4), "before_cpu_s": round(bc, 4),
                                   "after_cpu_s": round(ac, 4), "cpu_ratio_to_dense_before": round(ratio_b, 3),
                                   "cpu_ratio_to_dense_after": round(ratio_a, 3), "speedup_cpu": round(bc / ac, 3)}
    print("ratios and speed-up from CPU time; 'x dense' divides by the dense model on the same path")

    enc = encoding_figures(opts.repeats)
    print("positional encoding of 131,072 points, 10 octaves, ms: " + ", ".join(f"{k} {v:.1f}" for k, v in enc.items()))
    figures["encoding_ms"] = {k: round(v, 2) for k, v in enc.items()}

    if opts.chunks:
        chunk_times = {}
        for chunk in (int(c) for c in opts.chunks.split(",")):
            sub = {k: models[k] for k in ("dense", "structured")}
            cfg = RenderConfig(chunk=chunk)
            t = time_renders(sub, scene, view, cfg, max(1, opts.repeats // 2))
            chunk_times[chunk] = {f"{m}_{w}_cpu_s": round(t[(m, w)][1], 4) for m in sub for w in PATHS}
            print(f"chunk {chunk:6d}: " + ", ".join(f"{k} {v:.3f}" for k, v in chunk_times[chunk].items()))
        figures["chunks"] = chunk_times

    if opts.profile:
        stages = {}
        for name in ("dense", "structured"):
            for when, path in PATHS.items():
                stages[f"{name} {when}"] = profile_render(models[name], scene.cameras, view, render, opts.repeats,
                                                          scene.background, mlp=MLPConfig(inference=path))
        rows = sorted({s for st in stages.values() for s in st}, key=stage_sort_key)
        print(f"\nper-stage profile, ms (wall, median of {opts.repeats})")
        print(f"{'stage':28s}" + "".join(f"{n:>20s}" for n in stages))
        for row in rows:
            print(f"{row:28s}" + "".join(f"{stages[n].get(row, 0.0) * 1e3:20.1f}" for n in stages))
        figures["profile_ms"] = {n: {k: round(v * 1e3, 2) for k, v in st.items()} for n, st in stages.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
