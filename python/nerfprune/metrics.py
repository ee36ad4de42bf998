"""Image-quality metrics and honest render timings.

PSNR and L2 are computed on images in [0, 1] (sRGB values, as stored).
SSIM is scikit-image's `structural_similarity` (Wang et al. 2004, 7x7 window,
data range 1), not a hand-written copy. Timings are medians over repeated
renders after a warm-up, reported with their spread: a single timing is not a
result on a shared CPU.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


def l2(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    return float(np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2))


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = l2(pred, gt)
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """Structural similarity of two [H, W, 3] images in [0, 1] (scikit-image)."""
    from skimage.metrics import structural_similarity

    win = min(7, pred.shape[0], pred.shape[1])
    win -= (win + 1) % 2  # odd window no larger than the image
    return float(structural_similarity(gt, pred, channel_axis=-1, data_range=1.0, win_size=max(win, 3)))


@dataclass
class Timing:
    """Repeated wall-clock timings of one operation, in seconds."""

    samples: list[float]  # every repeat after the warm-up

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q25(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q75(self) -> float:
        return float(np.percentile(self.samples, 75))

    def as_dict(self) -> dict:
        return {"median_s": self.median, "q25_s": self.q25, "q75_s": self.q75,
                "min_s": min(self.samples), "max_s": max(self.samples), "repeats": len(self.samples)}

    def __str__(self) -> str:
        return f"{self.median:.3f} s (IQR {self.q25:.3f}-{self.q75:.3f}, n={len(self.samples)})"


def time_repeated(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Run `fn` `warmup` times untimed, then `repeats` times timed."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(samples)
