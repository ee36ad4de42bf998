"""Torch-facing mask bookkeeping over the Rust core (`nerfprune._native`).

A mask dict maps a parameter name (e.g. `coarse.pts.0.weight`) to a bool tensor
of the parameter's shape: `True` = live, `False` = pruned. Dict order matters
only for ties: among equal magnitudes, the weight that comes first (earlier
parameter in the dict, then row-major position) survives.

A pruning round with fraction `p` prunes `p` of the weights that are still live
and keeps `k = round((1 - p) * live)` of them (halves round away from zero).
Selection is O(n) (`select_nth_unstable` in Rust), never a full sort.

Masks are saved in one place: the training checkpoint (`nerfprune.checkpoint`,
one `mask/<param>` bool tensor each). Masks that do not fit their weights or
each other raise `MaskError`, from Python and from Rust alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import nerfprune._native as _native
from nerfprune.errors import MaskError, NerfpruneError


def _flat_bool(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.bool).reshape(-1).numpy())


def _flat_scores(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).abs().reshape(-1).numpy())


def _current(weights: dict[str, Tensor], current: dict[str, Tensor] | None) -> list[np.ndarray]:
    """Flat current masks in `weights` order (all-live where `current` has no entry)."""
    out = []
    for name, w in weights.items():
        m = None if current is None else current.get(name)
        if m is not None and tuple(m.shape) != tuple(w.shape):
            raise MaskError(f"mask {name!r} has shape {tuple(m.shape)}, weight has {tuple(w.shape)}")
        out.append(np.ones(w.numel(), dtype=bool) if m is None else _flat_bool(m))
    return out


def _unflatten(weights: dict[str, Tensor], flat: list[np.ndarray]) -> dict[str, Tensor]:
    return {
        name: torch.from_numpy(f).reshape(w.shape).to(w.device)
        for (name, w), f in zip(weights.items(), flat)
    }


def _magnitude(
    weights: dict[str, Tensor], current: dict[str, Tensor] | None, fraction: float, per_layer: bool
) -> tuple[dict[str, Tensor], list[float | None]]:
    for name, w in weights.items():
        if torch.isnan(w).any():
            raise NerfpruneError(f"{name}: the weight contains NaN; magnitude pruning needs finite weights")
    scores = [_flat_scores(w) for w in weights.values()]
    flat, thresholds = _native.magnitude_masks(scores, _current(weights, current), fraction, per_layer)
    return _unflatten(weights, flat), thresholds


def global_magnitude_masks(
    weights: dict[str, Tensor], current: dict[str, Tensor] | None, fraction: float
) -> dict[str, Tensor]:
    """Prune `fraction` of the live weights with the smallest |w|, ranked over all layers together.

    `weights`: parameter name -> tensor (any shape); `current`: masks from the
    previous round (None or missing entries = all live). Returns new bool masks
    (subsets of `current`) with the same keys and shapes as `weights`.
    """
    return _magnitude(weights, current, fraction, per_layer=False)[0]


def layerwise_magnitude_masks(
    weights: dict[str, Tensor], current: dict[str, Tensor] | None, fraction: float
) -> dict[str, Tensor]:
    """Prune the same `fraction` of the live weights in every layer separately (smallest |w|)."""
    return _magnitude(weights, current, fraction, per_layer=True)[0]


def magnitude_threshold(
    weights: dict[str, Tensor], current: dict[str, Tensor] | None, fraction: float
) -> float | None:
    """The smallest |w| kept by `global_magnitude_masks` (None if nothing is kept)."""
    return _magnitude(weights, current, fraction, per_layer=False)[1][0] if weights else None


def random_masks(
    weights: dict[str, Tensor],
    current: dict[str, Tensor] | None,
    fraction: float,
    seed: int,
    per_layer: bool = False,
) -> dict[str, Tensor]:
    """Control: prune `fraction` of the live weights uniformly at random (seeded).

    With `per_layer=False` the global count equals the magnitude mask's; with
    `per_layer=True` every layer keeps `round((1 - fraction) * live_layer)`.
    Only shapes (and the device) of `weights` are used.
    """
    flat = _native.random_masks(_current(weights, current), fraction, seed, per_layer)
    return _unflatten(weights, flat)


def random_masks_like(
    masks: dict[str, Tensor], current: dict[str, Tensor] | None, seed: int
) -> dict[str, Tensor]:
    """Control: random masks with exactly the per-layer live counts of `masks`, within `current`."""
    counts = _native.mask_counts([_flat_bool(m) for m in masks.values()])
    flat = _native.random_masks_with_counts(_current(masks, current), counts, seed)
    return _unflatten(masks, flat)


def keep_count(live: int, fraction: float) -> int:
    """How many of `live` weights a round pruning `fraction` of them keeps."""
    return _native.mask_keep_count(live, fraction)


@dataclass(frozen=True)
class LayerStats:
    """Live-weight bookkeeping of one mask."""

    live: int  # weights still live
    total: int  # all weights of the layer
    sparsity: float  # pruned fraction, 1 - live / total (0.0 for an empty layer)


def _stats(live: int, total: int) -> LayerStats:
    return LayerStats(live, total, 1.0 - live / total if total else 0.0)


def mask_stats(masks: dict[str, Tensor]) -> dict[str, LayerStats]:
    """Per-layer live counts and sparsity, plus the key "total" over all masks."""
    counts = _native.mask_counts([_flat_bool(m) for m in masks.values()])
    out = {name: _stats(c, m.numel()) for (name, m), c in zip(masks.items(), counts)}
    out["total"] = _stats(sum(counts), sum(m.numel() for m in masks.values()))
    return out


@dataclass(frozen=True)
class Overlap:
    """How much two masks (e.g. two rounds) agree on the live weights."""

    intersection: int  # live in both
    union: int  # live in either
    jaccard: float  # intersection / union (1.0 when both are empty)


def mask_overlap(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Overlap]:
    """Per-layer overlap of two mask dicts with the same keys, plus the key "total"."""
    if a.keys() != b.keys():
        raise MaskError(f"mask_overlap: different layers: {sorted(a.keys() ^ b.keys())}")
    out = {}
    for name in a:
        if a[name].shape != b[name].shape:
            raise MaskError(f"mask_overlap: {name!r} has shapes {tuple(a[name].shape)} and {tuple(b[name].shape)}")
        out[name] = Overlap(*_native.mask_overlap(_flat_bool(a[name]), _flat_bool(b[name])))
    inter = sum(o.intersection for o in out.values())
    union = sum(o.union for o in out.values())
    out["total"] = Overlap(inter, union, inter / union if union else 1.0)
    return out


def masked_csr(weight: Tensor, mask: Tensor) -> Tensor:
    """The live entries of a 2-D `weight` `[out, in]` as a `torch.sparse_csr` tensor (float32, CPU)."""
    if weight.dim() != 2:
        raise NerfpruneError(f"masked_csr: need a 2-D weight [out, in], got shape {tuple(weight.shape)}")
    if weight.shape != mask.shape:
        raise MaskError(f"masked_csr: the mask has shape {tuple(mask.shape)}, the weight {tuple(weight.shape)}")
    rows, cols = weight.shape
    w = np.ascontiguousarray(weight.detach().to("cpu", torch.float32).reshape(-1).numpy())
    indptr, indices, values = _native.mask_to_csr(w, rows, cols, _flat_bool(mask))
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(indices),
            torch.from_numpy(values),
            size=(rows, cols),
            check_invariants=False,  # built by the Rust core: sorted, in range
        )
