"""Positional encoding of the original NeRF (Mildenhall et al. 2020, eq. 4).

gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^(L-1) pi p), cos(2^(L-1) pi p)),
with the input included first. Like the original code, frequencies are 2^k
without the factor pi (`torch.sin(2**k * x)`), which works for scenes scaled to
a few units. Feature order: [x, y, z, sin(f0 x), sin(f0 y), sin(f0 z), cos(f0 x), ...].
"""

from __future__ import annotations

import torch


def encoded_width(n_frequencies: int, dims: int = 3) -> int:
    """Number of features `positional_encoding` returns for `dims` inputs."""
    return dims * (1 + 2 * n_frequencies)


def positional_encoding(x: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """x [N, D] -> [N, D * (1 + 2 * n_frequencies)]."""
    if n_frequencies == 0:
        return x
    freqs = 2.0 ** torch.arange(n_frequencies, dtype=x.dtype, device=x.device)  # [L]
    scaled = x[:, None, :] * freqs[None, :, None]  # [N, L, D]
    parts = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=2)  # [N, L, 2, D]
    return torch.cat([x, parts.reshape(x.shape[0], 2 * n_frequencies * x.shape[1])], dim=-1)
