"""Type stubs of nerfprune._native, the PyO3 extension over the pure-Rust core (hand-written).

tests/test_native_stub.py checks that these names, parameters, defaults and
exception bases match the built extension exactly.
"""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

# --- exceptions (rust/py/src/errors.rs); re-exported by nerfprune.errors ---

class NerfpruneError(ValueError):
    """Base of every error nerfprune reports about its inputs; the message names the file or
    argument and the problem."""

class SceneError(NerfpruneError):
    """Bad scene data on disk: the message names the file and the problem."""

class SceneReadError(SceneError):
    """A scene file cannot be read (missing, a folder, no permission)."""

class SceneDecodeError(SceneError):
    """A scene file was read but is not a valid image (corrupt, truncated, unsupported)."""

class MaskError(NerfpruneError):
    """Masks that do not fit the weights they mask or each other (shape, length or count)."""

class NativeArgumentError(NerfpruneError):
    """An argument breaks a documented precondition of a nerfprune._native function
    (including arrays that are not C-contiguous)."""

class NativePanic(RuntimeError):
    """A bug in nerfprune's Rust code (a panic or a broken internal invariant), caught before it
    could abort Python."""

def _panic_for_tests() -> None:
    """Always raises NativePanic (proves panics do not abort the interpreter)."""

def fingerprint(data: npt.NDArray[np.uint8]) -> int:
    """Chunked FNV-1a-64 fingerprint of a C-contiguous uint8 array (thread-count independent)."""

def fnv1a64(data: npt.NDArray[np.uint8]) -> int:
    """Sequential FNV-1a-64 of a C-contiguous uint8 array."""

def decode_images(paths: list[str], factor: int = 1) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG files in parallel (GIL released) into one C-contiguous
    [N, H // factor, W // factor, C] uint8 array, C = 4 if any file has alpha else 3.
    All files must share one size. Raises SceneReadError / SceneDecodeError naming the file."""

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

# --- masks (rust/py/src/masks.rs) ---
# Masks cross the boundary as flat, C-contiguous numpy bool arrays (row-major
# flattening of a weight [out, in]); scores as flat float32 arrays.
BoolArray: TypeAlias = npt.NDArray[np.bool_]

def mask_keep_count(live: int, fraction: float) -> int:
    """round((1 - fraction) * live), halves away from zero; NativeArgumentError unless 0 <= fraction <= 1."""

def magnitude_masks(
    scores: list[npt.NDArray[np.float32]],
    current: list[BoolArray],
    fraction: float,
    per_layer: bool = False,
) -> tuple[list[BoolArray], list[float | None]]:
    """Prune `fraction` of the live weights with the smallest scores (selection, not a sort).

    Ties: earlier layer, then earlier row-major position, survives. Returns the new
    masks and, per layer, the smallest kept score of its ranking (None if none kept).
    MaskError when scores and masks differ in count or length; NativeArgumentError on NaN
    scores or a fraction outside [0, 1].
    """

def random_masks(current: list[BoolArray], fraction: float, seed: int, per_layer: bool = False) -> list[BoolArray]:
    """Seeded random control: keep round((1 - fraction) * live) live weights, globally or per layer."""

def random_masks_with_counts(current: list[BoolArray], counts: list[int], seed: int) -> list[BoolArray]:
    """Seeded random control keeping exactly counts[l] live weights of layer l."""

def mask_counts(masks: list[BoolArray]) -> list[int]:
    """Live (True) count of each mask."""

def mask_overlap(a: BoolArray, b: BoolArray) -> tuple[int, int, float]:
    """(intersection, union, jaccard) of two masks of equal length (else MaskError);
    jaccard is 1.0 if both are empty."""

def dead_neurons(
    inputs: list[tuple[str, int]],
    layers: list[tuple[str, int, list[tuple[str, int]], bool]],
    masks: list[BoolArray],
) -> dict[str, object]:
    """Dead-neuron fixed point of a layer graph.

    `inputs`: (name, width) of each network input; `layers`: (name, out, [(source, width)],
    is_output) in topological order; `masks`: one [out * in] mask per layer.
    Returns {"kept", "dead_in", "dead_out", "effective": list[BoolArray] per layer,
    "inputs_read": list[BoolArray] per input, "sweeps": int}.
    NativeArgumentError on a malformed graph; MaskError when masks do not fit its layers.
    """

def mask_to_csr(
    weights: npt.NDArray[np.float32], rows: int, cols: int, mask: BoolArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(indptr [rows + 1], indices [nnz], values [nnz]) of the live entries of a row-major
    [rows, cols] matrix; MaskError unless the mask has rows * cols bits."""

# --- fused positional encoding + first layer (rust/py/src/fused.rs) ---

def encode_first_layer(
    origins: npt.NDArray[np.float32],
    dirs: npt.NDArray[np.float32],
    t: npt.NDArray[np.float32],
    ray_index: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float32],
    columns: npt.NDArray[np.int64],
    n_frequencies: int,
    out: npt.NDArray[np.float32],
    *,
    relu: bool = True,
    threads: int = 0,
) -> None:
    """out[i, :W] = act(weight[:, :F'] gamma(origins[r] + t[i] dirs[r])[columns] + weight[:, F']),
    r = ray_index[i], written in place, the encoding of `n_frequencies` octaves never stored.
    origins, dirs [B, 3]; t, ray_index [N]; weight [W, F' + 1] (bias last); columns [F'];
    out [N, >= W] (its other columns untouched); ReLU when `relu`; `threads` 0: one per core.
    NativeArgumentError on a shape, a ray index or a column out of range."""

def run_network(
    origins: npt.NDArray[np.float32],
    dirs: npt.NDArray[np.float32],
    t: npt.NDArray[np.float32],
    ray_index: npt.NDArray[np.int64],
    n_frequencies: int,
    layers: list[tuple[
        npt.NDArray[np.float32],  # weight [out, k]
        npt.NDArray[np.int64],  # inputs [k]: the table rows it reads, in the order of the weight's columns
        npt.NDArray[np.float32],  # bias [out]
        npt.NDArray[np.float32] | None,  # per-ray term [B, out] replacing the bias, or None
        str,  # activation: "relu", "none" or "sigmoid"
        int,  # first table row it writes
        int | None,  # the output it also writes (a head), or None
    ]],
    outputs: list[npt.NDArray[np.float32]],
    *,
    threads: int = 0,
) -> None:
    """A whole network at every sample point origins[r] + t[i] dirs[r], r = ray_index[i], per block of
    samples: table rows [0, 3 (1 + 2 n_frequencies)) hold the positional encoding, each layer
    y = act(W table[inputs] + (bias or term[r])) writes its rows, a head also outputs[k] [N, out] (in place).
    NativeArgumentError on a shape, a ray index or a row out of range, a row read before it is written,
    layers writing over the encoding or each other, an output written twice or never."""
