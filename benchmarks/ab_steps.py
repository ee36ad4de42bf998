"""A/B of whole training steps: `Trainer.step` under several config variants, alternating in one process.

Each variant is NAME=JSON, the JSON overriding `TrainConfig` fields; "preset" picks the
network and "render" holds `RenderConfig` fields. Variants take turns step by step, so a
change in the machine's load hits all of them alike (single runs on a shared VM drift by
±20 %). The first variant is the reference of the "rel" column.

    python benchmarks/ab_steps.py --iterations 12 'default={}' 'b8k={"block_points": 8192}'
    python benchmarks/ab_steps.py 'w2={}' 'w1={"block_workers": 1}' 'autograd={"mlp": {"backward": "autograd"}}'
    python benchmarks/ab_steps.py 'nerf={"preset": "nerf", "render": {"n_fine": 128}}'

Prints a table, then as the very last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from nerfprune.config import from_dict
from nerfprune.errors import ConfigError
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.training import TrainConfig, Trainer, camera_tensors


def variant_config(spec: str) -> tuple[str, TrainConfig]:
    """'NAME={json}' -> (NAME, TrainConfig): 2x128 and 64 + 64 samples unless overridden."""
    name, _, text = spec.partition("=")
    if not name or not text:
        raise SystemExit(f"variant '{spec}': expected NAME={{json}}, e.g. 'w1={{\"block_workers\": 1}}'")
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"variant '{name}': not JSON ({e})") from None
    model = {"preset": overrides.pop("preset", "small")}
    render = {"n_coarse": 64, "n_fine": 64, **overrides.pop("render", {})}
    data = {"iterations": 10**6, **overrides, "model": model, "render": render}
    try:
        cfg = from_dict(TrainConfig, data, f"variant '{name}'")
        cfg.validate()
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    return name, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="NAME=JSON config overrides, e.g. 'w1={\"block_workers\": 1}'")
    p.add_argument("--iterations", type=int, default=12, help="timed steps per variant (after 2 warm-up)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    scene = make_builtin_scene(BuiltinSceneConfig(width=100, height=100, n_views=40, n_test=0))
    runs = {}
    for spec in args.variants:
        name, cfg = variant_config(spec)
        trainer = Trainer(scene, cfg, tempfile.mkdtemp(prefix="nerfprune-ab-"))
        batcher = trainer.batcher()
        runs[name] = (trainer, batcher, camera_tensors(scene, trainer.device), [])
    for it in range(args.iterations + 2):
        for trainer, batcher, cams, times in runs.values():
            start = time.perf_counter()
            trainer.step(batcher, cams)
            if it >= 2:
                times.append(time.perf_counter() - start)
    figures, reference = {}, None
    print(f"{'variant':20s} {'median s/it':>12s} {'min':>8s} {'max':>8s} {'rel':>6s}")
    for name, (*_, times) in runs.items():
        median = statistics.median(times)
        reference = reference or median
        print(f"{name:20s} {median:12.3f} {min(times):8.3f} {max(times):8.3f} {median / reference:6.3f}")
        figures[f"{name}_s_per_it"] = round(median, 4)
        figures[f"{name}_rel"] = round(median / reference, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
