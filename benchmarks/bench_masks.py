"""Mask bookkeeping and pruned-MLP inference paths on the default NeRF MLP (random init).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_masks.py [--points 4096] [--repeats 5]

Part 1 times the Rust bookkeeping on coarse + fine nets (~1.2 M weights):
selection-based global magnitude pruning vs numpy's full sort, and dead-neuron
compaction. Part 2 times one forward of N points through
the fine net for each inference path at 80/90/95/98 % global magnitude sparsity:
masked (multiply by the mask every forward, the 2022 study's way), baked (mask
multiplied in once), compacted (dead neurons removed), csr (every layer a sparse
CSR product), tuned (compacted, then per layer the faster of dense/CSR, measured).
Median of `--repeats` after one warm-up; ratios are to the dense model; max|diff|
is against the masked model. Both global and layer-wise magnitude pruning: on
random-init weights, global pruning at >= 95 % removes whole layers (pts.5 has
the largest fan-in, hence the smallest init scale), so the net becomes a constant
and compaction collapses it; layer-wise pruning shows the honest picture for
unstructured sparsity. Trained / structured-pruned nets are the lead's benchmark.
The last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch
import torch.nn.functional as F

from nerfprune.metrics import time_repeated
from nerfprune.pruning import (
    GraphMLP,
    compact,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    nerf_topology,
    tune_modes,
)

SPARSITIES = (0.80, 0.90, 0.95, 0.98)
SCOPES = {"global": global_magnitude_masks, "layerwise": layerwise_magnitude_masks}


def timed(fn, repeats: int) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call."""
    return time_repeated(fn, repeats=repeats, warmup=1).median * 1e3


def init_state(topology, nets, seed=0):
    """PyTorch's default Linear init (uniform +-1/sqrt(in)) for every net."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for net in nets:
        for l in topology.layers:
            bound = l.in_features**-0.5
            state[f"{net}.{l.name}.weight"] = (torch.rand(l.out_features, l.in_features, generator=g) * 2 - 1) * bound
            state[f"{net}.{l.name}.bias"] = (torch.rand(l.out_features, generator=g) * 2 - 1) * bound
    return state


def masked_forward(topology, state, masks, prefix, pos, dirs):
    """The study's way: multiply every weight by its mask on every forward."""
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}
    values = {"pos": pos, "dir": dirs}
    for l in topology.layers:
        w = state[f"{prefix}{l.name}.weight"] * masks[f"{prefix}{l.name}.weight"]
        x = torch.cat([values[s] for s, _ in l.inputs], -1)
        values[l.name] = act[l.activation](F.linear(x, w, state[f"{prefix}{l.name}.bias"]))
    return values["sigma"], values["rgb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4096, help="samples per forward")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    args = parser.parse_args()
    torch.manual_seed(0)
    topology = nerf_topology()
    state = init_state(topology, ("coarse", "fine"))
    weights = {k: v for k, v in state.items() if k.endswith(".weight")}
    n_weights = sum(w.numel() for w in weights.values())
    figures: dict = {"threads": torch.get_num_threads(), "points": args.points, "weights": n_weights}

    print(f"== bookkeeping: coarse + fine default NeRF, {n_weights} weights")
    select_ms = timed(lambda: global_magnitude_masks(weights, None, 0.95), args.repeats)
    flat = np.concatenate([w.abs().reshape(-1).numpy() for w in weights.values()])
    sort_ms = timed(lambda: np.sort(flat), args.repeats)
    masks95 = global_magnitude_masks(weights, None, 0.95)
    compact_ms = timed(lambda: compact(topology, state, masks95, net="fine"), args.repeats)
    print(f"{'global magnitude selection (Rust, incl. conversion)':<52} {select_ms:8.1f} ms")
    print(f"{'numpy full sort of |w| (reference cost)':<52} {sort_ms:8.1f} ms")
    print(f"{'dead-neuron analysis + compaction (fine net)':<52} {compact_ms:8.1f} ms")
    figures["bookkeeping_ms"] = {"select": select_ms, "numpy_sort": sort_ms, "compact_fine": compact_ms}

    pos, dirs = torch.randn(args.points, 63), torch.randn(args.points, 27)
    dense = GraphMLP(topology, state, prefix="fine.")
    with torch.no_grad():
        dense_ms = timed(lambda: dense(pos, dirs), args.repeats)
    print(f"\n== one forward of {args.points} points through the fine net (dense {dense_ms:.1f} ms at start)")
    print(f"{'pruning':>9} {'sparsity':>8} {'path':>10} {'ms':>9} {'x dense':>8} {'params':>9} {'max|diff|':>10}")
    figures["dense_ms"] = dense_ms
    figures["paths"] = {}
    for (scope, prune), sparsity in itertools.product(SCOPES.items(), SPARSITIES):
        masks = prune(weights, None, sparsity)
        with torch.no_grad():
            reference = masked_forward(topology, state, masks, "fine.", pos, dirs)
        result = compact(topology, state, masks, net="fine")
        baked = GraphMLP(topology, state, masks, prefix="fine.")
        csr = GraphMLP(topology, state, masks, prefix="fine.", modes={l.name: "csr" for l in topology.layers})
        tuned = GraphMLP(result.topology, result.state, input_index=result.input_index)
        tune_modes(tuned, batch=args.points, repeats=3)
        compacted = GraphMLP(result.topology, result.state, input_index=result.input_index)
        live = sum(int(m.sum()) for k, m in masks.items() if k.startswith("fine."))
        paths = {
            "dense": (lambda: dense(pos, dirs), topology.parameter_count()),
            "masked": (lambda: masked_forward(topology, state, masks, "fine.", pos, dirs), topology.parameter_count()),
            "baked": (lambda: baked(pos, dirs), topology.parameter_count()),
            "compacted": (lambda: compacted(pos, dirs), result.parameter_count()),
            "csr": (lambda: csr(pos, dirs), live),
            "tuned": (lambda: tuned(pos, dirs), result.parameter_count()),
        }
        row = {}
        for name, (fn, params) in paths.items():
            with torch.no_grad():
                ms = timed(fn, args.repeats)
                diff = max((a - b).abs().max().item() for a, b in zip(fn(), reference))
            # Ratios use the dense time measured in the same row (the machine is shared).
            ratio = ms / row["dense"]["ms"] if row else 1.0
            row[name] = {"ms": ms, "ratio": ratio, "params": params, "max_abs_diff": diff}
            shown = "-" if name == "dense" else f"{diff:.1e}"
            print(f"{scope:>9} {sparsity:8.2f} {name:>10} {ms:9.1f} {ratio:8.2f} {params:9d} {shown:>10}")
        row["csr_layers_chosen"] = sum(m == "csr" for m in tuned.modes.values())
        figures["paths"][f"{scope}_{sparsity:.2f}"] = row
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
