"""The NeRF field: an MLP from encoded position and view direction to density and colour.

Architecture of the original NeRF (Mildenhall et al. 2020, Fig. 7), as stated by
`nerfprune.field.topology.nerf_topology`: `depth` ReLU layers of `width` units on
the encoded position, the encoded position concatenated again after each layer in
`skips`; a density head; a feature layer that, concatenated with the encoded
direction, feeds a half-width ReLU layer and the RGB head (sigmoid). `NerfMLP`
creates one `nn.Linear` per topology layer, under the topology's names
(`pts.0`, ..., `sigma`, `feature`, `views.0`, `rgb`), so pruning can address every
weight by name and checkpoints keep their keys.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from nerfprune.field.config import FieldConfig, MLPConfig
from nerfprune.field.density import activate_density
from nerfprune.field.feature_grid import FeatureGrid
from nerfprune.field.topology import Topology, nerf_topology

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}


def field_topology(cfg: FieldConfig) -> Topology:
    """The layer graph of one network of size `cfg`."""
    return nerf_topology(cfg.depth, cfg.width, cfg.skips, cfg.pos_features, cfg.dir_features)


class NerfMLP(nn.Module):
    """One dense NeRF MLP. forward(pos_enc [N, P], dir_enc [N, Dd]) -> (sigma_raw [N, 1], rgb [N, 3])."""

    def __init__(self, cfg: FieldConfig):
        super().__init__()
        self.cfg = cfg
        self.topology = field_topology(cfg)
        for spec in self.topology.layers:  # "pts.3" -> self.pts[3], "sigma" -> self.sigma, in layer order
            group, _, index = spec.name.partition(".")
            linear = nn.Linear(spec.in_features, spec.out_features)
            if not index:
                setattr(self, group, linear)
                continue
            if not hasattr(self, group):
                setattr(self, group, nn.ModuleList())
            getattr(self, group).append(linear)

    def layer(self, name: str) -> nn.Linear:
        """The `nn.Linear` of topology layer `name`."""
        group, _, index = name.partition(".")
        module = getattr(self, group)
        return module[int(index)] if index else module

    def inference_weights(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """layer name -> (weight [out, in], bias [out]) as `forward` would use them now: a mask of
        `torch.nn.utils.prune` (the "masked" variant) is multiplied in here, once per inference call
        (`nerfprune.field.inference`)."""
        weights = {}
        for name in self.topology.names:
            linear = self.layer(name)
            weights[name] = tuple(
                getattr(linear, f"{kind}_orig") * getattr(linear, f"{kind}_mask")
                if hasattr(linear, f"{kind}_mask") else getattr(linear, kind) for kind in ("weight", "bias"))
        return weights

    def forward_rays(self, pos_enc: torch.Tensor, dir_enc: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Same values as forward, on S = `samples` points per ray: pos_enc [B*S, P], dir_enc [B, Dd] (one per ray).

        Gradients come from `nerfprune.field.training_backward` (direction term once per ray).
        """
        from nerfprune.field.training_backward import forward_rays

        return forward_rays(self, pos_enc, dir_enc, samples)

    def forward(self, pos_enc: torch.Tensor, dir_enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = {"pos": pos_enc, "dir": dir_enc}
        for spec in self.topology.layers:
            parts = [values[source] for source, _ in spec.inputs]
            x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
            values[spec.name] = ACTIVATIONS[spec.activation](self.layer(spec.name)(x))
        return values["sigma"], values["rgb"]


class NerfModel(nn.Module):
    """Coarse + (optional) fine NeRF MLPs sharing one encoding.

    Each network is any module with forward(pos_enc, dir_enc) -> (sigma_raw, rgb):
    a `NerfMLP` when dense, a compacted or sparse `GraphMLP` after pruning.
    `mlp` says how the networks run (precision, training backward); the renderer reads it.
    """

    def __init__(self, cfg: FieldConfig, fine: bool = True, mlp: MLPConfig | None = None):
        super().__init__()
        self.field_cfg = cfg
        self.mlp = mlp or MLPConfig()
        # encoding "grid": one feature grid, read by both networks (nerfprune.field.feature_grid)
        self.features: FeatureGrid | None = None
        if cfg.encoding == "grid":
            self.features = FeatureGrid(cfg.grid_levels, cfg.grid_resolution, cfg.grid_features, cfg.grid_scale)
        self.coarse: nn.Module = NerfMLP(cfg)
        self.fine: nn.Module | None = NerfMLP(cfg) if fine else None

    @property
    def device(self) -> torch.device:
        """Where the weights are (parameters, or the buffers of compacted networks); the renderer makes its rays there."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def topology(self) -> Topology:
        """The layer graph of each network, for pruning and compaction."""
        return field_topology(self.field_cfg)

    def network(self, which: str) -> nn.Module:
        if which == "fine" and self.fine is not None:
            return self.fine
        return self.coarse

    def encode_points(self, points: torch.Tensor, encode) -> torch.Tensor:
        """The network input [N, P] at points [N, 3]: the feature grid's, or `encode(points, pos_frequencies)`
        (a `RenderMath.positional_encoding`) for the frequency encoding."""
        if self.features is not None:
            return self.features(points)
        return encode(points, self.field_cfg.pos_frequencies)

    @torch.no_grad()
    def density(self, points: torch.Tensor, encode) -> torch.Tensor:
        """Density [N] >= 0 at world points [N, 3]: the larger of the networks' (what the occupancy grid needs).

        `encode(x, n_frequencies)` is the positional encoding to use (a `RenderMath.positional_encoding`).
        NeRF's density does not depend on the view direction, so a zero direction encoding is passed.
        """
        pos_enc = self.encode_points(points, encode)  # [N, P]
        dir_enc = pos_enc.new_zeros(points.shape[0], self.field_cfg.dir_features)  # [N, Dd]
        activation = self.field_cfg.density_activation
        sigma = [activate_density(net(pos_enc, dir_enc)[0][:, 0], activation) for net in self.networks().values()]
        return torch.stack(sigma).amax(dim=0)

    def networks(self) -> dict[str, nn.Module]:
        """{"coarse": ..., "fine": ...} (fine only when present)."""
        return {"coarse": self.coarse, **({"fine": self.fine} if self.fine is not None else {})}
