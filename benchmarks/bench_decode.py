"""Decode the whole `mic` train split (100 x 800x800 RGBA PNG): Rust vs imageio, same run.

Rust: `nerfprune._native.decode_images` (parallel over files with rayon, GIL released,
one contiguous [N, H, W, 4] uint8 array). imageio: `imageio.v3.imread` per file,
sequentially, stacked into the same array. Both outputs are checked to be equal.
Runs alternate between the decoders. Prints a table, then one JSON line with the figures
(median of --repeats runs).

    python benchmarks/bench_decode.py [--repeats 5] [--datasets PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from nerfprune import _native
from nerfprune.scene.formats.blender import read_blender


def timed(fns: dict, repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    """Median seconds and last output per decoder; runs are interleaved so that both
    decoders see the same background load on a shared machine."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    outputs = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), outputs[name]) for name, t in times.items()}


def main() -> None:
    default = os.environ.get("NERFPRUNE_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per decoder; the median is reported")
    parser.add_argument("--datasets", type=Path, default=Path(default), help="folder holding mic/")
    args = parser.parse_args()

    frames = read_blender(args.datasets / "mic")
    paths = [frames.paths[i] for i in frames.splits["train"]]
    for p in paths:  # warm the page cache so both decoders read from memory
        Path(p).read_bytes()

    results = timed(
        {"rust": lambda: _native.decode_images(paths), "imageio": lambda: np.stack([iio.imread(p) for p in paths])},
        args.repeats,
    )
    (rust_s, rust), (imageio_s, ref) = results["rust"], results["imageio"]
    if not np.array_equal(rust, ref):
        raise SystemExit("decoders disagree: the benchmark is invalid")

    cores = len(os.sched_getaffinity(0))
    mpix = rust.shape[0] * rust.shape[1] * rust.shape[2] / 1e6
    print(f"mic train split: {rust.shape[0]} x {rust.shape[2]}x{rust.shape[1]} RGBA PNG, {cores} cores, median of {args.repeats}")
    print(f"{'decoder':<28}{'seconds':>10}{'Mpixel/s':>10}")
    print(f"{'Rust (rayon, GIL released)':<28}{rust_s:>10.3f}{mpix / rust_s:>10.1f}")
    print(f"{'imageio, sequential':<28}{imageio_s:>10.3f}{mpix / imageio_s:>10.1f}")
    print(f"ratio Rust / imageio: {rust_s / imageio_s:.3f} (goal <= 0.25)")
    print(json.dumps({"benchmark": "decode_mic_train", "views": int(rust.shape[0]), "cores": cores,
                      "repeats": args.repeats, "rust_s": round(rust_s, 4), "imageio_s": round(imageio_s, 4),
                      "ratio": round(rust_s / imageio_s, 4)}))


if __name__ == "__main__":
    main()
