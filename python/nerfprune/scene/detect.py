"""Which dataset format a path holds, decided from file names alone (rules in `formats.FORMATS`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nerfprune.errors import SceneError
from nerfprune.scene.files import show, stat_path
from nerfprune.scene.formats import FORMATS, DatasetFormat, tried


def detect_format(path: str | os.PathLike) -> tuple[str, Path]:
    """(format name, path its reader takes) for a dataset folder or a file inside one."""
    fmt, where = detect(path)
    return fmt.name, where


def detect(path: str | os.PathLike) -> tuple[DatasetFormat, Path]:
    """(format, path its reader takes) for a dataset folder or a file inside one.

    The formats are tried in the order of `FORMATS`; the first whose rule matches wins.
    Raises `SceneError` naming the path when nothing is there or no format matches.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise SceneError(f"scene path must be a string or path, got {type(path).__name__}")
    st = stat_path(path)
    p = Path(path)
    if st is None:
        raise SceneError(f"{show(p)}: no such file or folder")
    folder = stat.S_ISDIR(st.st_mode)
    for fmt in FORMATS:
        where = fmt.detect(p, folder)
        if where is not None:
            return fmt, where
    raise SceneError(f"{show(p)}: unknown scene format; tried {tried()}")
