"""A hostile-input corpus for `load_scene`: damaged, absurd or malicious scenes, generated on the fly.

Every case starts from a scene that loads (the built-in scene written in each of the four
formats, or a few files copied from the real mic / fox / fern scenes), breaks one thing, and
asserts that loading raises `SceneError` whose message names the file (or key) and the problem.
Categories: cameras (per format), frame lists, JSON, npy / npz structure, images, paths.
`test_bases_load` proves each unbroken base loads, so every error comes from the breakage.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from conftest import datasets_dir
from nerfprune.errors import SceneError
from nerfprune.scene import load_scene, validate_camera
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

# ---------------------------------------------------------------- bases: scenes that load

BUILTIN = make_builtin_scene(BuiltinSceneConfig(width=24, height=24, n_views=8, n_test=2))
FOCAL = float(BUILTIN.cameras.fx[0])
BOTTOM = [[0.0, 0.0, 0.0, 1.0]]


def pose4(i: int) -> list:
    return np.concatenate([BUILTIN.cameras.c2w[i].astype(np.float64), BOTTOM]).tolist()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def write_blender(root: Path) -> None:
    angle = 2 * np.arctan(0.5 * 24 / FOCAL)
    for split, views in (("train", [1, 2, 3]), ("val", [0]), ("test", [8])):
        (root / split).mkdir(parents=True)
        frames = []
        for j, v in enumerate(views):
            (root / split / f"r_{j}.png").write_bytes(png(BUILTIN.images[v]))
            frames.append({"file_path": f"./{split}/r_{j}", "transform_matrix": pose4(v)})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))


def write_ngp(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    doc = {"fl_x": FOCAL, "fl_y": FOCAL, "cx": 12.0, "cy": 12.0, "w": 24.0, "h": 24.0, "k1": 0.01, "p1": 0.001,
           "aabb_scale": 2, "frames": []}
    for i in range(5):
        (root / "images" / f"{i}.png").write_bytes(png(BUILTIN.images[i, ..., :3]))
        doc["frames"].append({"file_path": f"images/{i}.png", "transform_matrix": pose4(i)})
    (root / "transforms.json").write_text(json.dumps(doc))


def write_llff(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(5):
        (root / "images" / f"img{i}.png").write_bytes(png(BUILTIN.images[i, ..., :3]))
        c2w = BUILTIN.cameras.c2w[i].astype(np.float64)  # OpenGL [right, up, back, t] -> LLFF [down, right, back, t]
        llff = np.stack([-c2w[:, 1], c2w[:, 0], c2w[:, 2], c2w[:, 3]], 1)
        hwf = np.array([[24.0], [24.0], [FOCAL]])
        rows.append(np.concatenate([np.concatenate([llff, hwf], 1).ravel(), [2.0, 6.0]]))
    np.save(root / "poses_bounds.npy", np.asarray(rows))


def npz_arrays() -> dict[str, np.ndarray]:
    return {"images": BUILTIN.images[:5, ..., :3].copy(), "poses": np.stack([pose4(i) for i in range(5)]),
            "focal": np.float64(FOCAL)}


def write_npz(root: Path) -> None:
    root.mkdir(parents=True)
    np.savez(root / "scene.npz", **npz_arrays())


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # contents only: the shared files are read-only


def write_mic(root: Path) -> None:
    src = real("mic")
    doc = json.loads((src / "transforms_train.json").read_text())
    doc["frames"] = doc["frames"][:2]
    for f in doc["frames"]:
        copy_file(src / (f["file_path"] + ".png"), root / (f["file_path"] + ".png"))
    (root / "transforms_train.json").write_text(json.dumps(doc))


def write_fox(root: Path) -> None:
    src = real("fox")
    doc = json.loads((src / "transforms.json").read_text())
    doc["frames"] = doc["frames"][:2]
    for f in doc["frames"]:
        copy_file(src / f["file_path"], root / f["file_path"])
    (root / "transforms.json").write_text(json.dumps(doc))


def write_fern(root: Path) -> None:
    src = real("fern")
    root.mkdir(parents=True)
    np.save(root / "poses_bounds.npy", np.load(src / "poses_bounds.npy")[:2])
    for name in sorted(os.listdir(src / "images_8"))[:2]:
        copy_file(src / "images_8" / name, root / "images_8" / name)


def real(name: str) -> Path:
    path = datasets_dir() / name
    if not path.is_dir():
        pytest.skip(f"real scene '{name}' not found at {path} (set NERFPRUNE_DATASETS to the shared datasets folder)")
    return path


BASES: dict[str, Callable[[Path], None]] = {
    "blender": write_blender, "ngp": write_ngp, "llff": write_llff, "npz": write_npz,
    "mic": write_mic, "fox": write_fox, "fern": write_fern,
}
MAIN_FILE = {"blender": "transforms_train.json", "ngp": "transforms.json", "llff": "poses_bounds.npy",
             "npz": "scene.npz", "mic": "transforms_train.json", "fox": "transforms.json", "fern": "poses_bounds.npy"}


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """Each base written once; cases copy it (lazily: real scenes skip where they are missing)."""
    root = tmp_path_factory.mktemp("bases")

    class Lazy(dict):
        def __missing__(self, name: str) -> Path:
            BASES[name](root / name)
            self[name] = root / name
            return root / name

    return Lazy()


def clone(template: Path, dst: Path) -> Path:
    for dirpath, _, files in os.walk(template):
        rel = Path(dirpath).relative_to(template)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(Path(dirpath) / f, dst / rel / f)
    return dst


@pytest.mark.parametrize("base", sorted(BASES))
def test_bases_load(templates, tmp_path, base: str) -> None:
    scene = load_scene(clone(templates[base], tmp_path / base))
    assert scene.meta["format"] == {"mic": "blender", "fox": "ngp", "fern": "llff"}.get(base, base)
    assert len(scene.splits["train"]) > 0


# ---------------------------------------------------------------- the corpus


@dataclass
class Case:
    category: str
    id: str
    base: str
    mutate: Callable[[Path], object]  # breaks the scene in `root`; may return the path to load
    expect: tuple[str, ...]  # fragments of the message; the first names the file or key
    kwargs: dict = field(default_factory=dict)


CASES: list[Case] = []


def case(category: str, id: str, base: str, expect: tuple[str, ...] | str, **kwargs):
    def register(mutate):
        CASES.append(Case(category, f"{category}-{base}-{id}", base, mutate, (expect,) if isinstance(expect, str) else expect, kwargs))
        return mutate
    return register


def add(category: str, id: str, base: str, mutate, expect, **kwargs) -> None:
    case(category, id, base, expect, **kwargs)(mutate)


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


NULL = object()  # a mutation's way to say "write JSON null"


def set_matrix(name: str, frame: int, change: Callable[[np.ndarray], object]):
    """A mutation: `change` edits frame `frame`'s transform_matrix (a float [4, 4] array) in place,
    or returns its new value (an array, a list, a string, or NULL)."""
    def mutate(root: Path) -> None:
        def edit(doc: dict) -> None:
            m = np.asarray(doc["frames"][frame]["transform_matrix"], np.float64)
            out = change(m)
            value = m.tolist() if out is None else out.tolist() if isinstance(out, np.ndarray) else out
            doc["frames"][frame]["transform_matrix"] = None if value is NULL else value
        edit_json(root / name, edit)
    return mutate


def setter(name: str, key: str, value, frame: int | None = None):
    """A mutation: set `key` to `value` at the top level of `name`, or in frame `frame`."""
    def mutate(root: Path) -> None:
        edit_json(root / name, lambda d: (d if frame is None else d["frames"][frame]).__setitem__(key, value))
    return mutate


def mirror(m):
    m[:3, 0] *= -1


def scale(m):
    m[:3, :3] *= 1.01


def shear(m):
    m[0, 1] += 0.05


def far_away(m):
    m[:3, 3] = 1e30


def rather_far(m):
    m[:3, 3] = [2e6, 0, 0]


def zero_rotation(m):
    m[:3, :3] = 0


def swap_axes(m):
    m[:3, [0, 1]] = m[:3, [1, 0]]


BIG_INT = 10**400
JSON_POSES: list[tuple[str, Callable, tuple[str, ...]]] = [
    ("mirrored", mirror, ("frame 1", "determinant -1", "mirror image")),
    ("swapped-axes", swap_axes, ("frame 1", "determinant -1")),
    ("scaled", scale, ("frame 1", "not orthonormal")),
    ("sheared", shear, ("frame 1", "not orthonormal")),
    ("zero-rotation", zero_rotation, ("frame 1", "not orthonormal")),
    ("at-1e30", far_away, ("frame 1", "camera position is 1.73e+30 world units")),
    ("at-2e6", rather_far, ("frame 1", "beyond 1e+06")),
    ("bottom-1234", lambda m: m.__setitem__(3, [1, 2, 3, 4]), ("frame 1", "bottom row is [1.0, 2.0, 3.0, 4.0]")),
    ("bottom-0002", lambda m: m.__setitem__((3, 3), 2), ("frame 1", "bottom row")),
    ("nan", lambda m: m.__setitem__((0, 0), np.nan), ("frame 1", "'transform_matrix' has NaN or infinite")),
    ("inf", lambda m: m.__setitem__((1, 3), np.inf), ("frame 1", "'transform_matrix' has NaN or infinite")),
    ("400-digits", lambda m: [[BIG_INT, 0, 0, 0]] + m[1:].tolist(), ("frame 1", "too large for a float")),
    ("bool", lambda m: [[True, 0, 0, 0]] + m[1:].tolist(), ("frame 1", "'transform_matrix' must be a 4x4")),
    ("string", lambda m: "identity", ("frame 1", "'transform_matrix' must be a list, got str")),
    ("3x3", lambda m: m[:3, :3].tolist(), ("frame 1", "must be a 4x4 (or 3x4)")),
    ("empty", lambda m: [], ("frame 1", "must be a 4x4")),
    ("null", lambda m: NULL, ("frame 1", "'transform_matrix' must be a list, got null")),
]
for base in ("blender", "ngp"):
    for id, change, expect in JSON_POSES:
        add("camera", f"pose-{id}", base, set_matrix(MAIN_FILE[base], 1, change), (MAIN_FILE[base],) + expect)
for base in ("mic", "fox"):
    for id, change, expect in JSON_POSES[:9]:
        add("camera", f"pose-{id}", base, set_matrix(MAIN_FILE[base], 1, change), (MAIN_FILE[base],) + expect)

# Blender field of view.
TRAIN = "transforms_train.json"
for id, value, expect in [
    ("pi", np.pi, "must be in (0, pi)"), ("zero", 0, "must be in (0, pi)"), ("negative", -0.5, "must be in (0, pi)"),
    ("4-rad", 4.0, "must be in (0, pi)"), ("tiny", 1e-30, "focal length fx = 2.4e+31 px is outside"),
    ("almost-pi", np.pi - 1e-9, "focal length fx"), ("string", "wide", "'camera_angle_x' must be a number, got str"),
    ("bool", True, "'camera_angle_x' must be a number, got bool"), ("null", None, "must be a number, got null"),
    ("400-digits", BIG_INT, "'camera_angle_x' is too large (401 digits)"), ("nan", float("nan"), "'camera_angle_x' is NaN"),
]:
    add("camera", f"angle-{id}", "blender", setter(TRAIN, "camera_angle_x", value), (TRAIN, expect))
add("camera", "angle-pi", "mic", setter(TRAIN, "camera_angle_x", np.pi), (TRAIN, "must be in (0, pi)"))

# instant-ngp intrinsics, top level and per frame.
NGP = "transforms.json"
for id, key, value, expect in [
    ("fx-1e-30", "fl_x", 1e-30, "focal length fx = 1e-30 px is outside 0.001..1000 x the image width (24 px)"),
    ("fx-1e30", "fl_x", 1e30, "focal length fx = 1e+30 px"), ("fx-zero", "fl_x", 0, "focal length fx = 0 px"),
    ("fx-negative", "fl_x", -5, "focal length fx = -5 px"), ("fx-bool", "fl_x", True, "'fl_x' must be a number, got bool"),
    ("fx-string", "fl_x", "12", "'fl_x' must be a number, got str"), ("fx-400-digits", "fl_x", BIG_INT, "'fl_x' is too large"),
    ("fx-null", "fl_x", None, "'fl_x' must be a number, got null"), ("fx-list", "fl_x", [12], "'fl_x' must be a number, got list"),
    ("fy-1e-30", "fl_y", 1e-30, "focal length fy = 1e-30 px is outside 0.001..1000 x the image height"),
    ("fy-1e30", "fl_y", 1e30, "focal length fy"),
    ("cx-far-right", "cx", 1e4, "principal point cx = 10000 px is more than 1 image width outside"),
    ("cx-far-left", "cx", -25, "principal point cx = -25 px"), ("cx-1e300", "cx", 1e300, "principal point cx = 1e+300"),
    ("cy-far", "cy", 49, "principal point cy = 49 px"), ("cx-bool", "cx", False, "'cx' must be a number, got bool"),
    ("w-bool", "w", True, "'w' must be a number, got bool"), ("w-fraction", "w", 10.5, "'w' must be a whole number of pixels"),
    ("w-negative", "w", -1, "'w' must be a whole number"), ("h-1e300", "h", 1e300, "'h' must be a whole number of pixels in 0..1048576"),
    ("w-wrong", "w", 20, "image is 24x24 but its intrinsics say 20x24"),
    ("k1-1e10", "k1", 1e10, "distortion coefficient 'k1' = 10000000000.0 is beyond +-10"),
    ("k2-minus-11", "k2", -11, "'k2' = -11.0 is beyond +-10"), ("p1-1e3", "p1", 1e3, "'p1' = 1000.0 is beyond"),
    ("k1-nan", "k1", float("nan"), "'k1' is NaN or infinite"), ("k1-bool", "k1", True, "'k1' must be a number, got bool"),
    ("k3-string", "k3", "0.1", "'k3' must be a number, got str"),
    ("angle-x-pi", "camera_angle_x", np.pi, "'camera_angle_x' must be in (0, pi)"),
    ("angle-y-zero", "camera_angle_y", 0.0, "'camera_angle_y' must be in (0, pi)"),
    ("fisheye", "is_fisheye", True, "'is_fisheye' is true: fisheye cameras are not supported"),
    ("fisheye-as-1", "is_fisheye", 1, "'is_fisheye' must be true or false, got int"),
    ("fisheye-as-string", "is_fisheye", "yes", "'is_fisheye' must be true or false, got str"),
    ("model-fisheye", "camera_model", "OPENCV_FISHEYE", "'camera_model' 'OPENCV_FISHEYE' is not supported"),
    ("model-equirect", "camera_model", "EQUIRECTANGULAR", "'camera_model' 'EQUIRECTANGULAR' is not supported"),
    ("model-number", "camera_model", 5, "'camera_model' must be a non-empty string, got int"),
    ("aabb-bool", "aabb_scale", True, "'aabb_scale' must be a number, got bool"),
    ("aabb-zero", "aabb_scale", 0, "need 0 < 'aabb_scale' <= 1e4"),
    ("offset-bool", "offset", [True, 0.5, 0.5], "'offset' must be a number, got bool"),
    ("offset-400-digits", "offset", [BIG_INT, 0.5, 0.5], "'offset' is too large"),
    ("offset-short", "offset", [0.5], "'offset' must be a list of 3 numbers"),
    ("scale-zero", "scale", 0, "1e-6 <= 'scale' <= 1e6"),
]:
    add("camera", id, "ngp", setter(NGP, key, value), (NGP, expect))
for id, key, value, expect in [
    ("frame-fx-tiny", "fl_x", 1e-9, "frame 3: focal length fx = 1e-09 px"),
    ("frame-cx-far", "cx", -1e5, "frame 3: principal point cx"),
    ("frame-k1-huge", "k1", 1e10, "frame 3: distortion coefficient 'k1'"),
    ("frame-fisheye", "is_fisheye", True, "frame 3: 'is_fisheye' is true"),
    ("frame-bool-h", "h", False, "frame 3: 'h' must be a number, got bool"),
    ("frame-angle-pi", "camera_angle_x", np.pi, "frame 3: 'camera_angle_x' must be in (0, pi)"),
]:
    add("camera", id, "ngp", setter(NGP, key, value, frame=3), (NGP, expect))
add("camera", "fx-1e-30", "fox", setter(NGP, "fl_x", 1e-30), (NGP, "frame 0: focal length fx = 1e-30 px"))
add("camera", "k1-1e10", "fox", setter(NGP, "k1", 1e10), (NGP, "frame 0: distortion coefficient 'k1'"))
add("camera", "cx-outside", "fox", setter(NGP, "cx", 5000.0), (NGP, "frame 0: principal point cx = 5000 px"))


# LLFF rows: [3x5 pose+hwf | near far].
def llff_row(row: int, change: Callable[[np.ndarray], None]):
    def mutate(root: Path) -> None:
        arr = np.load(root / "poses_bounds.npy")
        change(arr[row])
        np.save(root / "poses_bounds.npy", arr)
    return mutate


def llff_pose(change: Callable[[np.ndarray], None]):
    def edit(r: np.ndarray) -> None:
        m = r[:15].reshape(3, 5)
        change(m)
        r[:15] = m.ravel()
    return edit


LLFF = "poses_bounds.npy"
LLFF_ROWS = [
    ("mirrored", llff_pose(lambda m: m.__setitem__((slice(None), 0), -m[:, 0])), "view 1 (img1.png): pose rotation has determinant -1"),
    ("scaled", llff_pose(lambda m: m.__setitem__((slice(None), slice(0, 3)), m[:, :3] * 1.05)), "view 1 (img1.png): pose rotation is not orthonormal"),
    ("near-above-far", lambda r: r.__setitem__(slice(15, 17), [7.0, 3.0]), "view 1: need 0 < near < far bounds, got near=7.0, far=3.0"),
    ("near-equals-far", lambda r: r.__setitem__(slice(15, 17), [3.0, 3.0]), "view 1: need 0 < near < far"),
    ("near-zero", lambda r: r.__setitem__(15, 0.0), "view 1: need 0 < near < far bounds, got near=0.0"),
    ("near-negative", lambda r: r.__setitem__(15, -1.0), "view 1: need 0 < near"),
    ("far-inf", lambda r: r.__setitem__(16, np.inf), "view 1: pose or bounds have NaN or infinite values"),
    ("pose-nan", lambda r: r.__setitem__(3, np.nan), "view 1: pose or bounds have NaN or infinite values"),
    ("focal-zero", llff_pose(lambda m: m.__setitem__((2, 4), 0.0)), "view 1: image height, width and focal [H, W, f] must be positive"),
    ("height-negative", llff_pose(lambda m: m.__setitem__((0, 4), -24.0)), "view 1: image height, width and focal"),
    ("focal-tiny", llff_pose(lambda m: m.__setitem__((2, 4), 1e-9)), "view 1 (img1.png): focal length fx"),
    ("at-1e30", llff_pose(lambda m: m.__setitem__((slice(None), 3), 1e30)), "world units"),
]
for id, change, expect in LLFF_ROWS:
    add("camera", id, "llff", llff_row(1, change), (LLFF, expect))
add("camera", "near-above-far", "fern", llff_row(1, LLFF_ROWS[2][1]), (LLFF, "view 1: need 0 < near < far bounds"))
add("camera", "mirrored", "fern", llff_row(1, LLFF_ROWS[0][1]), (LLFF, "view 1 (image001.png): pose rotation has determinant"))


def all_llff_rows(change: Callable[[np.ndarray], None]):
    def mutate(root: Path) -> None:
        arr = np.load(root / "poses_bounds.npy")
        change(arr)
        np.save(root / "poses_bounds.npy", arr)
    return mutate


add("camera", "all-poses-zero", "llff", all_llff_rows(lambda a: a.__setitem__((slice(None), slice(0, 15)), 0.0)),
    (LLFF, "view 0: image height, width and focal"))


# npz arrays.
def npz_with(**changes):
    def mutate(root: Path) -> None:
        arrays = npz_arrays()
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
        np.savez(root / "scene.npz", **arrays)
    return mutate


def npz_pose(change):
    def apply(poses):
        change(poses[1])
        return poses
    return apply


NPZ = "scene.npz"
for id, changes, expect in [
    ("mirrored", dict(poses=npz_pose(mirror)), "view 1: pose rotation has determinant -1"),
    ("scaled", dict(poses=npz_pose(scale)), "view 1: pose rotation is not orthonormal"),
    ("bottom-1234", dict(poses=npz_pose(lambda m: m.__setitem__(3, [1, 2, 3, 4]))), "view 1: 'poses' bottom row is [1.0, 2.0, 3.0, 4.0]"),
    ("at-1e30", dict(poses=npz_pose(far_away)), "view 1: camera position"),
    ("pose-nan", dict(poses=npz_pose(lambda m: m.__setitem__((0, 0), np.nan))), "view 1: 'poses' has NaN"),
    ("poses-bool", dict(poses=lambda p: p > 0), "'poses' must be real numbers"),
    ("poses-complex", dict(poses=lambda p: p.astype(np.complex128)), "'poses' must be real numbers"),
    ("poses-3x3", dict(poses=lambda p: p[:, :3, :3]), "'poses' must be real numbers of shape [5, 4, 4]"),
    ("poses-too-few", dict(poses=lambda p: p[:3]), "'poses' must be real numbers of shape [5, 4, 4]"),
    ("focal-zero", dict(focal=np.float64(0)), "view 0: focal length fx = 0 px"),
    ("focal-1e30", dict(focal=np.float64(1e30)), "view 0: focal length fx = 1e+30 px"),
    ("focal-nan", dict(focal=np.float64(np.nan)), "'focal' is NaN or infinite"),
    ("focal-inf-one-view", dict(focal=np.array([FOCAL, np.inf, FOCAL, FOCAL, FOCAL])), "'focal' is NaN or infinite"),
    ("focal-bool", dict(focal=np.bool_(True)), "'focal' must be a number or [5] numbers, got bool"),
    ("focal-string", dict(focal=np.str_("13")), "'focal' must be a number"),
    ("focal-wrong-length", dict(focal=np.ones(3) * FOCAL), "'focal' must be a number or [5] numbers"),
    ("images-0-255-float", dict(images=lambda im: im.astype(np.float32)), "'images' view 0 has values in 0..25"),
    ("images-negative", dict(images=lambda im: im / 255.0 - 0.5), "'images' view 0 has values in -0.5"),
    ("images-nan", dict(images=lambda im: np.where(im == im.max(), np.nan, im / 255.0)), "'images' view"),
    ("images-int16", dict(images=lambda im: im.astype(np.int16)), "'images' must be float in [0, 1] or uint8, got int16"),
    ("images-bool", dict(images=lambda im: im > 0), "'images' must be float in [0, 1] or uint8, got bool"),
    ("images-2-channels", dict(images=lambda im: im[..., :2]), "'images' must be [N, H, W, 3|4]"),
    ("images-3d", dict(images=lambda im: im[0]), "'images' must be [N, H, W, 3|4]"),
    ("images-none", dict(images=lambda im: im[:0], poses=lambda p: p[:0]), "'images' must be [N, H, W, 3|4] with N > 0"),
    ("missing-focal", dict(focal=None), "missing array 'focal' (have: images, poses)"),
    ("missing-images", dict(images=None), "missing array 'images'"),
    ("duplicated-view", dict(images=lambda im: im[[0, 1, 2, 3, 1]], poses=lambda p: p[[0, 1, 2, 3, 1]]),
     "view 4: has the same pose and pixels as"),
]:
    add("camera", id, "npz", npz_with(**changes), (NPZ, expect))


# ---------------------------------------------------------------- frame lists and splits

def repeat_frame(name: str, frame: int, times: int):
    return lambda root: edit_json(root / name, lambda d: d.__setitem__("frames", d["frames"] + [d["frames"][frame]] * times))


add("frames", "same-file-twice", "blender", repeat_frame(TRAIN, 0, 1), (TRAIN, "frame 3: reads the same image file as", "frame 0"))
add("frames", "one-frame-200-times", "ngp", repeat_frame(NGP, 2, 200),
    (NGP, "frame 5: reads the same image file as", "frame 2", "200 duplicated frames in all"))
add("frames", "same-file-twice", "fox", repeat_frame(NGP, 0, 1), (NGP, "frame 2: reads the same image file as"))
add("frames", "same-file-twice", "mic", repeat_frame(TRAIN, 1, 1), (TRAIN, "frame 2: reads the same image file as"))
add("frames", "train-repeated-in-test", "blender",
    lambda root: edit_json(root / "transforms_test.json", lambda d: d["frames"].append({"file_path": "./train/r_0", "transform_matrix": pose4(1)})),
    ("transforms_test.json: frame 1: reads the same image file as", "transforms_train.json: frame 0"))
add("frames", "same-file-other-spelling", "ngp",
    setter(NGP, "file_path", "images/../images/./0.png", frame=4), (NGP, "frame 4: reads the same image file as"))


def symlinked_duplicate(root: Path) -> None:
    (root / "images" / "4.png").unlink()
    (root / "images" / "4.png").symlink_to("0.png")


add("frames", "symlink-to-another-frame", "ngp", symlinked_duplicate, (NGP, "frame 4: reads the same image file as", "frame 0"))
add("frames", "empty-train-filenames", "ngp", setter(NGP, "train_filenames", []),
    (NGP, "the train split is empty (the files list no training views)"))
add("frames", "only-val-filenames", "ngp", setter(NGP, "val_filenames", ["images/0.png"]), (NGP, "the train split is empty"))
add("frames", "one-frame", "ngp", lambda root: edit_json(root / NGP, lambda d: d.__setitem__("frames", d["frames"][:1])),
    (NGP, "1 view(s): holding out every 8th view for val/test leaves none to train on"))
add("frames", "one-frame", "fox", lambda root: edit_json(root / NGP, lambda d: d.__setitem__("frames", d["frames"][:1])),
    (NGP, "the train split is empty"))
add("frames", "views-without-train", "blender", lambda root: None, (TRAIN, "views=[3, 4] selects none of its training views"), views=[3, 4])
add("frames", "empty-frames", "blender", setter(TRAIN, "frames", []), (TRAIN, "'frames' is empty"))
add("frames", "frames-not-list", "ngp", setter(NGP, "frames", {"0": {}}), (NGP, "'frames' must be a list, got dict"))
add("frames", "frame-not-object", "ngp", lambda root: edit_json(root / NGP, lambda d: d["frames"].__setitem__(1, 7)),
    (NGP, "frame 1: must be a JSON object, got int"))
add("frames", "split-names-unknown-file", "ngp", setter(NGP, "train_filenames", ["nope.png"]), (NGP, "'train_filenames' names 'nope.png'"))
add("frames", "split-names-number", "ngp", setter(NGP, "train_filenames", [3]), (NGP, "'train_filenames' must list strings, got int"))
add("frames", "views-out-of-range", "npz", lambda root: None, (NPZ, "views= must be distinct indices in 0..4"), views=[0, 9])
add("frames", "views-repeated", "ngp", lambda root: None, (NGP, "views= must be distinct indices"), views=[1, 1])
add("frames", "views-bools", "ngp", lambda root: None, (NGP, "views= must be a non-empty list of view indices"), views=[True, False])
add("frames", "llff-too-few-images", "llff", lambda root: (root / "images" / "img4.png").unlink(),
    ("images: 4 images but poses_bounds.npy has 5 poses",))
add("frames", "llff-no-image-folder", "llff", lambda root: shutil.rmtree(root / "images"),
    ("LLFF scene has poses_bounds.npy but no images/ or images_<k>/ folder",))


# ---------------------------------------------------------------- JSON documents

def write_text(name: str, text: str | bytes):
    def mutate(root: Path) -> None:
        p = root / name
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return mutate


for base, name in (("blender", TRAIN), ("ngp", NGP), ("mic", TRAIN), ("fox", NGP)):
    for id, text, expect in [
        ("empty", "", "invalid JSON: Expecting value at line 1 column 1"),
        ("cut", '{"frames": [', "invalid JSON"),
        ("top-level-list", "[1, 2]", "expected a JSON object at the top level, got list"),
        ("latin-1", b'{"a": "\xe9"}', "not UTF-8 text"),
        ("5000-digits", '{"fl_x": ' + "9" * 5000 + "}", "invalid JSON: Exceeds the limit"),
        ("deep", "[" * 100000 + "]" * 100000, "invalid JSON: nested too deeply"),
    ]:
        add("json", id, base, write_text(name, text), (name, expect))
add("json", "missing-angle", "blender", lambda root: edit_json(root / TRAIN, lambda d: d.pop("camera_angle_x")), (TRAIN, "missing 'camera_angle_x'"))
add("json", "missing-file-path", "ngp", lambda root: edit_json(root / NGP, lambda d: d["frames"][2].pop("file_path")), (NGP, "frame 2: missing 'file_path'"))
add("json", "file-path-number", "ngp", setter(NGP, "file_path", 7, frame=2), (NGP, "frame 2: 'file_path' must be a non-empty string, got int"))
add("json", "file-path-empty", "blender", setter(TRAIN, "file_path", "", frame=0), (TRAIN, "frame 0: 'file_path' must be a non-empty string"))
add("json", "no-focal", "ngp", lambda root: edit_json(root / NGP, lambda d: [d.pop(k) for k in ("fl_x", "fl_y")]), (NGP, "frame 0: no focal length"))


def oversized_json(root: Path, monkeypatch) -> None:
    monkeypatch.setattr("nerfprune.scene._json.MAX_JSON_BYTES", 1000)


add("json", "over-size-limit", "ngp", oversized_json, (NGP, "JSON file is", "more than the 1000 bytes accepted"))


# ---------------------------------------------------------------- npy / npz structure

def npy_header(shape: tuple, dtype: str = "<f8", fortran: bool = False) -> bytes:
    header = repr({"descr": dtype, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


for base in ("llff", "fern"):
    for id, data, expect in [
        ("zero-bytes", b"", "empty file (0 bytes), not a .npy array"),
        ("npz-as-npy", "npz", "is an .npz (zip) archive, not a single .npy array"),
        ("text", b"hello world", "not a .npy file"),
        ("100-TiB-header", npy_header((2**40, 17)) + b"\0" * 64, "the header declares a float64 array of shape (1099511627776, 17)"),
        ("header-longer-than-data", npy_header((5, 17)) + b"\0" * 100, "but the file holds at most 100 bytes"),
        ("bad-header", b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n", "corrupt .npy header"),
        ("header-cut", b"\x93NUMPY\x01\x00\xff\x00{'descr'", "corrupt .npy header"),
        ("pickle", "pickle", "stores Python objects (it would need pickle to load); refused"),
        ("shape-5x16", "5x16", "expected a non-empty N x 17 array of real numbers, got float64 ("),
        ("bool", "bool", "expected a non-empty N x 17 array of real numbers, got bool"),
        ("empty-array", "empty", "expected a non-empty N x 17 array"),
    ]:
        def mutate(root: Path, data=data) -> None:
            p = root / LLFF
            if data == "npz":
                np.savez(p.with_suffix(".tmp.npz"), a=np.load(p))
                p.with_suffix(".tmp.npz").rename(p)
            elif data == "pickle":
                np.save(p, np.array([{"a": 1}] * 2, dtype=object), allow_pickle=True)
            elif data == "5x16":
                np.save(p, np.load(p)[:, :16])
            elif data == "bool":
                np.save(p, np.load(p) > 0)
            elif data == "empty":
                np.save(p, np.zeros((0, 17)))
            else:
                p.write_bytes(data)
        add("npy", id, base, mutate, (LLFF, expect))


def npz_raw(build: Callable[[Path], object]):
    def mutate(root: Path) -> None:
        build(root / NPZ)
    return mutate


def member_header_huge(p: Path) -> None:
    """A valid zip whose 'images' member declares a 1 PiB array."""
    import zipfile
    with zipfile.ZipFile(p, "w") as z:
        for key, arr in npz_arrays().items():
            buf = io.BytesIO()
            np.save(buf, arr)
            data = buf.getvalue() if key != "images" else npy_header((2**20, 2**20, 2**10, 3), "|u1") + b"\0" * 64
            z.writestr(key + ".npy", data)


def deflate_bomb(p: Path) -> None:
    """An 'images' member declaring 1 GiB, its zip sizes patched to 2 GiB: more than deflate
    could ever expand its ~1 kB of compressed bytes to, so it is refused before allocating."""
    import zipfile
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, arr in npz_arrays().items():
            buf = io.BytesIO()
            np.save(buf, arr)
            data = buf.getvalue() if key != "images" else npy_header((1024, 1024, 1024), "|u1") + b"\0" * 4096
            z.writestr(key + ".npy", data)
    raw = bytearray(p.read_bytes())
    at = 0
    while (at := raw.find(b"images.npy", at + 1)) > 0:  # the local header, then the central directory entry
        if raw[at - 30 : at - 26] == b"PK\x03\x04":
            raw[at - 8 : at - 4] = struct.pack("<I", 2**31)  # uncompressed size, local header offset 22
        if raw[at - 46 : at - 42] == b"PK\x01\x02":
            raw[at - 22 : at - 18] = struct.pack("<I", 2**31)  # uncompressed size, central directory offset 24
    p.write_bytes(bytes(raw))


def corrupt_member(p: Path) -> None:
    np.savez_compressed(p, **npz_arrays())
    raw = bytearray(p.read_bytes())
    at = raw.find(b"images.npy") + 200
    raw[at : at + 50] = b"\xff" * 50
    p.write_bytes(bytes(raw))


def pickled_member(p: Path) -> None:
    arrays = npz_arrays()
    arrays["poses"] = np.array([{"evil": 1}] * 5, dtype=object)
    np.savez(p, **arrays)


for id, build, expect in [
    ("zero-bytes", lambda p: p.write_bytes(b""), "empty file (0 bytes), not a .npz archive"),
    ("npy-as-npz", lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "is a single .npy array, not an .npz archive"),
    ("not-a-zip", lambda p: p.write_bytes(b"not a zip at all"), "cannot read as a .npz archive"),
    ("zip-cut", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "cannot read as a .npz archive"),
    ("member-declares-1-PiB", member_header_huge, "array 'images': the header declares a uint8 array of shape (1048576, 1048576, 1024, 3)"),
    ("deflate-bomb-sizes", deflate_bomb, "array 'images': the header declares a uint8 array of shape (1024, 1024, 1024) (1073741824 bytes), but the file holds at most"),
    ("member-corrupt", corrupt_member, "array 'images'"),
    ("member-pickled", pickled_member, "array 'poses': the array stores Python objects"),
]:
    add("npy", id, "npz", npz_raw(build), (NPZ, expect))


# ---------------------------------------------------------------- images

def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, p = [], 8
    while p < len(data):
        (n,) = struct.unpack(">I", data[p : p + 4])
        out.append((data[p + 4 : p + 8], data[p + 8 : p + 8 + n]))
        p += 12 + n
    return out


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def rebuild_png(data: bytes, edit: Callable[[list], list]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, d) for k, d in edit(chunks(data)))


def png_half_idat(parts):
    return [(k, d[: len(d) // 2] if k == b"IDAT" else d) for k, d in parts]


def png_taller(parts):
    k, d = parts[0]
    return [(k, d[:4] + struct.pack(">I", struct.unpack(">I", d[4:8])[0] * 2) + d[8:])] + parts[1:]


def png_huge(parts):
    k, d = parts[0]
    return [(k, struct.pack(">II", 1 << 20, 1 << 20) + d[8:])] + parts[1:]


def image_bytes(edit: Callable[[bytes], bytes], image: str):
    def mutate(root: Path) -> None:
        p = root / image
        p.write_bytes(edit(p.read_bytes()))
    return mutate


PNG_EDITS = [
    ("cut-half", lambda b: b[: len(b) // 2], "truncated PNG"),
    ("cut-half-iend-appended", lambda b: b[: len(b) // 2] + chunk(b"IEND", b""), "PNG"),
    ("idat-half-crc-fixed", lambda b: rebuild_png(b, png_half_idat), "corrupt PNG"),
    ("ihdr-taller-crc-fixed", lambda b: rebuild_png(b, png_taller), "image is"),
    ("ihdr-1M-by-1M", lambda b: rebuild_png(b, png_huge), "unsupported image size 1048576x1048576"),
    ("zero-bytes", lambda b: b"", "empty file (0 bytes), not an image"),
    ("signature-only", lambda b: b[:8], "PNG"),
    ("text", lambda b: b"hello", "not a PNG or JPEG image"),
    ("gif", lambda b: b"GIF89a" + b"\0" * 40, "not a PNG or JPEG image"),
    ("crc-flipped", lambda b: b[:29] + bytes([b[29] ^ 0xFF]) + b[30:], "corrupt PNG"),
    ("other-size", lambda b: png(np.zeros((5, 7, 4), np.uint8)), "image is 7x5 but"),
]
for base, image in (("blender", "train/r_1.png"), ("ngp", "images/3.png"), ("llff", "images/img2.png"), ("mic", "train/r_1.png"), ("fern", "images_8/image001.png")):
    for id, edit, expect in PNG_EDITS if base in ("blender", "ngp") else PNG_EDITS[:5]:
        add("image", f"png-{id}", base, image_bytes(edit, image), (image, expect))


def jpeg_bytes(arr: np.ndarray, progressive: bool = False) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def sof_at(b: bytes) -> int:
    return max(b.find(b"\xff\xc0"), b.find(b"\xff\xc2"))


def cut_scan(frac: float, eoi: bool = True):
    """Cut the entropy-coded data (from the first start-of-scan on) at `frac`; re-append the end marker."""
    def edit(b: bytes) -> bytes:
        sos = b.find(b"\xff\xda")
        cut = b[: sos + int((len(b) - sos) * frac)].rstrip(b"\xff")
        return cut + (b"\xff\xd9" if eoi else b"")
    return edit


def patch_sof(index: int, add: int):
    """Enlarge the frame header's height (index 0) or width (index 1) by `add` pixels."""
    def edit(b: bytes) -> bytes:
        at = sof_at(b) + 5 + 2 * index
        value = struct.unpack(">H", b[at : at + 2])[0] + add
        return b[:at] + struct.pack(">H", value) + b[at + 2 :]
    return edit


JPEG_EDITS = [
    ("cut-half-eoi-appended", cut_scan(0.5), "truncated or corrupt JPEG"),
    ("cut-90-eoi-appended", cut_scan(0.9), "truncated or corrupt JPEG"),
    ("cut-10-eoi-appended", cut_scan(0.1), "truncated or corrupt JPEG"),
    ("cut-half", cut_scan(0.5, eoi=False), "truncated JPEG"),
    ("sof-taller", patch_sof(0, 16), "image is"),
    ("sof-wider", patch_sof(1, 16), "image is"),
    ("header-garbage", lambda b: b[:2] + b"\xff\x01" * 19 + b[40:], "JPEG"),
    ("soi-only", lambda b: b[:3], "JPEG"),
]


def as_jpeg(progressive: bool):
    """Turn the PNG of a built-in base into a JPEG of the same pixels (kept under its name)."""
    return lambda b: jpeg_bytes(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), progressive)


def all_images(folder: str, edit: Callable[[bytes], bytes]):
    """A mutation applying `edit` to every image in `folder`, so the sizes still agree with each other."""
    def mutate(root: Path) -> None:
        for p in sorted((root / folder).iterdir()):
            p.write_bytes(edit(p.read_bytes()))
    return mutate


for id, edit, expect in JPEG_EDITS:
    add("image", f"jpeg-{id}", "fox", image_bytes(edit, "images/0002.jpg"), ("images/0002.jpg", expect))
    for progressive in (False, True):
        kind = "progressive" if progressive else "baseline"
        add("image", f"{kind}-jpeg-{id}", "ngp",
            image_bytes(lambda b, e=edit, p=progressive: e(as_jpeg(p)(b)), "images/1.png"), ("images/1.png", expect))
# A frame header enlarged in every image (so all sizes agree): the data no longer covers the image.
for id, edit in (("sof-taller", patch_sof(0, 16)), ("sof-wider", patch_sof(1, 16)), ("sof-much-taller", patch_sof(0, 400))):
    add("image", f"every-jpeg-{id}", "fox", all_images("images", edit), ("images/0001.jpg", "truncated or corrupt JPEG"))
    for progressive in (False, True):
        kind = "progressive" if progressive else "baseline"
        add("image", f"every-{kind}-jpeg-{id}", "ngp",
            all_images("images", lambda b, e=edit, p=progressive: e(as_jpeg(p)(b))), ("images/0.png", "truncated or corrupt JPEG"))


# ---------------------------------------------------------------- paths

def fifo_at(rel: str, replace: bool = True):
    def mutate(root: Path) -> None:
        p = root / rel
        if replace and (p.exists() or p.is_symlink()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        os.mkfifo(p)
    return mutate


def folder_at(rel: str):
    def mutate(root: Path) -> None:
        p = root / rel
        p.unlink()
        p.mkdir()
    return mutate


def symlink_at(rel: str, target: str | Callable[[Path], str]):
    def mutate(root: Path) -> None:
        p = root / rel
        if p.exists() or p.is_symlink():
            p.unlink()
        p.symlink_to(target(root) if callable(target) else target)
    return mutate


def loop_at(rel: str):
    def mutate(root: Path) -> None:
        p = root / rel
        p.unlink()
        p.symlink_to(p.name + ".loop")
        (p.parent / (p.name + ".loop")).symlink_to(p.name)
    return mutate


def outside_file(root: Path) -> str:
    """A copy of a valid image placed beside (outside) the scene folder."""
    target = root.parent / f"{root.name}-outside.png"
    shutil.copyfile(next((root / d for d in ("images", "train") if (root / d).is_dir())).iterdir().__next__(), target)
    return str(target)


IMAGE_OF = {"blender": ("train/r_1.png", TRAIN, "frame 1"), "ngp": ("images/3.png", NGP, "frame 3"),
            "llff": ("images/img2.png", LLFF, "view 2"), "mic": ("train/r_1.png", TRAIN, "frame 1"),
            "fox": ("images/0002.jpg", NGP, "frame 1")}
for base, (image, meta, frame) in IMAGE_OF.items():
    add("path", "image-is-fifo", base, fifo_at(image), (image, "is a FIFO (named pipe); only regular files are read"))
    add("path", "image-is-folder", base, folder_at(image), (image, "is a folder; only regular files are read"))
    add("path", "image-symlink-loop", base, loop_at(image), (image, "symlink loop"))
    if base != "llff":  # LLFF lists its images: one fewer is "llff-too-few-images"
        add("path", "image-missing", base, lambda root, image=image: (root / image).unlink(), (image, "cannot read file: No such file or directory"))
    add("path", "image-symlink-outside", base, symlink_at(image, outside_file), (meta, frame, "outside the scene folder"))
    add("path", "image-symlink-dev-zero", base, symlink_at(image, "/dev/zero"), (meta, frame, "resolves to /dev/zero, outside the scene folder"))
    add("path", "image-symlink-dev-zero-allowed", base, symlink_at(image, "/dev/zero"),
        (meta, frame, "/dev/zero: is a character device"), allow_outside_paths=True)
    add("path", "image-symlink-fifo-outside-allowed", base,
        lambda root, image=image: (os.mkfifo(root.parent / f"{root.name}.fifo"), symlink_at(image, str(root.parent / f"{root.name}.fifo"))(root)),
        (meta, frame, "scene.fifo: is a FIFO"), allow_outside_paths=True)

for base, meta in (("blender", TRAIN), ("ngp", NGP), ("mic", TRAIN), ("fox", NGP)):
    frame = 1
    for id, value, expect in [
        ("dotdot", "../outside.png", "outside the scene folder"),
        ("dotdot-deep", "../" * 300 + "etc/passwd", "resolves to /etc/passwd, outside the scene folder"),
        ("absolute-etc-passwd", "/etc/passwd", "'file_path' '/etc/passwd' is absolute"),
        ("absolute-dev-zero", "/dev/zero", "'file_path' '/dev/zero' is absolute"),
        ("nul-byte", "images/0\x00.png", "'file_path' 'images/0\\\\x00.png' contains a NUL byte"),
        ("over-long", "a" * 5000 + ".png", "aaaaaaaaaa…(5"),
        ("over-long-folder", "/".join(["b" * 250] * 20) + ".png", "cannot read file: file name too long"),
        ("missing", "images/nope.png", "images/nope.png: cannot read file: No such file or directory"),
    ]:
        add("path", f"file-path-{id}", base, setter(meta, "file_path", value, frame=frame), (meta, f"frame {frame}", expect))
    add("path", "file-path-absolute-inside-allowed-but-fifo", base,
        lambda root, meta=meta: (os.mkfifo(root / "x.fifo"), setter(meta, "file_path", str(root / "x.fifo"), frame=1)(root)),
        ("x.fifo", "is a FIFO"), allow_outside_paths=True)

for base in ("blender", "ngp", "llff", "npz"):
    main = MAIN_FILE[base]
    add("path", "metadata-is-fifo", base, fifo_at(main), (main, "is a FIFO (named pipe); only regular files are read"))
    add("path", "metadata-is-folder", base, folder_at(main), (main, "is a folder; only regular files are read"))
    add("path", "metadata-symlink-loop", base, loop_at(main), (main, "symlink loop"))
    add("path", "metadata-dev-null", base, symlink_at(main, "/dev/null"), (main, "is a character device"))
add("path", "llff-image-folder-outside", "llff",
    lambda root: (shutil.move(root / "images", root.parent / f"{root.name}-images"), (root / "images").symlink_to(root.parent / f"{root.name}-images")),
    ("poses_bounds.npy: image folder", "outside the scene folder"))


def scene_path(make: Callable[[Path], str]):
    return lambda root: make(root)


for id, make, expect in [
    ("nonexistent", lambda root: str(root / "nope"), ("{root}/nope: no such file or folder",)),
    ("nul-byte", lambda root: str(root) + "\x00x", ("{root}\\x00x: the file name contains a NUL byte",)),
    ("over-long", lambda root: str(root / ("x" * 5000)), ("xxxxxxxxxx…(5", "cannot read file: file name too long")),
    ("symlink-loop", lambda root: (os.symlink("l2", root / "l1"), os.symlink("l1", root / "l2"), str(root / "l1"))[-1],
     ("{root}/l1: cannot read file: symlink loop",)),
    ("unknown-format", lambda root: ((root / "other").mkdir(), (root / "other" / "notes.txt").write_text("x"), str(root / "other"))[-1],
     ("{root}/other: unknown scene format; tried blender: a folder with transforms_train.json", "npz: an .npz file")),
    ("unknown-file", lambda root: ((root / "notes.txt").write_text("x"), str(root / "notes.txt"))[-1],
     ("{root}/notes.txt: unknown scene format; tried",)),
    ("two-npz", lambda root: (np.savez(root / "b.npz", **npz_arrays()), str(root))[-1],
     ("{root}: 2 .npz files (b.npz, scene.npz); name the one to load",)),
    ("fifo-scene", lambda root: (os.mkfifo(root / "s.npz"), str(root / "s.npz"))[-1], ("{root}/s.npz: is a FIFO",)),
    ("not-a-path", lambda root: 42, ("scene path must be a string or path, got int",)),
]:
    add("path", f"scene-{id}", "npz", scene_path(make), expect)


# ---------------------------------------------------------------- running the corpus

@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_hostile_scene(c: Case, templates, tmp_path, monkeypatch) -> None:
    root = clone(templates[c.base], tmp_path / "scene")
    mutate = c.mutate
    target = mutate(root, monkeypatch) if mutate is oversized_json else mutate(root)
    path = target if isinstance(target, (str, int)) else root
    with pytest.raises(SceneError) as info:
        load_scene(path, **c.kwargs)
    message = str(info.value)
    for fragment in c.expect:
        fragment = fragment.replace("{root}", str(root))
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(message) < 2000, "messages stay readable"


def test_corpus_size() -> None:
    counts: dict[str, int] = {}
    for c in CASES:
        counts[c.category] = counts.get(c.category, 0) + 1
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES), counts
    assert set(counts) == {"camera", "frames", "json", "npy", "image", "path"}


# ---------------------------------------------------------------- render-time camera checks

GOOD = dict(c2w=pose4(0), fx=FOCAL, fy=FOCAL, cx=12.0, cy=12.0, width=24, height=24, near=2.0, far=6.0)


def test_validate_camera_accepts_every_builtin_pose() -> None:
    for i in range(len(BUILTIN.cameras)):
        validate_camera(**{**GOOD, "c2w": BUILTIN.cameras.c2w[i]}, where=f"pose {i}")
    validate_camera(**GOOD, distortion=[0.01, 0, 0, 0, 0.001, 0])


@pytest.mark.parametrize("change, expect", [
    (dict(c2w=np.diag([-1.0, 1, 1, 1])), "determinant -1"),
    (dict(c2w=np.full((4, 4), np.nan)), "'c2w' is NaN or infinite"),
    (dict(c2w=np.vstack([np.eye(4)[:3], [1, 2, 3, 4]])), "'c2w' bottom row is [1.0, 2.0, 3.0, 4.0]"),
    (dict(c2w=np.eye(3)), "'c2w' must be a 3x4 or 4x4 matrix, got shape (3, 3)"),
    (dict(c2w="eye"), "'c2w' is not a numeric matrix"),
    (dict(fx=0.0), "focal length fx = 0 px"),
    (dict(fy=np.inf), "camera field 'fy' is NaN or infinite"),
    (dict(cx=-100.0), "principal point cx = -100 px"),
    (dict(width=0), "image width must be 1..1048576 pixels, got 0"),
    (dict(width=24.5), "'width' must be a whole number of pixels"),
    (dict(height=True), "'height' must be a number, got bool"),
    (dict(near=0.0), "need 0 < near < far"),
    (dict(far=np.inf), "need 0 < near < far"),
    (dict(near=7.0), "need 0 < near < far <= 1e+06 (finite), got near=7.0, far=6.0"),
    (dict(distortion=[np.nan, 0, 0, 0, 0, 0]), "distortion coefficient 'k1' = nan is NaN or infinite"),
    (dict(distortion=[0, 0, 0, 0, 0, 50]), "distortion coefficient 'p2' = 50.0 is beyond +-10"),
    (dict(distortion=[0, 0]), "distortion has shape (1, 2), expected (1, 6)"),
])
def test_validate_camera_names_the_problem(change: dict, expect: str) -> None:
    with pytest.raises(SceneError) as info:
        validate_camera(**{**GOOD, **change}, where="render(): pose 3")
    assert str(info.value).startswith("render(): pose 3: ") and expect in str(info.value), str(info.value)
