"""The network fused into Rust kernels: the whole (narrow or dense) network per block of samples, or the
positional encoding with the first layer.

Why: in the stage profile of a 95 % structured network compacted to widths of 20 (mic, 100x100,
`benchmarks/bench_prune.py`), writing the encoding (63 floats a sample) took 45-63 ms of a 150-210 ms view
and the first layer's product over it 13-23 ms: the layer is 20 wide, the encoding it reads 63. Fusing them
(`nerfprune._native.encode_first_layer`, `rust/core/src/fused/first_layer.rs`: the encoding of 16 samples on
the stack, only the layer's output written) left the other layers, each a BLAS product over a [chunk, 21]
buffer plus its per-ray gather and activation pass, at ~2.7x the first layer's time for fewer FLOPs. So
`nerfprune._native.run_network` (`rust/core/src/fused/network.rs`) runs every layer of a block of samples
over a table that stays in the L1 cache and writes only the heads (raw density, colour); the colour layer's
view-direction part stays once per ray (the plan's per-ray terms, gathered by each sample's ray).
Both vectorise over the samples with AVX2/FMA where the CPU has them.

Measured here (`benchmarks/bench_fused.py`, 370,000 samples on 10,000 rays, 2 threads, interleaved, the
machine otherwise idle), time against the unfused path:
- encoding + first layer against the Taichi encoding + `torch.mm` + ReLU: width 8: 0.20x, 20: 0.30x,
  48: 0.52x, 64: 0.49x, 128: 0.48x;
- `--network` (two hidden layers of each width, colour branch half as wide), the whole network against the
  encoding kernel and a torch product per layer: 8: 0.17x, 20: 0.33x, 48: 0.57x, 64: 0.45x, 128: 0.45x,
  256: 0.47x; against the first layer fused and the rest torch's: 0.38x, 0.52x, 0.71x, 0.46x, 0.45x, 0.46x.
At 64 wide and more the layer-by-layer path moves [65,536, width] buffers through memory for every layer; the
fused one keeps a block's values in cache. An earlier first-layer kernel (one pass over the samples per output)
was slower than BLAS past 48 wide, so the plan once fused only narrow layers; the blocked one is not.
So the plan (`InferencePlan.run`, fuse "auto") runs every network it can as one kernel, the dense 2x128
included (dense and pruned are timed on the same, best path); it falls back to the fused first layer where a
layer is CSR or int8 or the network is not float32, and to the layer-by-layer path ("off") on the torch
backend and off the CPU.

The reference is the unfused plan (`MLPConfig(inference="unfused")`), and through it the torch encoding
(`taichi_kernels.reference.positional_encoding`) and `nn.Linear`: tests/test_fused.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FUSED_ACTIVATIONS = ("relu", "none")  # of a fused first layer
NETWORK_ACTIVATIONS = ("relu", "none", "sigmoid")  # of a layer of a fused network


def native_kernel(name: str = "encode_first_layer"):
    """`nerfprune._native.<name>` (`encode_first_layer` or `run_network`), or None when the extension is
    missing or older."""
    try:
        import nerfprune._native as _native
    except ImportError:
        return None
    return getattr(_native, name, None)


@dataclass
class FusedFirstLayer:
    """A first layer reading only the positional encoding: y = act([W | b] [gamma(p)[columns] | 1])."""

    weight: Tensor  # [out, F' + 1] float32 contiguous, the bias as last column
    columns: np.ndarray  # [F'] int64: features of the full encoding it reads, in order
    n_frequencies: int
    activation: str  # "relu" or "none"

    def __call__(self, origins: np.ndarray, dirs: np.ndarray, t: Tensor, ray_index: Tensor, out: Tensor) -> None:
        """Write the layer at the samples origins[r] + t dirs[r] (r = ray_index [n]) into out[:, :out_features]
        (out [n, >= out_features] float32, contiguous; its other columns untouched)."""
        native_kernel()(origins, dirs, t.numpy(), ray_index.numpy(), self.weight.numpy(), self.columns,
                        self.n_frequencies, out.numpy(), relu=self.activation == "relu",
                        threads=torch.get_num_threads())


def rays_for_kernel(origins: Tensor, dirs: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and directions [B, 3] as the kernel reads them (contiguous float32 numpy, no copy if they are)."""
    return tuple(a.detach().to(torch.float32).contiguous().numpy() for a in (origins, dirs))


@dataclass
class FusedLayer:
    """One layer of a `FusedNetwork`: y = act(W table[inputs] + (bias, or the per-ray term of its sample's ray))."""

    name: str
    weight: np.ndarray  # [out, k] float32 contiguous
    inputs: np.ndarray  # [k] int64: the table rows it reads, in the order of the weight's columns
    bias: np.ndarray  # [out] float32
    per_ray_term: bool  # its sums start from the plan's per-ray term [B, out] (bias included) instead of the bias
    activation: str  # one of NETWORK_ACTIVATIONS
    row: int  # first table row it writes
    output: int | None  # the head it writes (0: raw density [n, 1], 1: colour [n, 3]), None for a hidden layer


@dataclass
class FusedNetwork:
    """A whole narrow network as one Rust kernel (`nerfprune._native.run_network`, `rust/core/src/fused/network.rs`):
    table rows [0, 3 (1 + 2 L)) hold the positional encoding of L octaves, each layer writes rows of its own."""

    layers: list[FusedLayer]
    n_frequencies: int

    def __call__(self, origins: np.ndarray, dirs: np.ndarray, t: Tensor, ray_index: Tensor,
                 terms: dict[str, Tensor], sigma: Tensor, rgb: Tensor) -> None:
        """Raw density into sigma [n, 1] and colour into rgb [n, 3] (float32, contiguous) at the samples
        origins[r] + t dirs[r] (r = ray_index [n]); `terms` the per-ray terms [B, out] of the mixed layers."""
        layers = [(l.weight, l.inputs, l.bias,
                   terms[l.name].detach().to(torch.float32).contiguous().numpy() if l.per_ray_term else None,
                   l.activation, l.row, l.output) for l in self.layers]
        native_kernel("run_network")(origins, dirs, t.numpy(), ray_index.numpy(), self.n_frequencies, layers,
                                     [sigma.numpy(), rgb.numpy()], threads=torch.get_num_threads())
