"""Dataclass configs <-> JSON, and the atomic file writes every output uses.

Every run writes the config it used beside its outputs (`config.json`), so any
figure can be traced to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import json
import os
import tempfile
import tokenize
import typing
from pathlib import Path
from typing import Any, TypeVar

from nerfprune.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (nested allowed) -> plain JSON-able dict."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass fields.

    Unknown keys raise `ConfigError` naming them (a typo must not be silently ignored).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """The comment after each field of dataclass `cls`: {field name: comment}.

    The comments in the config dataclasses are the one description of each
    setting; the CLI uses them as its --help text, so they cannot drift apart.
    Fields without a comment are missing from the result.
    """
    source = inspect.getsource(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    found: dict[str, str] = {}
    current: str | None = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and current is None:
            current = tok.string  # a field declaration starts at the class body's indent
        elif tok.type == tokenize.COMMENT and current is not None:
            found.setdefault(current, tok.string.lstrip("# ").strip())
        elif tok.type == tokenize.NEWLINE:
            current = None
    return found


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_config(cfg: Any, out_dir: str | Path, name: str = "config.json") -> Path:
    """Write `cfg` as JSON into `out_dir` (atomically) and return the path."""
    path = Path(out_dir) / name
    atomic_write_json(path, to_dict(cfg))
    return path
