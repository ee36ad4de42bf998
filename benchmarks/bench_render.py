"""Taichi kernels vs the torch reference, side by side in one run (medians; speed is never asserted).

Cases:
- compositing forward + backward, 65,536 rays x 192 samples (the issue's target: Taichi <= 0.5x torch);
- compositing forward + backward for one 1024-ray training batch (64 and 192 samples): is launch
  overhead small?;
- compositing forward only, no grad (evaluation), 65,536 x 192;
- ray generation + stratified sampling (64) for a 400 x 400 view, and + importance sampling (128).

Taichi and torch get the same thread count (`--threads`, default: torch's); their pools take turns.
Prints a table, then as the very last line one JSON object with the figures.

    python benchmarks/bench_render.py [--threads N] [--repeats R]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # taichi_kernels/ from a source checkout


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="threads for torch and Taichi (0: torch's default)")
    p.add_argument("--repeats", type=int, default=7, help="timed repetitions per case (after one warm-up)")
    return p.parse_args()


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: compiles the kernel, fills the buffer pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def composite_inputs(torch, n_rays: int, n_samples: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sigma = (5 * torch.rand(n_rays, n_samples, generator=g)).requires_grad_()
    rgb = torch.rand(n_rays, n_samples, 3, generator=g).requires_grad_()
    t = torch.sort(2 + 4 * torch.rand(n_rays, n_samples, generator=g), dim=-1).values
    norm = 1 + 0.2 * torch.rand(n_rays, generator=g)
    bg = torch.ones(3)
    return sigma, rgb, t, norm, bg


def train_step(torch, fn, args):
    """Forward, a loss on colour and depth, backward: what a training iteration asks of compositing."""
    def run():
        colour, depth, _, _ = fn(*args)
        loss = colour.square().mean() + 1e-3 * depth.mean()
        torch.autograd.grad(loss, args[:2])
    return run


def eval_step(torch, fn, args):
    def run():
        with torch.no_grad():
            fn(*(a.detach() for a in args))
    return run


def main() -> None:
    opts = parse()
    if opts.threads:
        os.environ["TI_CPU_MAX_NUM_THREADS"] = str(opts.threads)
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    threads = torch.get_num_threads()
    os.environ.setdefault("TI_CPU_MAX_NUM_THREADS", str(threads))

    from taichi_kernels import reference as ref
    from taichi_kernels import compositing, rays, sampling
    from taichi_kernels.runtime import ensure_initialized

    arch = ensure_initialized()
    rows = []  # (case, taichi ms, torch ms)

    for n_rays, n_samples, label in [(65536, 192, "composite fwd+bwd 65536x192"),
                                     (1024, 64, "composite fwd+bwd 1024x64"),
                                     (1024, 192, "composite fwd+bwd 1024x192")]:
        args = composite_inputs(torch, n_rays, n_samples)
        reps = opts.repeats if n_rays > 4096 else opts.repeats * 20
        rows.append((label, median_ms(train_step(torch, compositing.composite, args), reps),
                     median_ms(train_step(torch, ref.composite, args), reps)))
        if n_rays == 65536:
            rows.append(("composite fwd no-grad 65536x192", median_ms(eval_step(torch, compositing.composite, args), reps),
                         median_ms(eval_step(torch, ref.composite, args), reps)))
        del args

    c2w = torch.eye(4)[:3]
    cam = (c2w, 500.0, 500.0, 200.0, 200.0, 400, 400)

    def view_and_stratified(mod):
        def run():
            o, d = mod.view_rays(*cam)
            return mod.stratified(o.shape[0], 64, 2.0, 6.0, perturb=False)
        return run

    def plus_importance(mod):
        coarse = view_and_stratified(mod)
        w = torch.rand(400 * 400, 64, generator=torch.Generator().manual_seed(0))

        def run():
            t = coarse()
            return mod.importance(t, w, 128, perturb=True)
        return run

    kernels = SimpleNamespace(view_rays=rays.view_rays, stratified=sampling.stratified, importance=sampling.importance)
    for label, case in [("view rays + stratified 400x400x64", view_and_stratified),
                        ("rays + stratified + importance(+128)", plus_importance)]:
        rows.append((label, median_ms(case(kernels), opts.repeats), median_ms(case(ref), opts.repeats)))

    print(f"backend {arch}, {threads} thread(s) for torch and Taichi, medians of {opts.repeats} "
          f"(x20 for 1024-ray cases)")
    print(f"{'case':40s} {'taichi ms':>10s} {'torch ms':>10s} {'ratio':>7s}")
    for case, ti_ms, torch_ms in rows:
        print(f"{case:40s} {ti_ms:10.2f} {torch_ms:10.2f} {ti_ms / torch_ms:7.2f}")
    figures = {"backend": arch, "threads": threads}
    for case, ti_ms, torch_ms in rows:
        key = case.replace(" ", "_").replace("+", "p").replace("(", "").replace(")", "")
        figures[key] = {"taichi_ms": round(ti_ms, 3), "torch_ms": round(torch_ms, 3), "ratio": round(ti_ms / torch_ms, 3)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
