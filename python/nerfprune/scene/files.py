"""Opening scene files without trusting their names: every path a dataset names is checked here.

Why: a dataset is data from someone else. A FIFO where an image should be would block the
loader forever, a `file_path` of `../../etc/passwd` or `/dev/zero` would read anything on the
machine, and a NUL byte, an over-long name or a symlink loop would surface as a raw
`ValueError` / `OSError` / `RuntimeError` naming no file. Here each of them becomes one
`SceneError` naming the path, before anything is opened or allocated:

- only regular files are opened (`stat` first, then `open(O_NONBLOCK)` + `fstat`, so a FIFO
  swapped in between cannot block either);
- `inside_scene` refuses paths that resolve (symlinks included) outside the scene folder,
  unless the caller allows it (`load_scene(..., allow_outside_paths=True)`);
- reads are bounded (`read_bytes(path, limit)`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from nerfprune.errors import SceneError

MAX_NAME_IN_MESSAGE = 300  # longer paths are shortened in messages (an over-long name is itself the problem)

_REASONS = {
    errno.ENOENT: "No such file or directory",
    errno.ELOOP: "symlink loop (too many levels of symbolic links)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EACCES: "permission denied",
    errno.ENOTDIR: "a component of the path is not a folder",
}


def show(path: str | os.PathLike) -> str:
    """`path` as it appears in messages: NUL bytes made visible, over-long names shortened."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.replace("\x00", "\\x00")
    if len(text) > MAX_NAME_IN_MESSAGE:
        text = f"{text[:200]}…({len(text)} characters)…{text[-80:]}"
    return text


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _reason(e: OSError) -> str:
    return _REASONS.get(e.errno, e.strerror or str(e))


def _check_name(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\x00" in text:
        raise SceneError(f"{show(text)}: the file name contains a NUL byte")
    return text


def stat_path(path: str | os.PathLike) -> os.stat_result | None:
    """`os.stat(path)` (symlinks followed), None when nothing is there; other failures
    (symlink loop, name too long, permission) are a `SceneError` naming the path."""
    text = _check_name(path)
    try:
        return os.stat(text)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SceneError(f"{show(text)}: cannot read file: {_reason(e)}") from None


def is_folder(path: str | os.PathLike) -> bool:
    st = stat_path(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def exists(path: str | os.PathLike) -> bool:
    """True when anything (file, folder, FIFO, broken or looping symlink) is at `path`.

    Used for format detection: a FIFO named `transforms.json` is detected as instant-ngp and
    then refused by `open_regular` with a message saying it is a FIFO, not silently skipped.
    """
    return os.path.lexists(_check_name(path))  # lexists itself reports OS errors as False


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """Stat `path` and require a regular file; the error names the path and what it is instead."""
    text = _check_name(path)
    try:
        st = os.stat(text)
    except OSError as e:
        raise SceneError(f"{show(text)}: cannot read file: {_reason(e)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SceneError(f"{show(text)}: is {_kind(st.st_mode)}; only regular files are read")
    return st


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for binary reading, never blocking (see the module docstring)."""
    text = _check_name(path)
    check_regular(text)
    try:
        fd = os.open(text, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SceneError(f"{show(text)}: cannot read file: {_reason(e)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # swapped between stat and open
        os.close(fd)
        raise SceneError(f"{show(text)}: is {_kind(mode)}; only regular files are read")
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The whole content of a regular file of at most `limit` bytes."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise SceneError(f"{show(path)}: {what} is {size} bytes, more than the {limit} bytes accepted")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise SceneError(f"{show(path)}: cannot read file: {_reason(e)}") from None
    if len(data) > limit:
        raise SceneError(f"{show(path)}: {what} grew past the {limit} bytes accepted while being read")
    return data


def inside_scene(root: Path, path: str, where: str, allow_outside: bool) -> str:
    """`path` with symlinks resolved, refused when that leaves the scene folder `root`.

    where: the frame / file that named `path`, for the message. With `allow_outside` any
    location is accepted (the file must still be a regular file when it is opened).
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(_check_name(path))
    if allow_outside or os.path.commonpath([real_root, real]) == real_root:
        return real
    raise SceneError(
        f"{where}: {show(path)} resolves to {show(real)}, outside the scene folder {show(real_root)}; "
        "images must lie inside it (load_scene(..., allow_outside_paths=True) accepts other locations)"
    )
