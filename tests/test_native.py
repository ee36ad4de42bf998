"""The Rust extension: a real function, one exception class per core error, and panics that do not abort Python."""

import ast
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from nerfprune import _native
import nerfprune.errors as errors
from nerfprune.errors import (
    MaskError,
    NativeArgumentError,
    NativePanic,
    NerfpruneError,
    SceneDecodeError,
    SceneError,
    SceneReadError,
    TrainingDiverged,
)


def test_fnv1a64_matches_the_specification_vectors():
    assert _native.fnv1a64(np.frombuffer(b"", np.uint8)) == 0xCBF29CE484222325
    assert _native.fnv1a64(np.frombuffer(b"foobar", np.uint8)) == 0x85944171F73967E8


def _fnv1a64_python(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_fingerprint_equals_a_python_model_of_the_chunked_hash():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(1 << 20) + 17, dtype=np.uint8)  # two chunks
    chunk = 1 << 20
    parts = [_fnv1a64_python(data[i:i + chunk].tobytes()) for i in range(0, len(data), chunk)]
    combined = b"".join(p.to_bytes(8, "little") for p in parts) + len(data).to_bytes(8, "little")
    assert _native.fingerprint(data) == _fnv1a64_python(combined)
    flipped = data.copy()
    flipped[-1] ^= 1
    assert _native.fingerprint(flipped) != _native.fingerprint(data)
    assert zlib.crc32(data.tobytes())  # the buffer is real data, not empty


def test_non_contiguous_input_is_a_native_argument_error_naming_the_function():
    data = np.arange(20, dtype=np.uint8)[::2]
    with pytest.raises(NativeArgumentError, match="fingerprint: the array must be C-contiguous"):
        _native.fingerprint(data)


def test_a_fortran_ordered_array_is_refused_not_misread():
    """numpy calls a Fortran-ordered array contiguous too; read as row-major its elements would be misplaced."""
    images = np.asfortranarray(np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))
    with pytest.raises(NativeArgumentError, match="downscale_images: images: the array must be C-contiguous"):
        _native.downscale_images(images, 2)
    assert _native.downscale_images(np.ascontiguousarray(images), 2).shape == (2, 2, 2, 3)


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError):
        _native.fingerprint(np.zeros(4, np.float32))


def test_a_rust_panic_becomes_a_python_exception():
    with pytest.raises(NativePanic, match="deliberate test panic"):
        _native._panic_for_tests()
    # The interpreter is still alive and the module still works.
    assert _native.fnv1a64(np.frombuffer(b"a", np.uint8)) == 0xAF63DC4C8601EC8C


# --- each core error variant raises its own class ---------------------------------------------


def _corrupt_png(tmp_path: Path) -> str:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return str(path)


_ONES3, _ONES4 = np.ones(3, bool), np.ones(4, bool)

CASES = {
    # CoreError::Io
    "missing image file": (SceneReadError, r"missing\.png: cannot read file",
                           lambda t: _native.decode_images([str(t / "missing.png")])),
    "missing file probed": (SceneReadError, r"gone\.jpg: cannot read file",
                            lambda t: _native.probe_image(str(t / "gone.jpg"))),
    # CoreError::Decode
    "corrupt PNG file": (SceneDecodeError, r"broken\.png: ", lambda t: _native.decode_images([_corrupt_png(t)])),
    "corrupt bytes": (SceneDecodeError, r"^mem\.png: ", lambda t: _native.decode_image_bytes(b"\xff\xd8\xff\x00", "mem.png")),
    # CoreError::MaskMismatch
    "masks of different lengths": (MaskError, r"mask mismatch: masks of different lengths \(3 and 4 bits\)",
                                   lambda t: _native.mask_overlap(_ONES3, _ONES4)),
    "scores and masks disagree": (MaskError, r"layer 0: 4 scores but a 3-bit mask",
                                  lambda t: _native.magnitude_masks([np.ones(4, np.float32)], [_ONES3], 0.5)),
    "short CSR mask": (MaskError, r"needs 6 mask bits, got 4",
                       lambda t: _native.mask_to_csr(np.ones(6, np.float32), 2, 3, _ONES4)),
    # CoreError::InvalidArgument
    "fraction outside [0, 1]": (NativeArgumentError, r"invalid argument: pruning fraction must lie in \[0, 1\], got 1.5",
                                lambda t: _native.mask_keep_count(10, 1.5)),
    "empty file list": (NativeArgumentError, r"no image files given", lambda t: _native.decode_images([])),
    "NaN score": (NativeArgumentError, r"score at flat index 1 is NaN",
                  lambda t: _native.magnitude_masks([np.array([1, np.nan, 0], np.float32)], [_ONES3], 0.5)),
    # binding-level argument checks
    "non-contiguous mask": (NativeArgumentError, r"mask_counts: the array must be C-contiguous",
                            lambda t: _native.mask_counts([np.ones(8, bool)[::2]])),
    # a Rust panic
    "panic": (NativePanic, r"internal error in nerfprune\._native: deliberate test panic",
              lambda t: _native._panic_for_tests()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_kind_raises_its_own_class(case, tmp_path):
    expected, message, call = CASES[case]
    with pytest.raises(expected, match=message) as info:
        call(tmp_path)
    assert type(info.value) is expected, f"{case}: got {type(info.value).__name__}, not exactly {expected.__name__}"


def test_the_exception_tree():
    parents = {
        NerfpruneError: ValueError,
        SceneError: NerfpruneError,
        SceneReadError: SceneError,
        SceneDecodeError: SceneError,
        MaskError: NerfpruneError,
        NativeArgumentError: NerfpruneError,
        errors.ConfigError: NerfpruneError,
        errors.CheckpointError: NerfpruneError,
        TrainingDiverged: NerfpruneError,
        NativePanic: RuntimeError,
    }
    for cls, parent in parents.items():
        assert cls.__bases__ == (parent,), cls
        assert cls.__doc__, f"{cls.__name__} has no docstring"
    assert not issubclass(NativePanic, NerfpruneError), "a bug in nerfprune is not a bad input"
    assert set(errors.__all__) == {c.__name__ for c in parents}
    # The extension's classes are re-exported, not copied: one class for Rust and Python raisers.
    for name in ("NerfpruneError", "SceneError", "SceneReadError", "SceneDecodeError", "MaskError",
                 "NativeArgumentError", "NativePanic"):
        assert getattr(errors, name) is getattr(_native, name)
        assert getattr(_native, name).__module__ == "nerfprune._native"


def test_training_diverged_keeps_its_iteration():
    e = TrainingDiverged("loss is NaN at iteration 41; lower --lr", iteration=41)
    assert e.iteration == 41 and str(e) == "loss is NaN at iteration 41; lower --lr"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is TrainingDiverged and back.iteration == 41 and str(back) == str(e)


def test_errors_module_imports_only_the_extension():
    """`nerfprune.errors` must stay importable without torch (the CLI catches these cheaply)."""
    tree = ast.parse(Path(errors.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"__future__", "nerfprune._native"}
