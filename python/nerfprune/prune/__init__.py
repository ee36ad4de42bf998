"""Lottery-ticket pruning: masks, their bookkeeping, compaction and sparse inference.

The bookkeeping (selection, overlap, dead neurons, CSR) runs in Rust
(`nerfprune._native`); this package is its torch-facing side.
"""

from nerfprune.prune.compact import CompactResult, compact
from nerfprune.prune.graph import GraphMLP, tune_modes
from nerfprune.prune.masks import (
    LayerStats,
    Overlap,
    global_magnitude_masks,
    keep_count,
    layerwise_magnitude_masks,
    magnitude_threshold,
    mask_overlap,
    mask_stats,
    masked_csr,
    random_masks,
    random_masks_like,
)
from nerfprune.prune.topology import LayerSpec, Topology, nerf_topology

__all__ = [
    "CompactResult",
    "GraphMLP",
    "LayerSpec",
    "LayerStats",
    "Overlap",
    "Topology",
    "compact",
    "global_magnitude_masks",
    "keep_count",
    "layerwise_magnitude_masks",
    "magnitude_threshold",
    "mask_overlap",
    "mask_stats",
    "masked_csr",
    "nerf_topology",
    "random_masks",
    "random_masks_like",
    "tune_modes",
]
