"""A multiresolution dense feature grid: the position encoding of `encoding = "grid"` models.

Why: a frequency-encoded MLP stores the whole scene in its weights, so pruning 95 % of them must lose
detail (mic 100x100, 2x128, lr 4e-3: dense 30.46 dB, structured 95 % -5.73 dB, docs/pruning.md). Here
the scene lives in trainable tables, as in DVGO and instant-ngp's dense levels, and the MLP only decodes
a short feature vector; pruning the MLP then removes decoding capacity, not the scene.

`levels` cubic tables of `features` channels over the scene's bounding box, resolutions geometric from
16 to `resolution` (`field.config.level_resolutions`, torch-free); a point's features are the trilinear
interpolation of each table (torch's `grid_sample`, whose gradient reaches the tables), times `scale`.
The encoding the MLP reads is [x, y, z, level 0 features, level 1 features, ...]: the raw coordinates first (as the frequency encoding),
so structured pruning's `prune_inputs` keeps them (`POS_KEPT`).

`scale`: Adam moves every table entry by about lr per step; features scaled by `scale` move `scale` x lr,
the ~10x higher rate grids want (instant-ngp trains its tables at 1e-2) without a second optimiser group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfprune.field.config import grid_encoded_width, level_resolutions

INIT_RANGE = 1e-4  # tables start uniform in [-INIT_RANGE, INIT_RANGE] (instant-ngp)


class FeatureGrid(nn.Module):
    """forward(points [N, 3]) -> encoding [N, 3 + levels * features]; bounds from the scene's box (buffers)."""

    def __init__(self, levels: int, resolution: int, features: int, scale: float,
                 lo: tuple[float, float, float] = (-1.0, -1.0, -1.0), hi: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        super().__init__()
        self.resolutions, self.features, self.scale = level_resolutions(levels, resolution), features, float(scale)
        self.register_buffer("lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(hi, dtype=torch.float32))
        self.tables = nn.ParameterList([  # each [1, features, r, r, r] (grid_sample's N, C, D, H, W)
            nn.Parameter((torch.rand(1, features, r, r, r) * 2 - 1) * INIT_RANGE) for r in self.resolutions])
        self._packed: tuple = ()  # the kernel's channels-last copy of the tables, and the box
        self._packed_key: tuple = ()  # the tables' and box's versions it was made from

    @property
    def width(self) -> int:
        return grid_encoded_width(len(self.resolutions), self.features)

    def set_bounds(self, lo, hi) -> None:
        """The box the tables span (the scene's `aabb`); points outside read the border cells."""
        with torch.no_grad():
            self.lo.copy_(torch.as_tensor(lo, dtype=torch.float32))
            self.hi.copy_(torch.as_tensor(hi, dtype=torch.float32))

    def forward(self, points: Tensor) -> Tensor:
        n = points.shape[0]
        unit = (points - self.lo) / (self.hi - self.lo) * 2 - 1  # [N, 3] in [-1, 1]; grid_sample reads (x, y, z) as (W, H, D)
        where = unit.reshape(1, n, 1, 1, 3).to(self.tables[0].dtype)
        parts = [points]
        for table in self.tables:
            sampled = F.grid_sample(table, where, mode="bilinear", align_corners=True, padding_mode="border")
            parts.append(sampled.reshape(self.features, n).t())  # [N, features]
        out = torch.cat(parts, dim=1)  # [N, 3 + L F]
        out[:, 3:] *= self.scale
        return out

    def encode_at(self, origins: Tensor, dirs: Tensor, t: Tensor, ray_index: Tensor, n_frequencies: int = 0, *,
                  columns: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """The encoding at points origins[r] + t dirs[r], r = ray_index [N] (the `EncodeAt` of the inference
        plan, `nerfprune.field.inference`): only `columns` (a compacted network's inputs), written into `out`."""
        points = origins[ray_index] + t[:, None] * dirs[ray_index]  # [N, 3]
        enc = self(points)
        if columns is not None:
            enc = enc.index_select(1, columns.to(enc.device))
        if out is None:
            return enc
        out[:, :enc.shape[1]].copy_(enc)
        return out

    def kernel_encode_at(self, origins: Tensor, dirs: Tensor, t: Tensor, ray_index: Tensor, n_frequencies: int = 0,
                         *, columns: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """`encode_at` through the Taichi kernel (`taichi_kernels.feature_grid`; no gradient): the same values to
        float rounding, no pass per level and nothing allocated per chunk. The channels-last copy of the tables
        it reads is made again only when a table or the box changed (training steps, `set_bounds`, `.to`)."""
        from taichi_kernels.feature_grid import grid_encoding_at, pack_tables

        key = tuple((x._version, x.data_ptr(), str(x.device)) for x in (*self.tables, self.lo, self.hi))
        if key != self._packed_key:
            self._packed = (pack_tables(list(self.tables)), torch.stack([self.lo, self.hi]))
            self._packed_key = key
        tables, box = self._packed
        return grid_encoding_at(origins, dirs, t, ray_index, tables, box, self.scale, columns=columns, out=out)
