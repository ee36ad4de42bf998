# TEMPORARY dev stand-in (replaced by the scene branch)
from dataclasses import dataclass
import numpy as np, torch
@dataclass
class RayBatch:
    view: torch.Tensor; row: torch.Tensor; col: torch.Tensor; rgb: torch.Tensor; background: torch.Tensor
class RayBatcher:
    def __init__(self, scene, split="train", batch_size=1024, seed=0, precrop_iters=0, precrop_frac=0.5, single_image=False):
        self.scene, self.views, self.b, self.seed = scene, scene.split(split), batch_size, seed
        self.imgs = scene.images_float()
    def batch(self, it):
        rng = np.random.default_rng(self.seed * 7919 + it)
        v = self.views[rng.integers(0, len(self.views), self.b)]
        r = rng.integers(0, self.scene.height, self.b); c = rng.integers(0, self.scene.width, self.b)
        rgb = self.imgs[v, r, c]
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        return RayBatch(t(v), t(r), t(c), t(rgb.astype(np.float32)), torch.ones(self.b, 3))
