"""Rust image decoding against Pillow, downscaling against a numpy reference, and fuzzing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nerfprune import _native
from nerfprune.errors import NativePanic, SceneDecodeError, SceneError


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


RNG = np.random.default_rng(0)
RGBA = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1"])
def test_png_modes_match_pillow(mode: str) -> None:
    source = RGBA if mode in ("LA", "RGBA") else RGBA[..., :3]
    img = Image.fromarray(source).convert(mode)
    got = _native.decode_image_bytes(png_bytes(img), "x.png")
    want = np.asarray(img.convert({"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "P": "RGB", "1": "L"}[mode]))
    want = want.reshape(got.shape)  # gray comes back as [H, W, 1]
    np.testing.assert_array_equal(got, want)


def test_palette_transparency_becomes_alpha() -> None:
    img = Image.fromarray(RGBA[..., :3], "RGB").convert("P")
    data = png_bytes(img, transparency=0)
    got = _native.decode_image_bytes(data, "p.png")
    np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")))


def test_16_bit_gray_rounds_to_8_bit() -> None:
    values = np.array([[0, 257, 65535, 32896]], np.uint16)
    got = _native.decode_image_bytes(png_bytes(Image.fromarray(values)), "g16.png")
    np.testing.assert_array_equal(got[..., 0], [[0, 1, 255, 128]])


@pytest.mark.parametrize("kind", ["baseline", "progressive", "gray"])
def test_jpeg_close_to_pillow(kind: str) -> None:
    arr = np.repeat(np.repeat(RGBA[..., :3], 8, 0), 8, 1)  # smooth-ish 40x56
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if kind == "gray" else arr).save(buf, format="JPEG", progressive=kind == "progressive")
    data = buf.getvalue()
    got = _native.decode_image_bytes(data, "a.jpg").astype(int)
    want = np.asarray(Image.open(io.BytesIO(data))).astype(int)
    want = want.reshape(got.shape)  # gray comes back as [H, W, 1]
    assert got.shape[2] == (1 if kind == "gray" else 3)
    assert np.abs(got - want).max() <= 4  # IDCT/upsampling rounding differs between decoders


def test_decode_images_stacks_without_copy_and_adds_alpha(tmp_path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    a.write_bytes(png_bytes(Image.fromarray(RGBA, "RGBA")))
    b.write_bytes(jpeg_bytes(RGBA[..., :3]))
    out = _native.decode_images([str(a), str(b)])
    assert out.shape == (2, 5, 7, 4) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert not out.flags.owndata  # the Rust buffer itself, wrapped, not copied
    np.testing.assert_array_equal(out[0], RGBA)
    assert (out[1, ..., 3] == 255).all()
    assert _native.probe_image(str(a)) == (7, 5, True)


def area_reference(img: np.ndarray, f: int) -> np.ndarray:
    """Block mean (alpha-weighted for RGBA), rounded half up."""
    h, w, c = img.shape[0] // f * f, img.shape[1] // f * f, img.shape[2]
    blocks = img[:h, :w].astype(np.float64).reshape(h // f, f, w // f, f, c)
    if c == 4:
        a = blocks[..., 3:4]
        asum = a.sum((1, 3))
        rgb = np.where(asum > 0, (blocks[..., :3] * a).sum((1, 3)) / np.maximum(asum, 1e-9), 0)
        return np.floor(np.concatenate([rgb, asum / f / f], -1) + 0.5).astype(np.uint8)
    return np.floor(blocks.mean((1, 3)) + 0.5).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(f=st.integers(1, 4), h=st.integers(4, 13), w=st.integers(4, 13), c=st.sampled_from([3, 4]), seed=st.integers(0, 999))
def test_area_downscale_matches_reference(f: int, h: int, w: int, c: int, seed: int) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (1, h, w, c), dtype=np.uint8)
    got = _native.downscale_images(img, f)[0].astype(int)
    assert np.abs(got - area_reference(img[0], f)).max() <= 1  # float vs integer rounding of exact halves


def test_decode_images_downscales(tmp_path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes(Image.fromarray(RGBA, "RGBA")))
    np.testing.assert_array_equal(_native.decode_images([str(p)], 2)[0], _native.downscale_images(RGBA[None], 2)[0])


VALID = [png_bytes(Image.fromarray(RGBA, "RGBA")), jpeg_bytes(np.repeat(RGBA[..., :3], 4, 0))]


def _decode_or_scene_error(data: bytes) -> None:
    try:
        out = _native.decode_image_bytes(data, "fuzz.bin")
    except SceneDecodeError as e:  # in-memory bytes: never a read error, never another class
        assert str(e).startswith("fuzz.bin: ")
    else:
        assert out.ndim == 3 and out.shape[2] in (1, 2, 3, 4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]))
def test_fuzz_random_bytes_raise_scene_error(data: bytes, head: bytes) -> None:
    _decode_or_scene_error(head + data)


@settings(max_examples=150, deadline=None)
@given(which=st.integers(0, 1), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=6), cut=st.integers(0, 10**6))
def test_fuzz_mutated_images_raise_scene_error(which: int, flips, cut: int) -> None:
    data = bytearray(VALID[which])
    for at, x in flips:
        data[at % len(data)] ^= x
    _decode_or_scene_error(bytes(data[: cut % (len(data) + 1)]))


def test_rust_panic_becomes_python_exception() -> None:
    with pytest.raises(NativePanic, match="deliberate test panic"):
        _native._panic_for_tests()


# --- data that ends early, even when an end marker follows (Pillow makes the JPEGs; the cut is ours) ---

SMOOTH = np.repeat(np.repeat(RGBA[..., :3], 8, 0), 8, 1)  # [40, 56, 3]


def jpeg_of(arr: np.ndarray, progressive: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("frac", [0.05, 0.3, 0.5, 0.8, 0.97])
def test_jpeg_cut_with_end_marker_reappended_is_an_error(progressive: bool, frac: float) -> None:
    data = jpeg_of(SMOOTH, progressive)
    sos = data.find(b"\xff\xda")
    cut = data[: sos + int((len(data) - sos) * frac)].rstrip(b"\xff") + b"\xff\xd9"
    # Cut inside a scan: the scan guard reports it; cut inside a segment between scans: the marker walk does.
    with pytest.raises(SceneError, match=r"^cut\.jpg: truncated (or corrupt )?JPEG"):
        _native.decode_image_bytes(cut, "cut.jpg")


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("field, grow", [("height", 16), ("height", 400), ("width", 16)])
def test_jpeg_frame_header_enlarged_is_an_error(progressive: bool, field: str, grow: int) -> None:
    """Enlarged past the last block row/column the data holds (growing within the last 16x16 block
    of a 4:2:0 baseline JPEG only uncovers the encoder's own padding pixels, and is not detectable)."""
    data = bytearray(jpeg_of(SMOOTH, progressive))
    at = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) + (5 if field == "height" else 7)
    value = int.from_bytes(data[at : at + 2], "big") + grow
    data[at : at + 2] = value.to_bytes(2, "big")
    with pytest.raises(SceneError, match=r"^big\.jpg: truncated or corrupt JPEG"):
        _native.decode_image_bytes(bytes(data), "big.jpg")


@pytest.mark.parametrize("progressive", [False, True])
def test_complete_jpeg_is_unchanged_by_the_scan_guard(progressive: bool) -> None:
    data = jpeg_of(SMOOTH, progressive)
    got = _native.decode_image_bytes(data, "ok.jpg").astype(int)
    assert np.abs(got - np.asarray(Image.open(io.BytesIO(data))).astype(int)).max() <= 4


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, p = [], 8
    while p < len(data):
        n = int.from_bytes(data[p : p + 4], "big")
        out.append((data[p + 4 : p + 8], data[p + 8 : p + 8 + n]))
        p += 12 + n
    return out


def png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    import zlib

    body = b"".join(len(d).to_bytes(4, "big") + k + d + zlib.crc32(k + d).to_bytes(4, "big") for k, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def test_png_ending_early_is_an_error_even_with_a_valid_end_chunk() -> None:
    parts = png_chunks(png_bytes(Image.fromarray(RGBA, "RGBA")))
    idat = b"".join(d for k, d in parts if k == b"IDAT")
    half = png_from([parts[0], (b"IDAT", idat[: len(idat) // 2]), (b"IEND", b"")])  # CRCs valid, data short
    with pytest.raises(SceneError, match=r"^half\.png: corrupt PNG"):
        _native.decode_image_bytes(half, "half.png")
    ihdr = parts[0][1]
    taller = png_from([(b"IHDR", ihdr[:4] + (2 * 5).to_bytes(4, "big") + ihdr[8:]), (b"IDAT", idat), (b"IEND", b"")])
    with pytest.raises(SceneError, match=r"^tall\.png: corrupt PNG"):
        _native.decode_image_bytes(taller, "tall.png")


def test_only_regular_files_reach_the_decoder(tmp_path) -> None:
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for call in (_native.probe_image, lambda p: _native.decode_images([p])):
        with pytest.raises(SceneError, match=r"pipe\.png: is a FIFO \(named pipe\); only regular files are read"):
            call(str(fifo))  # must return at once, not wait for a writer
    with pytest.raises(SceneError, match="is a folder; only regular files are read"):
        _native.probe_image(str(tmp_path))
    with pytest.raises(SceneError, match="/dev/zero: is a character device"):
        _native.decode_images(["/dev/zero"])
