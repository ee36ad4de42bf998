"""Type stubs of nerfprune._native, the PyO3 extension over the pure-Rust core (hand-written)."""

import numpy as np
import numpy.typing as npt

class SceneError(ValueError):
    """Bad scene data on disk: the message names the file and the problem."""

class NativePanic(RuntimeError):
    """A bug in nerfprune's Rust code (a panic), caught before it could abort Python."""

def _panic_for_tests() -> None:
    """Always raises NativePanic (proves panics do not abort the interpreter)."""

def fingerprint(data: npt.NDArray[np.uint8]) -> int:
    """Chunked FNV-1a-64 fingerprint of a C-contiguous uint8 array (thread-count independent)."""

def fnv1a64(data: npt.NDArray[np.uint8]) -> int:
    """Sequential FNV-1a-64 of a C-contiguous uint8 array."""

def decode_images(paths: list[str], factor: int = 1) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG files in parallel (GIL released) into one C-contiguous
    [N, H // factor, W // factor, C] uint8 array, C = 4 if any file has alpha else 3.
    All files must share one size. Raises SceneError naming the file."""

def decode_image_bytes(data: bytes, name: str = "<bytes>") -> npt.NDArray[np.uint8]:
    """Decode one in-memory PNG/JPEG to [H, W, C] uint8 with the file's own channel
    count (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA). `name` is used in error messages."""

def probe_image(path: str) -> tuple[int, int, bool]:
    """(width, height, has_alpha) from the file header only."""

def downscale_images(images: npt.NDArray[np.uint8], factor: int) -> npt.NDArray[np.uint8]:
    """Area-downscale a C-contiguous [N, H, W, C] uint8 array by an integer factor
    (RGBA averaged alpha-weighted); returns [N, H // factor, W // factor, C]."""

def ray_batch(
    images: npt.NDArray[np.uint8],
    views: npt.NDArray[np.int64],
    iteration: int,
    *,
    batch_size: int,
    seed: int,
    precrop_iters: int,
    precrop_frac: float,
    single_image: bool,
    background: tuple[float, float, float],
    random_background: bool,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
]:
    """Batch `iteration` of rays over images[views] (a pure function of seed and iteration):
    (view [B], row [B], col [B], rgb [B, 3] composited on background, background [B, 3])."""
