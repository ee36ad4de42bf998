"""Typed access to scene JSON: every wrong type or value becomes one `SceneError`
naming the file, the frame and the key ("…/transforms.json: frame 4: 'fl_x' must be a number, got str")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nerfprune.errors import SceneError
from nerfprune.scene.files import read_bytes, show
from nerfprune.scene.validate import check_bottom_rows

MISSING: Any = object()  # sentinel: the key is required
MAX_JSON_BYTES = 256 << 20  # 256 MiB: a transforms file of ~500k frames; fox's is 42 kB


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def load_json(path: Path) -> dict:
    """Parse `path` as a JSON object (NaN/Infinity tokens are accepted here and rejected per field)."""
    data = read_bytes(path, MAX_JSON_BYTES, "JSON file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SceneError(f"{show(path)}: not UTF-8 text: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SceneError(f"{show(path)}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise SceneError(f"{show(path)}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise SceneError(f"{show(path)}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise SceneError(f"{show(path)}: expected a JSON object at the top level, got {_type_name(doc)}")
    return doc


def _get(obj: dict, key: str, where: str, default: Any) -> tuple[bool, Any]:
    """(present, value): `default` when `key` is absent, an error if it was required."""
    if key in obj:
        return True, obj[key]
    if default is MISSING:
        raise SceneError(f"{where}: missing '{key}'")
    return False, default


def number(obj: dict, key: str, where: str, default: Any = MISSING) -> float:
    """A finite number (int or float, not bool) under `key`, or `default` when absent."""
    present, value = _get(obj, key, where, default)
    if not present:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SceneError(f"{where}: '{key}' must be a number, got {_type_name(value)}")
    try:
        value = float(value)
    except OverflowError:  # a 400-digit integer
        raise SceneError(f"{where}: '{key}' is too large ({len(str(value))} digits)") from None
    if not math.isfinite(value):
        raise SceneError(f"{where}: '{key}' is NaN or infinite")
    return value


def boolean(obj: dict, key: str, where: str, default: Any = MISSING) -> bool:
    """A JSON `true` / `false` under `key` (numbers and strings are refused), or `default`."""
    present, value = _get(obj, key, where, default)
    if present and not isinstance(value, bool):
        raise SceneError(f"{where}: '{key}' must be true or false, got {_type_name(value)}")
    return value


def numbers(obj: dict, key: str, where: str, length: int, default: Any = MISSING) -> list[float]:
    """A list of `length` finite numbers (not booleans) under `key`, or `default` when absent."""
    present, value = _get(obj, key, where, default)
    if not present:
        return value
    if not isinstance(value, list) or len(value) != length:
        raise SceneError(f"{where}: '{key}' must be a list of {length} numbers")
    return [number({key: v}, key, where) for v in value]


def string(obj: dict, key: str, where: str) -> str:
    _, value = _get(obj, key, where, MISSING)
    if not isinstance(value, str) or not value:
        raise SceneError(f"{where}: '{key}' must be a non-empty string, got {_type_name(value)}")
    return value


def list_of(obj: dict, key: str, where: str, default: Any = MISSING) -> list:
    present, value = _get(obj, key, where, default)
    if not present:
        return value
    if not isinstance(value, list):
        raise SceneError(f"{where}: '{key}' must be a list, got {_type_name(value)}")
    return value


def pose_matrix(obj: dict, key: str, where: str) -> np.ndarray:
    """[3, 4] float64 from a 3x4 or 4x4 nested list of numbers under `key`."""
    rows = list_of(obj, key, where)
    ok = (
        len(rows) in (3, 4)
        and all(isinstance(r, list) and len(r) == 4 for r in rows)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for r in rows for x in r)
    )
    if not ok:
        raise SceneError(f"{where}: '{key}' must be a 4x4 (or 3x4) list of numbers")
    try:
        m = np.asarray(rows, dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise SceneError(f"{where}: '{key}' has a number too large for a float") from None
    if not np.isfinite(m).all():
        raise SceneError(f"{where}: '{key}' has NaN or infinite values")
    if len(m) == 4:
        check_bottom_rows(m[None], [where], key)
    return m[:3]
