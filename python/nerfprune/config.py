"""Dataclass configs <-> JSON, and the atomic file writes every output uses.

Every run writes the config it used beside its outputs (`config.json`), so any
figure can be traced to the exact settings that produced it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import io
import json
import math
import os
import tempfile
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from nerfprune.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (nested allowed) -> plain JSON-able dict."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


INT_LIMIT = 2**63 - 1  # no integer setting may exceed int64 (torch, numpy and Rust take them as 64-bit)


def _describe(value: Any) -> str:
    """`str 'abc'`, `float nan`, `list [1, 2]`, `null`: a value for an error message, at most ~60 characters."""
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _type_name(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return f"an object ({hint.__name__})"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_value(hint: Any, value: Any, where: str, *, convert: bool = False) -> Any:
    """`value` checked against the type annotation `hint`; raises `ConfigError` naming `where`.

    Exact kinds, because JSON and Python blur them: a bool is not an int (`True` is not 1 pixel),
    an int is not a bool, an integral float (`32.0`, `1e7`) is not an int, a float must be finite.
    An int is accepted for a float. `X | None` accepts null. `tuple[X, ...]` and `list[X]` accept
    a list or a tuple. A dataclass hint needs an instance, or with `convert` a JSON object that
    `from_dict` turns into one. With `convert` the value is returned in the annotated type (list
    -> tuple, int -> float); without, it is returned unchanged.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: the message names X (null is the documented default)
            return check_value(options[0], value, where, convert=convert)
        for option in options:
            try:
                return check_value(option, value, where, convert=convert)
            except ConfigError:
                pass
        names = ["null" if a is type(None) else _type_name(a) for a in args]
        raise ConfigError(f"{where}: expected {' or '.join(names)}, got {_describe(value)}")
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if convert and isinstance(value, dict):
            return from_dict(hint, value, where)
        raise ConfigError(f"{where}: expected {_type_name(hint)}, got {_describe(value)}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected bool (true/false), got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {_describe(value)}")
        if abs(value) > INT_LIMIT:
            raise ConfigError(f"{where}: integer out of range ({len(str(abs(value)))} digits; at most {INT_LIMIT})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {_describe(value)}")
        if isinstance(value, int) and abs(value) > INT_LIMIT or not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite float, got {_describe(value)}")
        return float(value) if convert else value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {_describe(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and len(args) != len(value):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {len(value)}")
        kinds = [args[0]] * len(value) if origin is list or args[1:] == (Ellipsis,) else list(args)
        items = [check_value(k, v, f"{where}[{i}]", convert=convert) for i, (k, v) in enumerate(zip(kinds, value))]
        return origin(items) if convert else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {_describe(value)}")
        return value
    return value  # an annotation this checker does not know: left to the config's validate()


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data` (parsed JSON), checking every field against its annotation.

    Unknown keys raise `ConfigError` naming them (a typo must not be silently ignored);
    a value of the wrong kind raises one naming its path, e.g. `config.model.width: expected
    int, got str 'abc'`. Ranges are the config's `validate()`'s job.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object ({cls.__name__}), got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    missing = sorted(name for name, f in fields.items() if name not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    kwargs = {key: check_value(hints[key], value, f"{where}.{key}", convert=True) for key, value in data.items()}
    return cls(**kwargs)


def check_fields(cfg: Any) -> None:
    """Every field of dataclass instance `cfg` has the kind its annotation says (see `check_value`).

    Configs built in Python (the API) get the same type checks as configs read from JSON;
    each config's `validate()` calls this first. Nested configs are only checked to be
    instances here: their own `validate()` checks their fields.
    """
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        check_value(hints[f.name], getattr(cfg, f.name), f.name)


@contextlib.contextmanager
def nested(prefix: str, error: type[Exception] = ConfigError) -> Iterator[None]:
    """Prefix the field path of a `ConfigError` raised inside: `n_coarse must ...` -> `render.n_coarse must ...`.

    `error` re-raises it as another class (a checkpoint's config is a `CheckpointError`).
    """
    try:
        yield
    except ConfigError as e:
        raise error(f"{prefix}.{e}") from None


def check_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    """`ConfigError` unless low <= value <= high (`low_open`/`high_open`: strict); messages name `name`."""
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")


def _bound(x: float) -> str:
    if isinstance(x, int) and x >= 2**16 and x & (x - 1) == 0:
        return f"2^{x.bit_length() - 1}"
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_choice(name: str, value: str, table: dict, what: str) -> None:
    """`ConfigError` unless `value` is a key of registry `table`; the message lists the choices."""
    if value not in table:
        raise ConfigError(f"{name}: unknown {what} {value!r}: choose one of {', '.join(table)}")


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


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    Linux reports it in /proc/self/status ("Umask:"). Elsewhere the only way is to set it
    and set it back (`os.umask(0); os.umask(old)`), which for that instant gives files other
    threads create mode 0666/0777: a race accepted here, since nerfprune creates no files
    from other threads while it writes one.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0)
    os.umask(old)
    return old


@contextlib.contextmanager
def output_errors(path: str | Path, what: str = "cannot write") -> Iterator[None]:
    """Turn an `OSError` while writing `path` into a `ConfigError` naming it (a read-only or full
    output folder, a file where a folder should be): the CLI then prints one line, exit 2."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        where = e.filename if e.filename and str(e.filename) != str(path) else None
        raise ConfigError(f"{path}: {what}: {reason}" + (f" ({where})" if where else "")) from None


def make_dir(path: str | Path, label: str = "output folder") -> Path:
    """Create folder `path` (and its parents); a file in the way or a read-only parent is a
    `ConfigError` naming `label` and the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{label} {path}: is not a folder (a file of that name exists)")
    with output_errors(path, f"{label} cannot be created"):
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_out_dir(path: str | Path, label: str = "output folder") -> Path:
    """Refuse, before any work, an output folder that cannot be written, creating nothing.

    `path` must be a folder or not exist yet; its nearest existing ancestor must be a
    writable folder (probed by creating and removing a temporary file, which also
    works for root, for whom permission bits say nothing). `ConfigError` names `label`.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:  # the nearest existing ancestor
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file, not a folder" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(f"{label} {path}: {where}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise ConfigError(f"{label} {path}: cannot write into {probe} ({e.strerror or e})") from None
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never half of it.

    The file gets the mode `open()` would give a new file (0666 minus the umask), not the
    0600 of the temporary file it is renamed from: outputs on a shared machine stay readable.
    OS errors (read-only folder, disk full, a file where a folder should be) raise `ConfigError`.
    """
    path = Path(path)
    make_dir(path.parent)
    with output_errors(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~current_umask())
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
