"""The field: the MLP that maps an encoded point and view direction to density and colour, in one room.

- `config`: `FieldConfig` (one MLP's size), `PRESETS`, `NerfModelConfig` (coarse + fine), `MLPConfig`
  (precision, training backward);
- `feature_grid`: `FeatureGrid`, the multiresolution feature grid of `encoding = "grid"` models;
- `density`: the density activation (raw density head output -> density), applied by every renderer;
- `topology`: the layer layout (`nerf_topology`), stated once; pruning addresses layers by its names;
- `mlp`: `NerfMLP` (dense, built from the topology) and `NerfModel` (coarse + fine);
- `training_backward`: the dense MLP's training pass with a hand-written gradient;
- `runners`: chunked evaluation of any network on many points;
- `graph`: `GraphMLP`, the compacted / sparse / int8 network of a pruned model.
"""

from nerfprune.field.config import PRESETS, FieldConfig, MLPConfig, NerfModelConfig, encoded_width
from nerfprune.field.mlp import NerfMLP, NerfModel, field_topology
from nerfprune.field.topology import LayerSpec, Topology, nerf_topology

__all__ = [
    "PRESETS", "FieldConfig", "MLPConfig", "NerfModelConfig", "encoded_width",
    "NerfMLP", "NerfModel", "field_topology", "LayerSpec", "Topology", "nerf_topology",
]
