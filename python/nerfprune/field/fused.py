"""The positional encoding fused with the network's first layer, for narrow (pruned) networks.

Why: in the stage profile of a 95 % structured network compacted to widths of 20 (mic, 100x100,
`benchmarks/bench_prune.py`), writing the encoding (63 floats a sample) took 45-63 ms of a 150-210 ms view
and the first layer's product over it 13-23 ms: the layer is 20 wide, the encoding it reads 63. The Rust
kernel `nerfprune._native.encode_first_layer` (`rust/core/src/fused.rs`) keeps the encoding of 16 samples on
the stack and writes only the layer's output (ReLU applied), vectorised over the samples with AVX2/FMA.

Measured here (`benchmarks/bench_fused.py`: 370,000 samples of 63 features, 2 threads, the Taichi encoding +
`torch.mm` + ReLU against the fused kernel, interleaved; three runs): width 8: 0.29-0.31x the time, 20:
0.43-0.50x, 32: 0.62-0.70x, 64: 0.85-1.06x, 128: 1.21-1.36x (there BLAS's blocking beats one pass over the
samples; in a whole dense view 1.12x). So the plan fuses first layers up to `FUSE_MAX_WIDTH` = 48 wide
(pruned networks) and leaves wider ones (the dense 2x128) on BLAS. A rule, not a measurement per process:
a short timing at plan time called the 128-wide layer faster in two processes of three (waking torch's threads
weighs on a short product), and a choice that flips between runs would make two timings of one model disagree.

The reference is the unfused plan (`MLPConfig(inference="unfused")`), and through it the torch encoding
(`taichi_kernels.reference.positional_encoding`) and `nn.Linear`: tests/test_fused.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FUSED_ACTIVATIONS = ("relu", "none")
FUSE_MAX_WIDTH = 48  # widest first layer fused by default: 32 measured 0.5-0.7x the unfused time, 64 0.85-1.06x


def native_kernel():
    """`nerfprune._native.encode_first_layer`, or None when the extension is missing or older."""
    try:
        import nerfprune._native as _native
    except ImportError:
        return None
    return getattr(_native, "encode_first_layer", None)


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
