"""The Rust extension: a real function, error mapping, and panics that do not abort Python."""

import zlib

import numpy as np
import pytest

from nerfprune import _native
from nerfprune.errors import NativePanic, SceneError


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


def test_non_contiguous_input_is_a_clear_value_error():
    data = np.arange(20, dtype=np.uint8)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        _native.fingerprint(data)


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError):
        _native.fingerprint(np.zeros(4, np.float32))


def test_a_rust_panic_becomes_a_python_exception():
    with pytest.raises(NativePanic, match="deliberate test panic"):
        _native._panic_for_tests()
    # The interpreter is still alive and the module still works.
    assert _native.fnv1a64(np.frombuffer(b"a", np.uint8)) == 0xAF63DC4C8601EC8C


def test_scene_error_is_a_value_error():
    assert issubclass(SceneError, ValueError)
    assert issubclass(NativePanic, RuntimeError)
