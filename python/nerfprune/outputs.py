"""Writing rendered images and videos: PNG for views, MP4 (ffmpeg) or GIF for paths.

OS errors while writing (a read-only or full folder) are `ConfigError`s naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nerfprune.config import make_dir, output_errors
from nerfprune.errors import ConfigError

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".gif")  # what write_video writes


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[H, W(, C)] float in [0, 1] -> uint8."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def depth_to_image(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth [H, W] -> [H, W, 3] float image (near = bright, far = dark; matplotlib 'turbo')."""
    from matplotlib import colormaps

    d = np.clip((depth - near) / max(far - near, 1e-9), 0.0, 1.0)
    return colormaps["turbo"](1.0 - d)[..., :3]


def write_png(path: str | Path, img: np.ndarray) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    make_dir(path.parent)
    with output_errors(path):
        iio.imwrite(path, to_uint8(img))
    return path


def write_comparison(path: str | Path, pred: np.ndarray, gt: np.ndarray) -> Path:
    """Rendered | ground truth | error map (|pred - gt| averaged over channels, x4)."""
    err = np.clip(np.abs(pred - gt).mean(-1, keepdims=True) * 4.0, 0, 1).repeat(3, -1)
    return write_png(path, np.concatenate([pred, gt, err], axis=1))


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """MP4 through imageio's ffmpeg plugin; falls back to GIF when ffmpeg is unavailable."""
    import imageio.v2 as iio2

    path = Path(path)
    if path.suffix not in VIDEO_SUFFIXES:  # callers check this before rendering (api.render)
        raise ConfigError(f"{path}: a video must end in {' or '.join(VIDEO_SUFFIXES)}")
    make_dir(path.parent)
    data = [to_uint8(f) for f in frames]
    if path.suffix == ".mp4":
        try:
            # Even sizes for yuv420p; macro_block_size=1 keeps small frames as they are.
            iio2.mimwrite(path, data, fps=fps, macro_block_size=1)
            return path
        except Exception as e:  # ffmpeg missing or refusing the size
            log.warning("MP4 writing failed (%s); writing a GIF instead", e)
            path = path.with_suffix(".gif")
    with output_errors(path):
        iio2.mimwrite(path, data, duration=1000.0 / fps, loop=0)
    return path
