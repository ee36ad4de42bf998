"""Reading `.npy` files and `.npz` archives whose headers are not trusted.

`np.load` allocates what a header declares before reading the data, so a 2 kB file declaring a
100 TiB array ends in `MemoryError` (or the OOM killer), and a zero-byte file, an `.npz` where an
`.npy` is expected or a damaged zip member give `EOFError` / `AttributeError` / `zlib.error`
naming no file. Here the header is parsed first (`numpy.lib.format`), and the declared
`prod(shape) * itemsize` is compared with what the file can hold — the bytes after the header
for `.npy`; for an `.npz` member its uncompressed size, and at most `MAX_DEFLATE_RATIO` times its
compressed size (deflate cannot expand more) — before anything is allocated. Object arrays
(pickles) are refused.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from typing import BinaryIO

import numpy as np
import numpy.lib.format as npformat

from nerfprune.errors import SceneError
from nerfprune.scene.files import open_regular, show

MAX_ARRAY_BYTES = 1 << 34  # 16 GiB: the largest single array accepted (mic at full size as float32 is 4 GB)
MAX_DEFLATE_RATIO = 1032  # deflate's largest possible expansion (RFC 1951: 258 bytes from ~2 bits)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _header(fp: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header at the start of `fp`; fp is left at the first data byte."""
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = npformat.read_array_header_2_0(fp)
        else:
            shape, _, dtype = npformat._read_array_header(fp, version)  # 3.0: utf-8 field names
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, SyntaxError) as e:
        raise SceneError(f"{name}: corrupt .npy header: {e}") from None
    if dtype.hasobject:
        raise SceneError(f"{name}: the array stores Python objects (it would need pickle to load); refused")
    return tuple(int(s) for s in shape), dtype


def _check_size(shape: tuple[int, ...], dtype: np.dtype, holds: int, name: str) -> None:
    declared = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if declared > holds:
        raise SceneError(
            f"{name}: the header declares a {dtype} array of shape {shape} ({declared} bytes), "
            f"but the file holds at most {holds} bytes of data (truncated or forged header)"
        )
    if declared > MAX_ARRAY_BYTES:
        raise SceneError(f"{name}: array of shape {shape} is {declared} bytes, more than the {MAX_ARRAY_BYTES} accepted")


def _read(fp: BinaryIO, name: str) -> np.ndarray:
    try:
        return npformat.read_array(fp, allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        raise SceneError(f"{name}: cannot read the array data: {e}") from None


def _sniff(f: BinaryIO, name: str, kind: str) -> tuple[int, bytes]:
    """(file size, first bytes) of the open file `f`, rewound; a zero-byte file is an error."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise SceneError(f"{name}: empty file (0 bytes), not a {kind}")
    head = f.read(len(_NPY_MAGIC))
    f.seek(0)
    return size, head


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """The array in the `.npy` file `path`, its header checked against the file size first."""
    name = show(path)
    with open_regular(path) as f:
        size, head = _sniff(f, name, ".npy array")
        if head.startswith(_ZIP_MAGIC):
            raise SceneError(f"{name}: is an .npz (zip) archive, not a single .npy array")
        if head != _NPY_MAGIC:
            raise SceneError(f"{name}: not a .npy file (it does not start with the .npy magic bytes)")
        shape, dtype = _header(f, name)
        _check_size(shape, dtype, size - f.tell(), name)
        f.seek(0)
        return _read(f, name)


def load_npz(path: str | os.PathLike, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `keys` of the `.npz` archive `path` (each must be present), headers checked first."""
    name = show(path)
    with open_regular(path) as f:
        size, head = _sniff(f, name, ".npz archive")
        if head == _NPY_MAGIC:
            raise SceneError(f"{name}: is a single .npy array, not an .npz archive")
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise SceneError(f"{name}: cannot read as a .npz archive: {e}") from None
        with archive:
            members = {n[:-4] if n.endswith(".npy") else n: n for n in archive.namelist()}
            out = {}
            for key in keys:
                if key not in members:
                    raise SceneError(f"{name}: missing array '{key}' (have: {', '.join(sorted(members)) or 'none'})")
                out[key] = _member(archive, members[key], size, f"{name}: array '{key}'")
    return out


def _member(archive: zipfile.ZipFile, member: str, archive_size: int, name: str) -> np.ndarray:
    info = archive.getinfo(member)
    if info.compress_size > archive_size:
        raise SceneError(f"{name}: the zip directory claims {info.compress_size} compressed bytes, more than the archive holds")
    ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: MAX_DEFLATE_RATIO}.get(info.compress_type)
    holds = info.file_size if ratio is None else min(info.file_size, info.compress_size * ratio)
    try:
        with archive.open(info) as fp:
            shape, dtype = _header(fp, name)
            _check_size(shape, dtype, holds - fp.tell(), name)
        with archive.open(info) as fp:
            return _read(fp, name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise SceneError(f"{name}: cannot read the archive member: {e}") from None
