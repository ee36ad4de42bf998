"""Pruning that pays: render time x dense and PSNR of every method, sparsity and inference path, side by side.

One dense run of N iterations (checkpoints kept at N/2 and N) is the baseline
for everything, rendered on the same, best renderer as every pruned model (the
fast inference plan, the occupancy grid of each model's own field). Pruned
models come from two budgets:

  equal   the N/2 model pruned + N/2 fine-tuning iterations: N iterations in
          all, like the dense baseline (every sparsity)
  2022    the N model pruned + N fine-tuning iterations: 2N in all, the 2022
          study's way, compared as it did with the dense N model (--sparsities-2022)

and two methods:

  global      global magnitude, one shot, fine-tuned from the pre-trained
              weights (the 2022 study); inference paths masked (the study's
              torch.nn.utils.prune), baked, compacted, sparse (CSR where faster), int8
  structured  `nerfprune prune --method structured` with its defaults (whole
              neurons by weight magnitude, one shot: the best of the recipes
              compared in docs/pruning.md); paths structured (compacted),
              structured+sparse, structured+int8

and one control (--scratch): the structured cell's compacted architecture
(2 x w, w its live neurons per layer) trained from scratch for N iterations,
like the dense baseline: does pruning find a better small net than plain
training of that small net? (Frankle & Carbin's question, at NeRF scale.)

Every run trains at one flat Adam rate, --lr (default 4e-3: NeRF's 5e-4 leaves the dense
baseline under-trained at N = 5,000; docs/pruning.md), cells kept in <out>/<scene>/lr<rate>.

Timings: one test view, every model and path interleaved round-robin, median
of --repeats after a warm-up, each with its MLP samples per ray; then a
per-stage profile of the dense model and of the fastest 95 % path (where the
time goes, and what no pruning can shrink); PSNR: mean over the first --test-views test
views. Trained models are kept in --out (resumable; `--train-only --methods m`
lets two processes share the training). A Pareto plot of speed against PSNR
(equal budget) is written to --plot.

    python benchmarks/bench_prune.py --scene ../shared/datasets/mic --factor 8 --iterations 5000
    python benchmarks/bench_prune.py --quick         # built-in scene, 600 iterations, 90 / 95 %: a look

Prints a table with ratios to dense, then as the very last line one JSON object
(`best_ratio_95`, `dpsnr_95`: the fastest path at 95 % within 0.5 dB at equal
budget, else the fastest at 95 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import nerfprune  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, nerfprune/__init__.py)
import numpy as np
import torch

from nerfprune.checkpoint import load_checkpoint
from nerfprune.errors import ConfigError
from nerfprune.experiments.compare import compare_paths
from nerfprune.experiments.profile import profile_render, stage_sort_key
from nerfprune.field import NerfModelConfig
from nerfprune.field.graph import int8_available
from nerfprune.pruning.lottery import PruneConfig, run_pruning
from nerfprune.pruning.variants import build_variant
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene import load_scene
from nerfprune.training import CHECKPOINT_NAME, TrainConfig, Trainer, load_model

PATHS = {  # method -> {label: inference variant}
    "global": {"masked": "masked", "baked": "baked", "compacted": "compacted", "sparse": "sparse", "int8": "int8"},
    "structured": {"structured": "compacted", "structured+sparse": "sparse", "structured+int8": "int8"},
}
QUICK = {"scene": "builtin", "iterations": 600, "sparsities": "0.9,0.95", "sparsities_2022": "0.95", "test_views": 2,
         "repeats": 3}
GOAL_RATIO, GOAL_DPSNR = 0.20, -0.5
# Adam's rate for every run (dense, fine-tuning: a pruned cell keeps its parent's rate, scratch). NeRF's 5e-4 is
# for 2e5+ steps; on mic at 100x100 the dense 2x128 net reached, at 2,500 iterations, 21.17 dB with it, 23.71 with
# 2e-3, 28.58 with 4e-3 and 28.45 with 8e-3 (docs/pruning.md, "The learning rate").
LR = 4e-3


def train_config(iterations: int, lr: float, encoding: str) -> TrainConfig:
    """The 2022 study's net and sampling (2x128, 64 + 64), 1,024 rays per step, the occupancy grid on, Adam at a
    flat `lr` (the decay's time constant is 250k steps); the position `encoding` "frequency" (the study's) or
    "grid" (the feature grid's defaults, nerfprune.field.feature_grid)."""
    return TrainConfig(iterations=iterations, batch_size=1024, lr=lr, lr_decay_steps=250_000, log_every=100,
                       checkpoint_every=500, val_views=0, model=NerfModelConfig(preset="small", encoding=encoding),
                       render=RenderConfig(n_coarse=64, n_fine=64))


def train_dense(scene, out: Path, milestones: list[int], lr: float, encoding: str) -> dict[int, Path]:
    """One dense run, checkpointed at each milestone into dense-<k>/ (each continues the previous)."""
    folders, previous = {}, None
    for k in sorted(milestones):
        folder = out / f"dense-{k}"
        if previous is not None and not (folder / "checkpoint.safetensors").exists():
            folder.mkdir(parents=True, exist_ok=True)  # continue the shorter run: resume is exact, so it is one run
            shutil.copy(previous / "checkpoint.safetensors", folder / "checkpoint.safetensors")
        Trainer(scene, train_config(k, lr, encoding), folder).run(resume=True)
        folders[k], previous = folder, folder
    return folders


def prune_config(method: str, sparsity: float, iterations: int) -> PruneConfig:
    """The method's PruneConfig with `iterations` of fine-tuning in all (split over its rounds)."""
    cfg = PruneConfig(method=method, sparsity=sparsity, eval_views=0)
    return replace(cfg, retrain_iterations=max(1, iterations // cfg.rounds))


def prune_cell(parent: Path, scene, method: str, sparsity: float, iterations: int, folder: Path) -> Path:
    """Prune `parent` and fine-tune; returns the last round's folder (resumable)."""
    cfg = prune_config(method, sparsity, iterations)
    run_pruning(parent, scene, cfg, folder)
    return folder / f"round-{cfg.rounds}"


def scratch_width(cell: Path) -> int:
    """Live neurons of the first hidden layer of a structured cell's coarse network: the control's width."""
    mask = load_checkpoint(cell / CHECKPOINT_NAME).masks["coarse.pts.0.weight"]  # [width, inputs]
    return int(mask.any(dim=1).sum())


def train_scratch(scene, out: Path, width: int, iterations: int, lr: float, encoding: str) -> Path:
    """The small architecture (2 x width, the views layer width // 2 as in the parent) from scratch, resumable."""
    folder = out / f"scratch-w{width}-{iterations}"
    cfg = replace(train_config(iterations, lr, encoding), model=NerfModelConfig(preset="small", width=width,
                                                                               encoding=encoding))
    Trainer(scene, cfg, folder).run(resume=True)
    return folder


def stage_table(stages: dict[str, dict[str, float]]) -> str:
    """Per-stage milliseconds per view, one column per model, with the MLP's layers summed."""
    def grouped(st: dict[str, float]) -> dict[str, float]:
        mlp = sum(v for k, v in st.items() if k.startswith("layer ") or k == "mlp glue")
        rows = {k: v for k, v in st.items() if not (k.startswith("layer ") or k == "mlp glue")}
        rows["MLP (all layers + glue)"] = mlp
        rows["not MLP (total - MLP)"] = st["total"] - mlp
        return rows
    cols = {name: grouped(st) for name, st in stages.items()}
    keys = sorted({k for c in cols.values() for k in c},
                  key=lambda k: (k in ("not MLP (total - MLP)", "total"), k == "total", stage_sort_key(k)))
    widths = [max(12, len(name) + 2) for name in cols]
    lines = [f"{'stage (ms per view)':26s}" + "".join(f"{name:>{w}s}" for name, w in zip(cols, widths))]
    for k in keys:
        lines.append(f"{k:26s}" + "".join(f"{c.get(k, 0.0) * 1e3:{w}.1f}" for c, w in zip(cols.values(), widths)))
    return "\n".join(lines)


def save_views(models: dict, titles: dict, scene, render_cfg: RenderConfig, path: Path) -> None:
    """A labelled grid, six to a row: the first test view's ground truth, then each model's render (titles: key -> caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view = int(scene.split("test")[0])
    images = [("ground truth", scene.images_float([view])[0])]
    with torch.no_grad():
        images += [(title, render_view(models[key], scene.cameras, view, render_cfg, scene.background)["rgb"])
                   for key, title in titles.items()]
    cols = min(6, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), dpi=120, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, images):
        ax.imshow(np.clip(image.numpy() if torch.is_tensor(image) else image, 0.0, 1.0))
        ax.set_title(title, fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points (time ratio, dPSNR) that no other point beats on both: faster and at least as good."""
    front, best = [], float("-inf")
    for ratio, dpsnr in sorted(points, key=lambda p: (p[0], -p[1])):
        if dpsnr > best + 1e-3:  # a point no better than the last one on the front (to 0.001 dB) is not on it
            front.append((ratio, dpsnr))
            best = dpsnr
    return front


def plot_pareto(rows: list[dict], path: Path, title: str) -> None:
    """Render time x dense (log) against PSNR - dense, equal budget; one marker per path, the front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    equal = [r for r in rows if r["budget"] == "equal"]
    fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=120)
    group = lambda r: "from scratch (control)" if r["method"] == "scratch" else r["path"]  # noqa: E731
    for label in dict.fromkeys(group(r) for r in equal):
        pts = [r for r in equal if group(r) == label]
        ax.scatter([r["ratio"] for r in pts], [r["dpsnr"] for r in pts], label=label, s=28)
        for r in pts:
            ax.annotate(f"{r['sparsity'] * 100:g}", (r["ratio"], r["dpsnr"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    front = pareto_front([(r["ratio"], r["dpsnr"]) for r in equal if r["method"] != "scratch"])  # pruned models only
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=0.8, label="Pareto front")
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.axhline(GOAL_DPSNR, color="red", lw=0.6, ls=":")
    ax.axvline(GOAL_RATIO, color="red", lw=0.6, ls=":", label="goal (<= 0.20x, >= -0.5 dB)")
    ax.scatter([1.0], [0.0], marker="*", s=90, color="black", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("render time x dense (same renderer; log)")
    ax.set_ylabel("PSNR - dense (dB), equal budget")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # off the points
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'method':10s} {'budget':6s} {'path':18s} {'sparsity':>8s} {'time s':>7s} {'x dense':>7s} "
             f"{'PSNR':>6s} {'vs dense':>8s} {'samples/ray':>11s}"]
    for r in rows:
        lines.append(f"{r['method']:10s} {r['budget']:6s} {r['path']:18s} {r['sparsity']:8.2f} {r['time_s']:7.3f} "
                     f"{r['ratio']:7.3f} {r['psnr']:6.2f} {r['dpsnr']:+8.2f} {r['samples']:11.1f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default="builtin", help="'builtin' (default) or a scene folder")
    p.add_argument("--factor", type=int, default=1, help="downscale factor for a scene folder (mic at 100x100: 8)")
    p.add_argument("--iterations", type=int, default=5000, help="N: the dense baseline's iterations (pruned: N/2 + N/2, and N + N)")
    p.add_argument("--sparsities", default="0.8,0.9,0.95,0.98,0.99", help="comma-separated sparsities at equal budget")
    p.add_argument("--sparsities-2022", default="0.95", help="sparsities also pruned the 2022 way (N + N); '' for none")
    p.add_argument("--methods", default="global,structured", help="comma-separated: global, structured")
    p.add_argument("--repeats", type=int, default=7, help="timed renders per path (after one warm-up)")
    p.add_argument("--test-views", type=int, default=8, help="test views for PSNR (the first ones of the split)")
    p.add_argument("--out", default="outputs/bench_prune", help="where trained models are kept (resumable)")
    p.add_argument("--plot", default=None, help="Pareto plot PNG (default: <out>/<scene>/pareto.png)")
    p.add_argument("--budgets", default="equal,2022", help="comma-separated: equal, 2022")
    p.add_argument("--views", default=None, help="PNG grid of the first test view: truth, dense, and the first path "
                   "of every cell (default: <out>/<scene>/views.png)")
    p.add_argument("--lr", type=float, default=LR, help="Adam's learning rate of every run (flat); cells are kept "
                   "in <out>/<scene>/lr<lr>")
    p.add_argument("--encoding", default="frequency", choices=["frequency", "grid"], help="position encoding of "
                   "every run: 'frequency' (NeRF's, the 2022 study's) or 'grid' (a feature grid; cells in "
                   "<out>/<scene>/grid-lr<lr>)")
    p.add_argument("--threads", type=int, default=0, help="torch and Taichi CPU threads (0: as the environment says)")
    p.add_argument("--scratch", default="0.95", help="structured sparsities whose architecture is also trained from "
                   "scratch for N iterations (the control); '' for none")
    p.add_argument("--train-only", action="store_true", help="train and prune the cells, time nothing")
    p.add_argument("--quick", action="store_true", help="a short look: built-in scene, 600 iterations, 90 / 95 %%")
    args = p.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.threads > 0:  # before the first kernel: Taichi reads its thread count once, at ti.init
        os.environ["TI_CPU_MAX_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(PATHS))
    if unknown or args.iterations < 2:
        p.error(f"--methods: unknown {unknown} (choose from {', '.join(PATHS)})" if unknown else "--iterations must be >= 2")
    try:  # --lr and --iterations within TrainConfig's bounds (docs/validation.md)
        train_config(args.iterations, args.lr, args.encoding).validate()
    except ConfigError as e:
        p.error(str(e))
    scene = load_scene(args.scene, factor=args.factor) if args.scene != "builtin" else load_scene("builtin")
    out = Path(args.out) / scene.name / f"{'grid-' if args.encoding == 'grid' else ''}lr{args.lr:g}"
    n, half = args.iterations, args.iterations // 2
    budgets = [b for b in args.budgets.split(",") if b]
    if set(budgets) - {"equal", "2022"}:
        p.error(f"--budgets: unknown {sorted(set(budgets) - {'equal', '2022'})} (choose from equal, 2022)")
    # --train-only of equal-budget cells needs only the N/2 parent (the N run may still be training elsewhere)
    dense = train_dense(scene, out, [half] if args.train_only and "2022" not in budgets else [half, n], args.lr,
                        args.encoding)
    cells = [("equal", float(s)) for s in args.sparsities.split(",") if s] if "equal" in budgets else []
    cells += [("2022", float(s)) for s in args.sparsities_2022.split(",") if s] if "2022" in budgets else []
    trained = {}  # (method, budget, sparsity) -> round folder
    for method in methods:
        for budget, s in cells:
            parent, iters = (dense[half], half) if budget == "equal" else (dense[n], n)
            folder = out / f"{method}-{budget}-{s:.2f}"
            trained[(method, budget, s)] = prune_cell(parent, scene, method, s, iters, folder)
    scratch = {}  # sparsity -> (width, folder)
    for s in [float(x) for x in args.scratch.split(",") if x] if "structured" in methods and "equal" in budgets else []:
        if ("structured", "equal", s) not in trained:
            p.error(f"--scratch {s}: needs the structured equal-budget cell at that sparsity (add it to --sparsities)")
        width = scratch_width(trained[("structured", "equal", s)])
        scratch[s] = (width, train_scratch(scene, out, width, n, args.lr, args.encoding))
        trained[("scratch", "equal", s)] = scratch[s][1]
    if args.train_only:
        print(json.dumps({"trained": sorted(str(f) for f in trained.values())}))
        return

    models = {("dense", 0.0): load_model(dense[n])[0], ("dense N/2", 0.0): load_model(dense[half])[0]}
    labels = {}  # model key -> (method, budget, path label)
    for (method, budget, s), folder in trained.items():
        model, _, ckpt = load_model(folder)
        if method == "scratch":
            key = (f"scratch/{s}", s)
            models[key], labels[key] = model, ("scratch", budget, f"scratch 2x{scratch[s][0]}")
            continue
        for label, variant in PATHS[method].items():
            if variant == "int8" and not int8_available():
                continue
            key = (f"{method}/{budget}/{label}", s)
            models[key] = build_variant(model, ckpt.masks, variant)
            labels[key] = (method, budget, label)
    render_cfg = train_config(n, args.lr, args.encoding).render
    results = compare_paths(models, scene, render_cfg, views=args.test_views, repeats=args.repeats)
    by_key = {(r.label, r.sparsity): r for r in results}
    base = by_key[("dense", 0.0)]
    rows = [{"method": "dense", "budget": f"{half}", "path": "dense N/2", "sparsity": 0.0,
             "time_s": by_key[("dense N/2", 0.0)].median_s, "psnr": by_key[("dense N/2", 0.0)].psnr,
             "samples": by_key[("dense N/2", 0.0)].samples_per_ray}]
    row_keys = [("dense N/2", 0.0)]  # the model key of each row
    for key, (method, budget, label) in labels.items():
        r = by_key[key]
        row_keys.append(key)
        rows.append({"method": method, "budget": budget, "path": label, "sparsity": key[1], "time_s": r.median_s,
                     "psnr": r.psnr, "samples": r.samples_per_ray})
    for row in rows:
        row["ratio"] = row["time_s"] / base.median_s
        row["dpsnr"] = row["psnr"] - base.psnr

    print(f"scene {scene.source} {scene.width}x{scene.height}; 2x128, {args.encoding} encoding, 64+64 samples, "
          f"occupancy grid, lr {args.lr:g}; "
          f"dense {n} it "
          f"({base.median_s:.3f} s/view, {base.psnr:.2f} dB on {args.test_views} test views, {base.samples_per_ray:.1f} "
          f"MLP samples/ray); equal = {half} + {half} it, 2022 = {n} + {n} it; one test view timed, median of "
          f"{args.repeats}, interleaved; {torch.get_num_threads()} torch threads")
    print(format_rows(rows))
    plot = Path(args.plot) if args.plot else out / "pareto.png"
    plot_pareto(rows, plot, f"{scene.name} {scene.width}x{scene.height}, dense {n} it vs pruned {half} + {half} it")
    print(f"Pareto plot: {plot}")
    first = {}  # (method, budget, sparsity) -> the model key of its first path
    for key, (method, budget, _label) in labels.items():
        first.setdefault((method, budget, key[1]), key)
    titles = {("dense", 0.0): f"dense {n} it, {base.psnr:.2f} dB"}
    for (method, budget, sparsity), key in sorted(first.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        name = labels[key][2] if method == "scratch" else method  # every path of a cell renders the same image
        titles[key] = f"{name} {sparsity * 100:g}% {budget}, {by_key[key].psnr:.2f} dB"
    views = Path(args.views) if args.views else out / "views.png"
    save_views(models, titles, scene, render_cfg, views)
    print(f"views: {views}")

    pruned = [r for r in rows if r["method"] not in ("dense", "scratch")]  # the controls are not candidates
    at95 = [r for r in pruned if r["budget"] == "equal" and abs(r["sparsity"] - 0.95) < 1e-9 and r["path"] != "masked"]
    figures = {"dense_s": round(base.median_s, 4), "dense_psnr": round(base.psnr, 3), "iterations": n, "lr": args.lr,
               "encoding": args.encoding,
               "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
               "pareto_equal": [[round(a, 4), round(b, 3)] for a, b in
                                pareto_front([(r["ratio"], r["dpsnr"]) for r in pruned if r["budget"] == "equal"])]}
    if at95:
        ok = [r for r in at95 if r["dpsnr"] >= GOAL_DPSNR]
        best = min(ok or at95, key=lambda r: r["ratio"])
        verdict = "within 0.5 dB" if ok else "none within 0.5 dB; fastest"
        print(f"best path at 95 % (equal budget, {verdict}): {best['method']}/{best['path']} at {best['ratio']:.3f}x "
              f"dense time, {best['dpsnr']:+.2f} dB (goal <= {GOAL_RATIO:.2f}x at >= {GOAL_DPSNR} dB)")
        figures.update(best_path_95=f"{best['method']}/{best['path']}", best_ratio_95=round(best["ratio"], 4),
                       dpsnr_95=round(best["dpsnr"], 3), goal_met=bool(ok) and best["ratio"] <= GOAL_RATIO)
        fastest = min(at95, key=lambda r: r["ratio"])
        fastest_key = row_keys[rows.index(fastest)]
        view = int(scene.split("test")[0])
        stages = {name: profile_render(models[key], scene.cameras, view, render_cfg, args.repeats, scene.background)
                  for name, key in (("dense", ("dense", 0.0)), (f"{fastest['method']}/{fastest['path']} 95%", fastest_key))}
        print(stage_table(stages))
        figures["stages_ms"] = {name: {k: round(v * 1e3, 2) for k, v in st.items()} for name, st in stages.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
