"""The feature grid's encoding at sample points, as one Taichi kernel (forward only: rendering).

Same values as the torch reference `nerfprune.field.feature_grid.FeatureGrid.forward` (torch's `grid_sample`,
trilinear, `align_corners=True`, border padding) at the points origins[r] + t dirs[r]: [x, y, z, then each
level's `features` channels x `scale`], or only the `columns` asked for, written into the caller's `out`
(the inference plan's reused buffer, `nerfprune.field.inference`), so nothing is allocated per chunk.

Why a kernel: `grid_sample` runs one pass per level and allocates its output and the gathered points; the
kernel reads every table once per point from one channels-last copy of all levels ([cells, features], the 8
corners of a cell 2 x `features` floats apart along x), computed while the sample point is in registers.
`pack_tables` makes that copy; the caller keeps it while the tables do not change (a trained model).
"""

import torch

from taichi_kernels._taichi import ti
from taichi_kernels.runtime import ensure_initialized, launch, serial_launch


@ti.kernel
def _grid_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), t: ti.types.ndarray(),
                 ray: ti.types.ndarray(), packed: ti.types.ndarray(), offsets: ti.types.ndarray(),
                 sizes: ti.types.ndarray(), box: ti.types.ndarray(), where: ti.types.ndarray(),
                 out: ti.types.ndarray(), scale: ti.f32, levels: ti.template(), features: ti.template(),
                 serial: ti.template()):
    # packed [cells, features] (level l's cell (x, y, z) at offsets[l] + (z R + y) R + x, R = sizes[l]);
    # box [2, 3] (lo, hi); where[f]: output column of feature f of the full encoding, or -1.
    ti.loop_config(serialize=serial)
    for i in range(out.shape[0]):
        r = ray[i]
        unit = ti.Vector([0.0, 0.0, 0.0])
        for d in ti.static(range(3)):
            p = origins[r, d] + t[i] * dirs[r, d]
            if where[d] >= 0:
                out[i, where[d]] = p
            unit[d] = ti.min(ti.max((p - box[0, d]) / (box[1, d] - box[0, d]), 0.0), 1.0)
        for level in ti.static(range(levels)):
            size = sizes[level]
            pos = unit * ti.cast(size - 1, ti.f32)
            base = ti.Vector([0, 0, 0])
            for d in ti.static(range(3)):
                base[d] = ti.min(ti.cast(ti.floor(pos[d]), ti.i32), size - 2)
            frac = pos - ti.cast(base, ti.f32)
            cell = offsets[level] + (base[2] * size + base[1]) * size + base[0]
            acc = ti.Vector([0.0] * features)
            for corner in ti.static(range(8)):  # each corner's weight once, then all its channels (adjacent)
                dx, dy, dz = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
                w = ((frac[0] if dx else 1.0 - frac[0]) * (frac[1] if dy else 1.0 - frac[1])
                     * (frac[2] if dz else 1.0 - frac[2]))
                at = cell + (dz * size + dy) * size + dx
                for f in ti.static(range(features)):
                    acc[f] += w * packed[at, f]
            for f in ti.static(range(features)):
                col = where[3 + level * features + f]
                if col >= 0:
                    out[i, col] = acc[f] * scale


def pack_tables(tables: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tables [1, F, R, R, R] (z, y, x) -> (packed [sum R^3, F] channels-last, offsets [L] int32, sizes [L] int32)."""
    packed = torch.cat([t.detach()[0].permute(1, 2, 3, 0).reshape(-1, t.shape[1]) for t in tables]).float().contiguous()
    counts = [t.shape[2] ** 3 for t in tables]
    offsets = torch.tensor([sum(counts[:k]) for k in range(len(counts))], dtype=torch.int32, device=packed.device)
    sizes = torch.tensor([t.shape[2] for t in tables], dtype=torch.int32, device=packed.device)
    return packed, offsets, sizes


def grid_encoding_at(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
                     packed: tuple[torch.Tensor, torch.Tensor, torch.Tensor], box: torch.Tensor, scale: float, *,
                     columns: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The grid encoding at origins[r] + t dirs[r] (rays [B, 3], t [N], r = ray_index [N]) -> [N, F'] (the
    `columns` asked for, all 3 + L F otherwise), written into the first columns of `out` when given.
    `packed` is `pack_tables(...)`, `box` [2, 3] the grid's (lo, hi)."""
    ensure_initialized()
    table, offsets, sizes = packed
    levels, features = sizes.numel(), table.shape[1]
    width = 3 + levels * features
    where = torch.full((width,), -1, dtype=torch.int32)
    picked = torch.arange(width) if columns is None else columns.detach().cpu().to(torch.int64)
    if picked.numel() and (int(picked.min()) < 0 or int(picked.max()) >= width or picked.unique().numel() != picked.numel()):
        raise ValueError(f"grid_encoding_at: columns must be distinct and in [0, {width}), got {picked.tolist()}")
    where[picked] = torch.arange(picked.numel(), dtype=torch.int32)
    n = t.shape[0]
    if out is None:
        out = torch.empty((n, picked.numel()), dtype=torch.float32, device=t.device)
    elif out.dim() != 2 or out.shape[0] != n or out.shape[1] < picked.numel() or not out.is_contiguous():
        raise ValueError(f"grid_encoding_at: out must be contiguous with {n} rows and >= {picked.numel()} columns, "
                         f"got {list(out.shape)}")
    if n and picked.numel():
        f32 = [a.detach().to(torch.float32).contiguous() for a in (origins, dirs, t)]
        launch(_grid_kernel, *f32, ray_index.detach().to(torch.int64).contiguous(), table, offsets, sizes,
               box.detach().to(torch.float32).contiguous(), where.to(t.device), out, float(scale), levels, features,
               serial_launch(n))
    return out[:, :picked.numel()]
