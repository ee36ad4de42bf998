"""Training ray batches: pixel indices and target colours, computed in Rust.

`RayBatcher.batch(i)` is a pure function of (seed, i): pixels are shuffled
without replacement per epoch by a seeded Feistel permutation of all
(view, row, col) of the split (`nerfprune_core::batch`), so a resumed run gets
the same batches with no sampler state, and memory does not depend on the
number of iterations. Targets are sRGB in [0, 1], alpha composited onto the
background returned with the batch (the renderer composites onto the same).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import nerfprune._native as _native
from nerfprune.scene.types import Scene


@dataclass
class RayBatch:
    """One batch of B rays (numpy arrays; `to_torch` converts without copying)."""

    view: np.ndarray  # [B] int64, index into scene.images / scene.cameras
    row: np.ndarray  # [B] int64, pixel row (centre at row + 0.5)
    col: np.ndarray  # [B] int64, pixel column (centre at col + 0.5)
    rgb: np.ndarray  # [B, 3] float32 target colour in [0, 1], composited on `background`
    background: np.ndarray  # [B, 3] float32 background colour of each ray in [0, 1]

    def __len__(self) -> int:
        return int(self.view.shape[0])

    def to_torch(self, device: str = "cpu") -> "RayBatch":
        import torch

        return RayBatch(*(torch.from_numpy(a).to(device) for a in (self.view, self.row, self.col, self.rgb, self.background)))


@dataclass
class BatchConfig:
    """How training rays are drawn; `RayBatcher.from_config(scene, config)` uses it."""

    batch_size: int = 1024  # rays per batch
    seed: int = 0  # seed of the per-epoch shuffles and of random backgrounds
    precrop_iters: int = 0  # first iterations that sample only the image centre (0 = off)
    precrop_frac: float = 0.5  # fraction of height and width kept by that centre crop
    single_image: bool = False  # every batch from one view instead of all views mixed


class RayBatcher:
    """Batches of rays over one split of a scene.

    scene: the loaded scene (images uint8 [N, H, W, 3|4]).
    split: which split's views to draw from ("train", "val", "test").
    batch_size: rays per batch.
    seed: seed of the shuffles (and of random backgrounds when `scene.random_background`).
    precrop_iters: for iterations < precrop_iters, draw only from the centre crop.
    precrop_frac: fraction of height and width kept by that crop, in (0, 1].
    single_image: every batch from one view (each view once per round of len(split) batches).
    """

    def __init__(
        self,
        scene: Scene,
        split: str = "train",
        batch_size: int = 1024,
        seed: int = 0,
        precrop_iters: int = 0,
        precrop_frac: float = 0.5,
        single_image: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 < precrop_frac <= 1.0:
            raise ValueError(f"precrop_frac must be in (0, 1], got {precrop_frac}")
        if precrop_iters < 0 or seed < 0:
            raise ValueError("precrop_iters and seed must be >= 0")
        self.scene = scene
        self.views = np.ascontiguousarray(scene.split(split), dtype=np.int64)  # [V]
        if self.views.size == 0:
            raise ValueError(f"{scene.source}: split '{split}' has no views")
        self.images = np.ascontiguousarray(scene.images)  # [N, H, W, C] uint8, shared, not copied
        self.batch_size = batch_size
        self.seed = seed
        self.precrop_iters = precrop_iters
        self.precrop_frac = precrop_frac
        self.single_image = single_image

    @classmethod
    def from_config(cls, scene: Scene, config: BatchConfig, split: str = "train") -> "RayBatcher":
        return cls(scene, split, **asdict(config))

    @property
    def rays_per_epoch(self) -> int:
        return int(self.views.size) * self.scene.height * self.scene.width

    def batch(self, iteration: int) -> RayBatch:
        """Batch number `iteration` (>= 0); the same arguments always give the same batch."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        view, row, col, rgb, background = _native.ray_batch(
            self.images, self.views, iteration,
            batch_size=self.batch_size, seed=self.seed, precrop_iters=self.precrop_iters,
            precrop_frac=self.precrop_frac, single_image=self.single_image,
            background=tuple(float(c) for c in self.scene.background),
            random_background=self.scene.random_background,
        )
        return RayBatch(view=view, row=row, col=col, rgb=rgb, background=background)
