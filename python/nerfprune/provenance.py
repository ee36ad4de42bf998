"""Which scene a model was trained on: recorded in its checkpoint, found again by `eval` and `render`.

A checkpoint holds a `SceneRecord`: the path `load_scene` was given (and that path made
absolute, so a run started elsewhere finds it too), the format, the `load_scene` options
(factor, background) and the fingerprint of the images as loaded. `eval` and `render`
without `--scene` load that scene; given another scene (one whose images have another
fingerprint) they warn, naming both, or refuse with `--strict`.

Checkpoints written before scenes were recorded hold none; they still load, and their
model is evaluated on the built-in scene, with a warning unless the fingerprints agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfprune._native import fingerprint
from nerfprune.config import check_fields, check_range, from_dict, nested
from nerfprune.errors import ConfigError, SceneError
from nerfprune.scene.types import Scene


class SceneMismatchWarning(UserWarning):
    """A model is evaluated or rendered on a scene whose images are not the ones it was trained on."""


@dataclass
class SceneRecord:
    """The scene a model was trained on, as its checkpoint stores it (JSON metadata key "scene")."""

    path: str  # the path given to load_scene ("builtin" for the generated scene)
    abs_path: str  # that path made absolute when training started ("" for the generated scene)
    format: str  # blender | ngp | llff | npz | builtin
    fingerprint: str  # fingerprint of the training images as loaded (after downscaling), hex
    factor: int = 1  # load_scene's image downscale factor
    background: str = "white"  # load_scene's background: white | black | random
    builtin: dict | None = None  # the BuiltinSceneConfig of a generated scene (it need not be the default one)
    allow_outside_paths: bool = False  # load_scene's permission for image paths outside the scene folder

    def describe(self) -> str:
        """`../mic (blender, factor 8, fingerprint 0123...)`, `the built-in scene (24x24, seed 0, fingerprint
        ...)`: how a warning names this scene."""
        if self.format == "builtin":
            b = self.builtin or {}
            size = f"{b.get('width')}x{b.get('height')}, seed {b.get('seed')}, " if b else ""
            return f"the built-in scene ({size}fingerprint {self.fingerprint})"
        factor = f", factor {self.factor}" if self.factor != 1 else ""
        return f"{self.path} ({self.format}{factor}, fingerprint {self.fingerprint})"

    def validate(self) -> None:
        from nerfprune.scene.loading import BACKGROUNDS

        check_fields(self)
        check_range("factor", self.factor, 1, 1024)
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"background: unknown background {self.background!r}: choose one of {', '.join(BACKGROUNDS)}")
        if self.builtin is not None:  # regenerated on load: bound what it may cost
            from nerfprune.scene.builtin import BuiltinSceneConfig

            cfg = from_dict(BuiltinSceneConfig, self.builtin, "builtin")
            for name, high in (("width", 4096), ("height", 4096), ("n_views", 10_000), ("n_test", 10_000)):
                check_range(f"builtin.{name}", getattr(cfg, name), 1, high)
            check_range("builtin.radius", cfg.radius, 0.0, 1e6, low_open=True)
            check_range("builtin.fov_deg", cfg.fov_deg, 0.0, 180.0, low_open=True, high_open=True)


def scene_fingerprint(scene: Scene) -> str:
    """Hex fingerprint of the scene's images (computed in Rust): what says two scenes are the same data."""
    data = np.ascontiguousarray(scene.images).reshape(-1).view(np.uint8)
    return f"{fingerprint(data):016x}"


def background_name(scene: Scene) -> str:
    """The `load_scene(background=...)` name of the scene's background ("white" if it is none of them)."""
    from nerfprune.scene.loading import BACKGROUNDS

    if scene.random_background:
        return "random"
    return next((name for name, rgb in BACKGROUNDS.items() if tuple(rgb) == tuple(scene.background) and name != "random"),
                "white")


def record_scene(scene: Scene, fingerprint_hex: str | None = None) -> SceneRecord:
    """The record of `scene`. Its path is the one `nerfprune.load_scene` was given (kept in
    `scene.meta["path"]`), else the file it was read from (`scene.source`), which loads the same scene."""
    fmt = str(scene.meta.get("format", "unknown"))
    if fmt == "builtin":
        path, abs_path, builtin = "builtin", "", scene.meta.get("config")
    else:
        path = str(scene.meta.get("path") or scene.source)
        abs_path, builtin = str(Path(path).absolute()), None
    return SceneRecord(path=path, abs_path=abs_path, format=fmt,
                       fingerprint=fingerprint_hex or scene_fingerprint(scene),
                       factor=int(scene.meta.get("factor", 1)), background=background_name(scene),
                       builtin=dict(builtin) if isinstance(builtin, dict) else None,
                       allow_outside_paths=scene.meta.get("allow_outside_paths") is True)


def load_recorded_scene(record: SceneRecord, checkpoint: str | Path) -> Scene:
    """Load the scene `record` names (as given, else its absolute path); `SceneError` naming
    `checkpoint` if it is gone."""
    if record.format == "builtin":
        from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

        cfg = from_dict(BuiltinSceneConfig, record.builtin or {}, f"{checkpoint}: scene.builtin")
        return make_builtin_scene(cfg)
    from nerfprune.scene import load_scene

    for candidate in dict.fromkeys([record.path, record.abs_path]):
        if candidate and Path(candidate).exists():
            scene = load_scene(candidate, factor=record.factor, background=record.background,
                               allow_outside_paths=record.allow_outside_paths)
            scene.meta.update(path=record.path, allow_outside_paths=record.allow_outside_paths)
            return scene
    raise SceneError(f"{checkpoint}: the model's scene {record.path} is gone (also tried {record.abs_path}); "
                     "pass --scene (scene= in the API)")


def scene_mismatch(record: SceneRecord | None, trained_fingerprint: str, scene: Scene, model: str | Path) -> str | None:
    """None when `scene` holds the images `model` was trained on, else a one-line warning naming both scenes."""
    theirs = scene_fingerprint(scene)
    if theirs == trained_fingerprint:
        return None
    trained = record.describe() if record is not None else \
        f"a scene with fingerprint {trained_fingerprint} (its checkpoint predates scene records)"
    return (f"model {model} was trained on {trained}, but the scene given is "
            f"{record_scene(scene, theirs).describe()}: their images differ")


def as_record(data: dict | None, where: str) -> SceneRecord | None:
    """A stored record (a JSON object, or None in older checkpoints) checked field by field;
    `ConfigError` naming `where` and the field."""
    if data is None:
        return None
    record = from_dict(SceneRecord, data, where)
    with nested(where):
        record.validate()
    return record
