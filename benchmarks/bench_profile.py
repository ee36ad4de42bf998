"""Per-stage render profile of dense and pruned 2x128 NeRFs (the 2022 study's network), random init.

Run: OMP_NUM_THREADS=1 TI_CPU_MAX_NUM_THREADS=1 python benchmarks/bench_profile.py [--size 64] [--repeats 5]

Renders one view of the built-in scene (size x size, 64 + 64 samples per ray) with
`nerfprune.profile.profile_render` for the dense model and the masked, baked and
compacted variants at 95 % sparsity. Masks are layer-wise magnitude (on random
init, global magnitude removes whole layers, see bench_masks.py) and structured
(whole neurons). Render time does not depend on training, except through early
ray termination, which random weights rarely trigger. Milliseconds, median per
stage over `--repeats` renders after a warm-up. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json

from nerfprune.experiments.profile import profile_render, stage_sort_key
from nerfprune.pruning.variants import build_variant
from nerfprune.pruning.lottery import PruneConfig, next_masks
from nerfprune.experiments.report import PROFILE_MODELS
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.experiments.study import StudyConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="image width and height in pixels")
    ap.add_argument("--repeats", type=int, default=5, help="renders per model after one warm-up")
    args = ap.parse_args()
    scene = make_builtin_scene(BuiltinSceneConfig(width=args.size, height=args.size, n_views=8, n_test=1))
    train_cfg = StudyConfig().train_config()
    from nerfprune.training import build_model

    model = build_model(train_cfg)
    layerwise = next_masks(model, None, PruneConfig(method="layerwise"), 1)
    structured = next_masks(model, None, PruneConfig(method="structured"), 1)
    models = {"dense": model, **{v: build_variant(model, layerwise, v) for v in ("masked", "baked", "compacted")},
              "compacted (structured)": build_variant(model, structured, "compacted")}
    view = int(scene.split("val")[0])
    stages = {name: profile_render(m, scene.cameras, view, train_cfg.render, args.repeats, scene.background)
              for name, m in models.items()}
    names = [m for m in PROFILE_MODELS if m in stages]
    rows = sorted({s for st in stages.values() for s in st}, key=stage_sort_key)
    print(f"{args.size}x{args.size} view, 2x128 coarse + fine, 64 + 64 samples, 95 % sparsity; ms (median of {args.repeats})")
    print(f"{'stage':24s}" + "".join(f"{n:>24s}" for n in names))
    for s in rows:
        print(f"{s:24s}" + "".join(f"{stages[n].get(s, 0.0) * 1e3:24.2f}" for n in names))
    ratios = {n: stages[n]["total"] / stages["dense"]["total"] for n in names}
    print("total / dense: " + ", ".join(f"{n} {r:.2f}" for n, r in ratios.items()))
    print(json.dumps({"size": args.size, "repeats": args.repeats, "stages_ms": {n: {k: v * 1e3 for k, v in stages[n].items()} for n in names},
                      "total_ratio_to_dense": ratios}))


if __name__ == "__main__":
    main()
