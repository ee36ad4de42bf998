"""The NeRF field: an MLP from encoded position and view direction to density and colour.

Architecture of the original NeRF (Mildenhall et al. 2020, Fig. 7): `depth`
ReLU layers of `width` units on the encoded position, the encoded position
concatenated again after each layer in `skips`; a density head; a feature layer
that, concatenated with the encoded direction, feeds a half-width ReLU layer and
the RGB head (sigmoid). Layer names match `nerfprune.prune.topology.nerf_topology`
so pruning can address every weight by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nerfprune.encoding import encoded_width, positional_encoding


@dataclass
class FieldConfig:
    """Size of one NeRF MLP."""

    depth: int = 8  # number of ReLU layers on the encoded position
    width: int = 256  # units per layer
    skips: tuple[int, ...] = (4,)  # layer indices after which the encoded position is concatenated again
    pos_frequencies: int = 10  # positional-encoding frequencies for positions (input included)
    dir_frequencies: int = 4  # positional-encoding frequencies for view directions

    @property
    def pos_features(self) -> int:
        return encoded_width(self.pos_frequencies)

    @property
    def dir_features(self) -> int:
        return encoded_width(self.dir_frequencies)


PRESETS: dict[str, FieldConfig] = {
    # The original NeRF network.
    "nerf": FieldConfig(depth=8, width=256, skips=(4,)),
    # The 2022 "Pruning NeRFs" study's small network: 2 layers x 128.
    "small": FieldConfig(depth=2, width=128, skips=()),
    # Tests only: seconds to train.
    "tiny": FieldConfig(depth=2, width=32, skips=(), pos_frequencies=6, dir_frequencies=2),
}


class NerfMLP(nn.Module):
    """One NeRF MLP. forward(pos_enc [N, P], dir_enc [N, Dd]) -> (sigma_raw [N, 1], rgb [N, 3])."""

    def __init__(self, cfg: FieldConfig):
        super().__init__()
        self.cfg = cfg
        w, p = cfg.width, cfg.pos_features
        in_sizes = [p] + [w + p if (i - 1) in cfg.skips else w for i in range(1, cfg.depth)]
        self.pts = nn.ModuleList([nn.Linear(n, w) for n in in_sizes])
        self.sigma = nn.Linear(w, 1)
        self.feature = nn.Linear(w, w)
        self.views = nn.ModuleList([nn.Linear(w + cfg.dir_features, w // 2)])
        self.rgb = nn.Linear(w // 2, 3)

    def forward(self, pos_enc: torch.Tensor, dir_enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = pos_enc
        for i, layer in enumerate(self.pts):
            h = torch.relu(layer(h))
            if i in self.cfg.skips:
                h = torch.cat([pos_enc, h], dim=-1)
        sigma_raw = self.sigma(h)
        hv = torch.relu(self.views[0](torch.cat([self.feature(h), dir_enc], dim=-1)))
        return sigma_raw, torch.sigmoid(self.rgb(hv))


@dataclass
class NerfModelConfig:
    """The coarse and fine networks of a NeRF model."""

    preset: str = "small"  # one of PRESETS; `depth`/`width` below override it when set
    depth: int | None = None  # override the preset's depth
    width: int | None = None  # override the preset's width
    fine: bool = True  # train a separate fine network for the importance samples

    def field_config(self) -> FieldConfig:
        from nerfprune.errors import ConfigError

        if self.preset not in PRESETS:
            raise ConfigError(f"unknown network preset '{self.preset}': choose one of {', '.join(PRESETS)}")
        base = PRESETS[self.preset]
        cfg = FieldConfig(**{**base.__dict__})
        if self.depth is not None:
            cfg.depth = self.depth
            cfg.skips = tuple(s for s in cfg.skips if s < self.depth - 1)
        if self.width is not None:
            cfg.width = self.width
        if cfg.depth < 1 or cfg.width < 2:
            raise ConfigError(f"network depth must be >= 1 and width >= 2, got depth={cfg.depth}, width={cfg.width}")
        return cfg


class NerfModel(nn.Module):
    """Coarse + (optional) fine NeRF MLPs sharing one encoding.

    Each network is any module with forward(pos_enc, dir_enc) -> (sigma_raw, rgb):
    a `NerfMLP` when dense, a compacted or sparse module after pruning.
    """

    def __init__(self, cfg: FieldConfig, fine: bool = True):
        super().__init__()
        self.field_cfg = cfg
        self.coarse: nn.Module = NerfMLP(cfg)
        self.fine: nn.Module | None = NerfMLP(cfg) if fine else None

    def encode_points(self, points: torch.Tensor, backend: str = "torch") -> torch.Tensor:
        """points [N, 3] -> pos_enc [N, P]; `backend` "taichi" runs the Taichi kernel (no gradient to points)."""
        if backend == "taichi" and not points.requires_grad:
            from taichi_kernels.encoding import positional_encoding as taichi_encoding

            return taichi_encoding(points, self.field_cfg.pos_frequencies)
        return positional_encoding(points, self.field_cfg.pos_frequencies)

    def encode_dirs(self, viewdirs: torch.Tensor) -> torch.Tensor:
        """unit viewdirs [N, 3] -> dir_enc [N, Dd]."""
        return positional_encoding(viewdirs, self.field_cfg.dir_frequencies)

    def topology(self):
        """The layer graph of each network (`nerfprune.prune.topology.Topology`), for pruning and compaction."""
        from nerfprune.prune.topology import nerf_topology

        c = self.field_cfg
        return nerf_topology(c.depth, c.width, c.skips, c.pos_features, c.dir_features)

    def network(self, which: str) -> nn.Module:
        if which == "fine" and self.fine is not None:
            return self.fine
        return self.coarse
