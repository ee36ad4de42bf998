"""The GPU check: nerfprune's kernels, training and rendering on CUDA, each against the CPU (issue 16).

    python scripts/gpu_check.py [--out DIR] [--budget-s S]   # on a CUDA machine (scripts/gpu_check.sh installs the wheels)
    python scripts/gpu_check.py --dry-run [--out DIR]        # the same code paths on the CPU at tiny sizes (< 60 s)

Phases, in this order, each timed; once the time budget would be overrun the remaining ones are
skipped with a message (and a long loop stops early), so the whole check ends inside its budget:

  tests    the kernel property tests (TEST_FILES) in a subprocess, with Taichi on the device and the
           kernels' tensors there (NERFPRUNE_TI_ARCH, NERFPRUNE_TEST_DEVICE: see tests/conftest.py)
  kernels  every kernel on the device against its torch reference on the CPU, on the same inputs:
           rays, view rays, stratified, importance, composite forward and backward, encoding; the max
           abs difference of each, and a CPU tensor refused by a kernel on the device
  train    the 2x128 ("small") and 8x256 ("nerf") presets trained on the built-in scene with nerfprune's
           default pipeline; the mean loss of the last iterations must be below that of the first; the
           checkpoint, written from the device, loads back equal on the device and on the CPU
  render   one test view of the trained small model rendered on the device (PNG), and the same view
           rendered on the CPU by the torch references: max abs difference
  bench    training iterations/s and render s/view of both presets, nerfprune against the pure-torch
           pipeline (benchmarks/bench_train.py PIPELINES), on the same device

--dry-run runs everything on the CPU (Taichi's CPU backend, torch's CPU tensors) at tiny sizes: it
walks the code paths of the real check, so `make test` (tests/test_gpu_check.py) keeps it working.
Writes gpu_check.json and render_small.png into --out (default $OUT); the shell script keeps the log.
The last line of stdout is the JSON. Exit code 0 when every phase passed, 1 otherwise, 2 when the
machine cannot run the check (no CUDA GPU: use --dry-run).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "benchmarks"))  # bench_train: the pipelines compared
try:
    import nerfprune  # noqa: F401  (the installed wheel's when there is one: $PYTHONPATH)
except ImportError:
    sys.path.append(str(REPO / "python"))  # the checkout's (python/taichi_kernels links to ../taichi_kernels)

import taichi_kernels  # noqa: E402
import torch  # noqa: E402

TEST_FILES = ("tests/test_rays.py", "tests/test_sampling.py", "tests/test_compositing.py",
              "tests/test_encoding.py", "tests/test_backend.py")
PRESETS = ("small", "nerf")
BENCH_PIPELINES = ("nerfprune", "torch")
# Largest max abs difference accepted between a kernel on the device and its reference on the CPU (float32).
TOLERANCES = {"rays": 1e-4, "view_rays": 1e-4, "stratified": 1e-4, "importance": 1e-3, "composite_forward": 1e-4,
              "composite_backward": 1e-3, "encoding": 5e-4, "render_rgb": 2e-2}


@dataclass(frozen=True)
class Sizes:
    """How big each phase is: FULL for an H200 in under 5 minutes (an estimate: not yet measured there),
    DRY for 2 CPU cores in under a minute."""

    scene: dict  # BuiltinSceneConfig fields
    test_files: tuple[str, ...]  # kernel property tests run in the tests phase
    tests_timeout_s: float  # the tests phase is stopped after this long
    kernel_rays: int  # rays of the kernel comparisons
    iterations: int  # training iterations per preset
    window: int  # iterations averaged at the start and at the end to see the loss fall
    batch_size: int  # rays per training iteration
    samples: dict[str, tuple[int, int]] | None  # preset -> (coarse, fine) samples per ray; None: bench_train's SETTINGS
    lr: float | None  # Adam learning rate; None: TrainConfig's
    bench_warmup: int  # untimed training steps per pipeline
    bench_steps: int  # timed training steps per pipeline
    render_repeats: int  # timed renders per pipeline
    render_warmup: int  # untimed renders per pipeline before those
    min_seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds it needs at least; less left: skipped


FULL = Sizes(
    scene={"width": 100, "height": 100, "n_views": 40, "n_test": 8}, test_files=TEST_FILES, tests_timeout_s=150.0,
    kernel_rays=1 << 16, iterations=300, window=50, batch_size=1024, samples=None, lr=None, bench_warmup=3,
    bench_steps=20, render_repeats=5, render_warmup=1, min_seconds={"tests": 60, "kernels": 20, "train": 60, "render": 10, "bench": 30},
)
DRY = Sizes(
    scene={"width": 16, "height": 16, "n_views": 12, "n_test": 2}, test_files=("tests/test_backend.py",),
    tests_timeout_s=120.0, kernel_rays=256, iterations=24, window=6, batch_size=64,
    samples={"small": (8, 8), "nerf": (8, 8)}, lr=2e-3, bench_warmup=1, bench_steps=1, render_repeats=1,
    render_warmup=0,
)


class Budget:
    """Seconds left of the whole check."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


@dataclass
class Context:
    """What every phase shares."""

    dry_run: bool
    device: torch.device
    sizes: Sizes
    out: Path
    work: Path  # throw-away folder for checkpoints
    budget: Budget
    scene: object = None
    models: dict = field(default_factory=dict)  # preset -> trained NerfModel (from the train phase)


def say(text: str) -> None:
    print(text, flush=True)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().cpu().double() - b.detach().cpu().double()).abs().max()) if a.numel() else 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ phases


def phase_tests(ctx: Context) -> dict:
    """The kernel property tests in a subprocess, kernels and their tensors on the device."""
    import nerfprune

    # The subprocess imports the same nerfprune and taichi_kernels as this process (-P: not the checkout's
    # taichi_kernels/ that the working directory would put first on sys.path).
    roots = dict.fromkeys(str(Path(m.__file__).resolve().parents[1]) for m in (taichi_kernels, nerfprune))
    env = {**os.environ, "NERFPRUNE_TI_ARCH": ctx.device.type, "NERFPRUNE_TEST_DEVICE": ctx.device.type,
           "PYTHONPATH": os.pathsep.join([*roots, *filter(None, [os.environ.get("PYTHONPATH")])])}
    files = list(ctx.sizes.test_files)
    if ctx.dry_run:
        say(f"  dry run: {len(files)} of the {len(TEST_FILES)} test files (make test runs them all)")
    timeout = max(10.0, min(ctx.sizes.tests_timeout_s, ctx.budget.left() - sum(ctx.sizes.min_seconds.values())
                            + ctx.sizes.min_seconds.get("tests", 0)))
    cmd = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    say(f"  {' '.join(cmd[1:])}  (timeout {timeout:.0f} s)")
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"")[-3000:]
        say(tail.decode(errors="replace") if isinstance(tail, bytes) else tail)
        return {"ok": False, "summary": f"stopped after {timeout:.0f} s"}
    say("\n".join("    " + line for line in (proc.stdout + proc.stderr).strip().splitlines()[-40:]))
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", proc.stdout)}
    summary = next((line.strip("= ") for line in reversed(proc.stdout.splitlines()) if " in " in line), "")
    return {"ok": proc.returncode == 0, "returncode": proc.returncode, "summary": summary, **counts}


def _kernel_inputs(n: int, seed: int = 0) -> dict:
    """Random inputs of every kernel, on the CPU: 4 distorted cameras, n pixels, n rays of 64 samples."""
    g = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(4, 3, 3, generator=g))
    dist = 0.02 * torch.randn(4, 6, generator=g)
    dist[:, 2:] *= 0.1  # k3, k4 and the tangential terms small, as in real lenses
    s = 64
    return {
        "c2w": torch.cat([rot, 3 * torch.randn(4, 3, 1, generator=g)], -1),  # [4, 3, 4]
        "intr": torch.cat([60 + 40 * torch.rand(4, 2, generator=g), torch.tensor([[40.0, 30.0]] * 4)], -1),  # [4, 4]
        "dist": dist,  # [4, 6]
        "view": torch.randint(0, 4, (n,), generator=g), "row": torch.randint(0, 60, (n,), generator=g),
        "col": torch.randint(0, 80, (n,), generator=g),
        "weights": torch.rand(n, s, generator=g) + 0.05,  # [n, S] no near-empty bins: raw depths comparable
        "sigma": 3 * torch.rand(n, s, generator=g) ** 2, "rgb": torch.rand(n, s, 3, generator=g),
        "norm": 1 + 0.5 * torch.rand(n, generator=g), "bg": torch.rand(n, 3, generator=g),
        "upstream": [torch.randn(shape, generator=g) for shape in ((n, 3), (n,), (n,), (n, s))],
        "points": 6 * (torch.rand(8 * n, 3, generator=g) - 0.5),  # [8n, 3] within the scene's few units
    }


def phase_kernels(ctx: Context) -> dict:
    """Each kernel on the device against its torch reference on the CPU; same inputs, same random draws."""
    from taichi_kernels import reference as ref
    from taichi_kernels.backend import TAICHI
    from taichi_kernels.runtime import BackendError

    dev, x = ctx.device, _kernel_inputs(ctx.sizes.kernel_rays)
    d = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in x.items()}
    def gen(seed: int) -> torch.Generator:  # CPU generators, as the trainer's: the same draws on every device
        return torch.Generator().manual_seed(seed)

    diffs: dict[str, float] = {}
    got = TAICHI.generate_rays(d["c2w"], d["intr"], d["view"], d["row"], d["col"], d["dist"])
    want = ref.generate_rays(x["c2w"], x["intr"], x["view"], x["row"], x["col"], x["dist"])
    diffs["rays"] = max(max_abs(g, w) for g, w in zip(got, want))
    got = TAICHI.view_rays(d["c2w"][0], *x["intr"][0].tolist(), 80, 60, d["dist"][0])
    want = ref.view_rays(x["c2w"][0], *x["intr"][0].tolist(), 80, 60, x["dist"][0])
    diffs["view_rays"] = max(max_abs(g, w) for g, w in zip(got, want))
    n = ctx.sizes.kernel_rays
    t_dev = TAICHI.stratified(n, 64, 2.0, 6.0, True, generator=gen(1), device=dev)
    t_cpu = ref.stratified(n, 64, 2.0, 6.0, True, generator=gen(1))
    diffs["stratified"] = max_abs(t_dev, t_cpu)
    diffs["importance"] = max_abs(TAICHI.importance(t_dev, d["weights"], 64, True, generator=gen(2)),
                                  ref.importance(t_cpu, x["weights"], 64, True, generator=gen(2)))
    leaves = {"cpu": [x[k].clone().requires_grad_() for k in ("sigma", "rgb", "bg")]}
    leaves["dev"] = [leaf.clone().detach().requires_grad_() for leaf in leaves["cpu"]]
    outs = {}
    for where, math, extra in (("dev", TAICHI, (d["norm"],)), ("cpu", ref, (x["norm"],))):
        sigma, rgb, bg = leaves[where]
        to = dev if where == "dev" else torch.device("cpu")
        out = math.composite(sigma.to(to), rgb.to(to), (t_dev if where == "dev" else t_cpu), *extra, bg.to(to))
        sum(((o.cpu() if where == "dev" else o) * u).sum() for o, u in zip(out, x["upstream"])).backward()
        outs[where] = out
    diffs["composite_forward"] = max(max_abs(g, w) for g, w in zip(outs["dev"], outs["cpu"]))
    diffs["composite_backward"] = max(max_abs(g.grad, w.grad) for g, w in zip(leaves["dev"], leaves["cpu"]))
    diffs["encoding"] = max_abs(TAICHI.positional_encoding(d["points"], 10), ref.positional_encoding(x["points"], 10))
    for name, value in diffs.items():
        say(f"  {name:20s} max abs difference {value:.3e}  (tolerance {TOLERANCES[name]:.0e})")
    # A tensor on the wrong device is refused, not copied: a CPU tensor on CUDA; on the CPU, a 'meta' tensor.
    stray = torch.zeros(4, 3, device="cpu" if dev.type == "cuda" else "meta")
    try:
        TAICHI.positional_encoding(stray, 2)
        refused = False
    except BackendError as e:
        refused = True
        say(f"  a {stray.device} tensor is refused: {e}")
    ok = refused and all(value <= TOLERANCES[name] for name, value in diffs.items())
    return {"ok": ok, "max_abs_diff": diffs, "tolerances": {k: TOLERANCES[k] for k in diffs},
            "wrong_device_refused": refused}


def _train_config(ctx: Context, preset: str, pipeline: str):
    from bench_train import pipeline_config

    cfg = pipeline_config(preset, pipeline, ctx.sizes.batch_size)
    if ctx.sizes.samples:
        cfg.render.n_coarse, cfg.render.n_fine = ctx.sizes.samples[preset]
    if ctx.sizes.lr:
        cfg.lr = ctx.sizes.lr
    return cfg


def _trainer(ctx: Context, cfg, pipeline: str, name: str) -> tuple:
    """A Trainer on the device, the pipeline's batcher and the cameras on the device: what `Trainer.step` takes."""
    from bench_train import pipeline_batcher

    from nerfprune.training import Trainer, camera_tensors

    trainer = Trainer(ctx.scene, cfg, ctx.work / name, device=str(ctx.device))
    return trainer, pipeline_batcher(ctx.scene, pipeline, ctx.sizes.batch_size), camera_tensors(ctx.scene, trainer.device)


def phase_train(ctx: Context) -> dict:
    """Train both presets with nerfprune's pipeline; the loss must fall; the checkpoint must round-trip."""
    from nerfprune.training import load_model

    sizes, results, ok = ctx.sizes, {}, True
    for preset in PRESETS:
        cfg = _train_config(ctx, preset, "nerfprune")
        cfg.iterations = sizes.iterations  # the learning rate decays over the run, as in `nerfprune train`
        trainer, batcher, cams = _trainer(ctx, cfg, "nerfprune", preset)
        losses, stamps = [], [time.perf_counter()]
        while trainer.iteration < sizes.iterations:
            losses.append(trainer.step(batcher, cams)[0])
            stamps.append(time.perf_counter())
            if ctx.budget.left() < 5:
                say(f"  {preset}: stopped at iteration {trainer.iteration}: the time budget is spent")
                break
        done, w = len(losses), sizes.window
        first, last = statistics.fmean(losses[:w]), statistics.fmean(losses[-w:])
        fell = done == sizes.iterations and last < first
        warm = min(10, done - 1)  # the first iterations compile kernels
        rate = (done - warm) / max(stamps[-1] - stamps[warm], 1e-9)
        path = trainer.save()
        on_device, _, _ = load_model(path, device=str(ctx.device))
        on_cpu, _, _ = load_model(path, device="cpu")
        saved, back, back_cpu = (m.state_dict() for m in (trainer.model, on_device, on_cpu))
        roundtrip = (on_cpu.device.type == "cpu" and on_device.device.type == ctx.device.type
                     and all(torch.equal(saved[k], back[k]) and torch.equal(saved[k].cpu(), back_cpu[k]) for k in saved))
        say(f"  {preset:6s} {done} iterations in {stamps[-1] - stamps[0]:.1f} s ({rate:.1f} it/s after {warm}): "
            f"loss {first:.4f} (first {w}) -> {last:.4f} (last {w}), fell: {fell}; checkpoint round trip: {roundtrip}")
        results[preset] = {"iterations": done, "loss_first": first, "loss_last": last, "fell": fell, "it_per_s": rate,
                           "seconds": stamps[-1] - stamps[0], "checkpoint_roundtrip": roundtrip,
                           "losses_every_10": losses[::10]}
        ok = ok and fell and roundtrip
        ctx.models[preset] = trainer.model.eval()
    return {"ok": ok, **results}


def _model(ctx: Context, preset: str):
    """The trained model of `preset`, or a fresh one when training did not run."""
    if preset not in ctx.models:
        from nerfprune.training import build_model

        ctx.models[preset] = build_model(_train_config(ctx, preset, "nerfprune")).to(ctx.device).eval()
    return ctx.models[preset]


def phase_render(ctx: Context) -> dict:
    """One test view on the device (PNG), against the torch references on the CPU."""
    from nerfprune.metrics import psnr
    from nerfprune.outputs import write_png
    from nerfprune.renderer import render_view
    from taichi_kernels.backend import TORCH

    model, cfg = _model(ctx, "small"), _train_config(ctx, "small", "nerfprune").render
    view = int(ctx.scene.split("test")[0])
    start = time.perf_counter()
    image = render_view(model, ctx.scene.cameras, view, cfg, background=ctx.scene.background)
    seconds = time.perf_counter() - start
    png = write_png(ctx.out / "render_small.png", image["rgb"])
    on_cpu = render_view(copy.deepcopy(model).cpu(), ctx.scene.cameras, view, cfg, background=ctx.scene.background,
                         math=TORCH)
    diff = {k: float(abs(image[k] - on_cpu[k]).max()) for k in ("rgb", "opacity")}
    quality = psnr(image["rgb"], ctx.scene.images_float([view])[0])
    say(f"  test view {view} ({ctx.scene.width}x{ctx.scene.height}) in {seconds:.2f} s -> {png}; PSNR {quality:.2f} dB; "
        f"against the CPU torch references: rgb {diff['rgb']:.2e}, opacity {diff['opacity']:.2e} max abs")
    return {"ok": diff["rgb"] <= TOLERANCES["render_rgb"], "view": view, "png": png.name, "psnr": quality,
            "max_abs_diff_vs_cpu": diff, "seconds_first_render": seconds,
            "mlp_samples_per_ray": image["mlp_samples_per_ray"]}


def phase_bench(ctx: Context) -> dict:
    """Training it/s and render s/view: nerfprune against the pure-torch pipeline, both presets, same device."""
    from nerfprune.metrics import time_repeated
    from nerfprune.renderer import render_view

    sizes, rows = ctx.sizes, {}
    view = int(ctx.scene.split("test")[0])
    for preset in PRESETS:
        for pipeline in BENCH_PIPELINES:
            if ctx.budget.left() < 5:
                say(f"  {preset} {pipeline}: skipped, the time budget is spent")
                continue
            cfg = _train_config(ctx, preset, pipeline)
            trainer, batcher, cams = _trainer(ctx, cfg, pipeline, f"bench-{preset}-{pipeline}")
            for _ in range(sizes.bench_warmup):
                trainer.step(batcher, cams)
            sync(ctx.device)
            start = time.perf_counter()
            for _ in range(sizes.bench_steps):
                trainer.step(batcher, cams)
            sync(ctx.device)
            it_per_s = sizes.bench_steps / (time.perf_counter() - start)
            model = copy.deepcopy(_model(ctx, preset))
            model.mlp = cfg.mlp
            timing = time_repeated(lambda: render_view(model, ctx.scene.cameras, view, cfg.render, ctx.scene.background),
                                   repeats=sizes.render_repeats, warmup=sizes.render_warmup)
            rows[f"{preset}/{pipeline}"] = {"train_it_per_s": it_per_s, "render_s_per_view": timing.median}
    say(f"  {'preset':8s} {'pipeline':10s} {'train it/s':>11s} {'render s/view':>14s}   "
        f"(batch {sizes.batch_size} rays, {ctx.scene.width}x{ctx.scene.height} views, {ctx.device.type})")
    for key, row in rows.items():
        preset, pipeline = key.split("/")
        say(f"  {preset:8s} {pipeline:10s} {row['train_it_per_s']:11.2f} {row['render_s_per_view']:14.4f}")
    ratios = {}
    for preset in PRESETS:
        mine, theirs = rows.get(f"{preset}/nerfprune"), rows.get(f"{preset}/torch")
        if mine and theirs:
            ratios[preset] = {"train_time_ratio": theirs["train_it_per_s"] / mine["train_it_per_s"],
                              "render_time_ratio": mine["render_s_per_view"] / theirs["render_s_per_view"]}
            say(f"  {preset:8s} nerfprune/torch time: training {ratios[preset]['train_time_ratio']:.2f}, "
                f"rendering {ratios[preset]['render_time_ratio']:.2f}")
    return {"ok": len(rows) == len(PRESETS) * len(BENCH_PIPELINES), "rows": rows, "ratios": ratios}


PHASES = {"tests": phase_tests, "kernels": phase_kernels, "train": phase_train, "render": phase_render,
          "bench": phase_bench}


# --------------------------------------------------------------------------------------------------- main


def versions(device: torch.device) -> dict:
    import nerfprune
    import taichi

    found = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
             "taichi": taichi.__version__, "nerfprune": str(Path(nerfprune.__file__).parent),
             "taichi_kernels": str(Path(taichi_kernels.__file__).parent)}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, tiny sizes")
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.json and the PNG (default: $OUT)")
    p.add_argument("--budget-s", type=float, default=None, help="seconds for the whole check (default: 300, dry run 90)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {', '.join(PHASES)}")
    args = p.parse_args(argv)
    if not args.out:
        p.error("no output folder: give --out DIR (or set $OUT)")
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}: choose from {', '.join(PHASES)}")
    from taichi_kernels.runtime import BackendError, ensure_initialized, set_arch, torch_device

    try:
        set_arch("cpu" if args.dry_run else "cuda")
        device = torch_device("cpu" if args.dry_run else "cuda")
        arch = ensure_initialized()
    except BackendError as e:
        print(f"gpu_check: error: {e} (on a machine without a GPU, run with --dry-run)", file=sys.stderr)
        return 2
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    sizes = DRY if args.dry_run else FULL
    budget = Budget(args.budget_s or (90.0 if args.dry_run else 300.0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"mode": "dry-run" if args.dry_run else "cuda", "device": str(device), "taichi_arch": arch,
              "versions": versions(device), "budget_s": budget.seconds, "sizes": asdict(sizes), "phases": {}}
    say(f"gpu_check ({result['mode']}): torch on {device}, Taichi on {arch}; budget {budget.seconds:.0f} s")
    for key, value in result["versions"].items():
        say(f"  {key:15s} {value}")
    with tempfile.TemporaryDirectory(prefix="nerfprune-gpu-check-") as work:
        ctx = Context(dry_run=args.dry_run, device=device, sizes=sizes, out=out, work=Path(work), budget=budget,
                      scene=make_builtin_scene(BuiltinSceneConfig(**sizes.scene)))
        for name in args.phases.split(","):
            need = sizes.min_seconds.get(name, 0.0)
            if budget.left() < need:
                say(f"== {name}: SKIPPED: {max(budget.left(), 0):.0f} s left of the {budget.seconds:.0f} s budget, "
                    f"it needs about {need:.0f} s")
                result["phases"][name] = {"ok": False, "skipped": True, "seconds": 0.0}
                continue
            say(f"== {name} (at {budget.elapsed():.1f} s)")
            start = time.perf_counter()
            try:
                phase = PHASES[name](ctx)
            except Exception as e:  # a broken phase is reported and the next one still runs
                import traceback

                traceback.print_exc()
                phase = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            phase["seconds"] = time.perf_counter() - start
            say(f"== {name}: {'passed' if phase['ok'] else 'FAILED'} in {phase['seconds']:.1f} s")
            result["phases"][name] = phase
    result["elapsed_s"] = budget.elapsed()
    result["ok"] = all(phase["ok"] for phase in result["phases"].values())
    say(f"gpu_check: {'all phases passed' if result['ok'] else 'NOT all phases passed'} in {result['elapsed_s']:.1f} s")
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result, default=str), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
