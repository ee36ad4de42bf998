"""Empty-space skipping: the occupancy grid on vs off, same seed and schedule, side by side in one process.

For each scene, two training runs (grid off: today's 64 + 64 samples over [near, far]; grid on:
`TrainConfig.occupancy`) take turns step by step, so machine load hits both alike. At every milestone
each run is evaluated on the same validation views (PSNR) and one validation view is rendered
`--repeats` times in turn by both models (median s/view); the MLP samples per ray of that render are
recorded (coarse + fine, after early termination). Training s/iteration is the median over the
steps since the previous milestone. The wall time at which each run first reaches `--target-psnr`
(validation PSNR at a milestone) is reported when it does. For the time to a target that the slow run
reaches only far beyond the table's milestones, `--off-until K` stops the grid-off run after K iterations
(its wall time then bounds its time to the target from below, if it has not reached it) and
`--stop-at-target` ends a scene at the first milestone at which the grid-on run has reached the target.

    python benchmarks/bench_empty_space.py                       # mic (if present) and built-in, 1k/2k/5k
    python benchmarks/bench_empty_space.py --quick               # built-in only, 100/200 iterations

Prints a table, then as the very last line one JSON object: per scene and milestone the figures of both
runs, and `train_ratio` / `render_ratio` (on / off, at the last milestone of the first scene) and
`dpsnr_<k>` (PSNR on minus off at milestone k, first scene).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import nerfprune  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, nerfprune/__init__.py)
import torch

from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field import NerfModelConfig
from nerfprune.outputs import depth_to_image, write_png
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene import load_scene
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.training import OccupancyConfig, TrainConfig, Trainer, camera_tensors

MIC = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mic"


def scenes(names: list[str], quick: bool) -> dict:
    out = {}
    for name in names:
        if name == "builtin":
            size = 32 if quick else 64
            out[name] = make_builtin_scene(BuiltinSceneConfig(width=size, height=size))
        elif name.startswith("mic"):
            if not MIC.exists():
                print(f"skipping {name}: {MIC} not found")
                continue
            out[name] = load_scene(MIC, factor=4 if name == "mic200" else 8)
    return out


def save_views(runs: dict, scene, index: int, out: Path) -> None:
    """Checkpoint of each run, and its render + depth map of validation view `index` next to the ground truth."""
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / "truth.png", scene.images_float([index])[0])
    for label, run in runs.items():
        trainer = run["trainer"]
        trainer.save()
        with torch.no_grad():
            view = render_view(trainer.model.eval(), scene.cameras, index, trainer.cfg.render, scene.background)
        trainer.model.train()
        write_png(out / f"grid-{label}.png", view["rgb"])
        write_png(out / f"grid-{label}-depth.png", depth_to_image(view["depth"], scene.cameras.near, scene.cameras.far))


def run_scene(scene, milestones: list[int], args, folder: Path) -> dict:
    base = dict(iterations=max(milestones), batch_size=1024, lr_decay_steps=250_000, seed=args.seed, val_views=0,
                checkpoint_every=10**8, model=NerfModelConfig(preset="small"),
                render=RenderConfig(n_coarse=64, n_fine=64))
    runs = {}
    for label, enabled in (("off", False), ("on", True)):
        cfg = TrainConfig(**base, occupancy=OccupancyConfig(enabled=enabled, resolution=args.resolution))
        trainer = Trainer(scene, cfg, folder / f"train-{label}")
        batcher = trainer.batcher()
        runs[label] = {"trainer": trainer, "batcher": batcher, "cams": camera_tensors(scene), "steps": [], "wall": 0.0,
                       "reached": None}
    views = EvalConfig(split="val", max_views=args.val_views, timing_repeats=0)
    timed_view = int(scene.split("val")[0])
    rows = []
    done = 0
    for k in milestones:
        active = {label: run for label, run in runs.items() if label == "on" or args.off_until is None or k <= args.off_until}
        for _ in range(done, k):
            for run in active.values():
                start = time.perf_counter()
                run["trainer"].step(run["batcher"], run["cams"])
                seconds = time.perf_counter() - start
                run["steps"].append(seconds)
                run["wall"] += seconds
        row = {"iterations": k}
        for label, run in active.items():
            model = run["trainer"].model.eval()
            psnr = evaluate_views(model, scene, run["trainer"].cfg.render, views)["psnr"]["mean"]
            row[label] = {"psnr": psnr, "s_per_it": statistics.median(run["steps"][done:k]), "wall_s": run["wall"]}
            if run["reached"] is None and psnr >= args.target_psnr:
                run["reached"] = run["wall"]
        with torch.no_grad():
            seconds = {label: [] for label in active}
            for rep in range(args.repeats + 1):
                for label, run in active.items():
                    start = time.perf_counter()
                    out = render_view(run["trainer"].model, scene.cameras, timed_view, run["trainer"].cfg.render,
                                      scene.background)
                    if rep:
                        seconds[label].append(time.perf_counter() - start)
                    row[label]["samples_per_ray"] = out["mlp_samples_per_ray"]
        for label, run in active.items():
            row[label]["render_s"] = statistics.median(seconds[label])
            grid = getattr(run["trainer"].model, "grid", None)
            row[label]["occupied"] = None if grid is None else grid.occupied_fraction
            run["trainer"].model.train()
        rows.append(row)
        done = k
        print(f"  {k:6d} it: " + "  ".join(
            f"{label}: {row[label]['psnr']:.2f} dB {row[label]['s_per_it']:.3f} s/it {row[label]['render_s']:.2f} s/view "
            f"{row[label]['samples_per_ray']:.1f} samples/ray" for label in active), flush=True)
        if args.stop_at_target and runs["on"]["reached"] is not None:
            break
    save_views(runs, scene, timed_view, folder)
    return {"rows": rows, "seconds_to_target": {label: run["reached"] for label, run in runs.items()},
            "seconds_trained": {label: run["wall"] for label, run in runs.items()},
            "iterations_trained": {label: len(run["steps"]) for label, run in runs.items()},
            "size": [scene.width, scene.height]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", default="mic,builtin", help="comma-separated: mic (100x100), mic200 (200x200), builtin")
    p.add_argument("--milestones", default="1000,2000,5000", help="iterations at which both runs are evaluated")
    p.add_argument("--other-milestones", default=None,
                   help="milestones of every scene after the first (default: --milestones), e.g. a shorter 1000,2000")
    p.add_argument("--quick", action="store_true", help="built-in scene only, milestones 100,200, 2 val views")
    p.add_argument("--val-views", type=int, default=8, help="validation views for PSNR")
    p.add_argument("--repeats", type=int, default=3, help="timed renders per model and milestone")
    p.add_argument("--resolution", type=int, default=64, help="occupancy grid cells per axis")
    p.add_argument("--target-psnr", type=float, default=24.0, help="report the wall time to reach this val PSNR")
    p.add_argument("--off-until", type=int, default=None,
                   help="the grid-off run trains only up to this many iterations (later milestones: grid on alone)")
    p.add_argument("--stop-at-target", action="store_true",
                   help="end a scene at the first milestone at which the grid-on run has reached --target-psnr")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the checkpoints and the renders + depth maps of one val "
                                               "view per scene and run (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = ["builtin"] if args.quick else args.scenes.split(",")
    milestones = [100, 200] if args.quick else [int(k) for k in args.milestones.split(",")]
    if args.quick:
        args.val_views = min(args.val_views, 2)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nerfprune-es-"))
    print(f"checkpoints and renders: {out}")
    results = {}
    other = [int(k) for k in args.other_milestones.split(",")] if args.other_milestones and not args.quick else milestones
    for i, (name, scene) in enumerate(scenes(names, args.quick).items()):
        print(f"{name} ({scene.width}x{scene.height}):", flush=True)
        results[name] = run_scene(scene, milestones if i == 0 else other, args, out / name)
    print(f"\n{'scene':8s} {'it':>6s} {'grid':>4s} {'PSNR':>7s} {'s/it':>7s} {'s/view':>7s} {'samples/ray':>11s} {'occupied':>8s}")
    for name, r in results.items():
        for row in r["rows"]:
            for label in ("off", "on"):
                if label not in row:
                    continue
                f = row[label]
                occ = "-" if f["occupied"] is None else f"{f['occupied']:.3f}"
                print(f"{name:8s} {row['iterations']:6d} {label:>4s} {f['psnr']:7.2f} {f['s_per_it']:7.3f} {f['render_s']:7.3f} "
                      f"{f['samples_per_ray']:11.1f} {occ:>8s}")
        print(f"{name:8s} seconds of training to {args.target_psnr} dB: {r['seconds_to_target']} "
              f"(trained {r['iterations_trained']} iterations in {r['seconds_trained']} s)")
    figures: dict = {"scenes": results}
    if results:
        first = next(iter(results.values()))
        both = [row for row in first["rows"] if "off" in row]  # the milestones both runs reached
        last = both[-1]
        figures["train_ratio"] = round(last["on"]["s_per_it"] / last["off"]["s_per_it"], 3)
        figures["render_ratio"] = round(last["on"]["render_s"] / last["off"]["render_s"], 3)
        on_s, off_s = first["seconds_to_target"]["on"], first["seconds_to_target"]["off"]
        if on_s is not None:  # time to the target, on / off; if grid off never reached it, an upper bound
            off_bound = off_s if off_s is not None else first["seconds_trained"]["off"]
            figures["target_psnr"] = args.target_psnr
            figures["target_ratio" if off_s is not None else "target_ratio_at_most"] = round(on_s / off_bound, 3)
        for row in both:
            figures[f"dpsnr_{row['iterations']}"] = round(row["on"]["psnr"] - row["off"]["psnr"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
