"""Lottery-ticket pruning: masks, the method registry, rounds, compaction and inference variants.

- `masks`: mask selection and statistics (the bookkeeping runs in Rust, `nerfprune._native`);
- `methods`: the registry of pruning methods (`METHODS`); `structured`: whole-neuron masks;
- `importance`: neuron scores from training rays (activation statistics, first-order Taylor);
- `lottery`: pruning rounds with re-training (`PruneConfig`, `run_pruning`);
- `compact`: a pruned MLP turned into a smaller dense one;
- `variants`: the registry of inference variants of a pruned model (`VARIANTS`).
The compacted network (`GraphMLP`) and the layer topology live in `nerfprune.field`;
they are re-exported here for convenience.
"""

from nerfprune.pruning.compact import CompactResult, compact
from nerfprune.field.graph import GraphMLP, tune_modes
from nerfprune.pruning.masks import (
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
from nerfprune.field.topology import LayerSpec, Topology, nerf_topology

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
