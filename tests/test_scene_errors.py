"""Every bad input raises one SceneError (a ValueError) naming the file and the problem."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nerfprune.errors import SceneError
from nerfprune.scene import load_scene
from test_scene_formats import write_blender, write_llff, write_ngp, write_npz


def edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def assert_scene_error(path, *fragments: str, **kw) -> None:
    with pytest.raises(SceneError) as info:
        load_scene(path, **kw)
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_missing_image(tmp_path) -> None:
    (write_blender(tmp_path) / "train" / "r_1.png").unlink()
    assert_scene_error(tmp_path, f"{tmp_path}/train/r_1.png: cannot read file", "No such file")


def test_truncated_png(tmp_path) -> None:
    p = write_blender(tmp_path) / "val" / "r_0.png"
    p.write_bytes(p.read_bytes()[:60])
    assert_scene_error(tmp_path, f"{p}: truncated PNG")


def test_corrupt_png(tmp_path) -> None:
    p = write_blender(tmp_path) / "train" / "r_2.png"
    data = bytearray(p.read_bytes())
    data[40:60] = b"\x00" * 20  # inside the image data: CRC / zlib errors
    p.write_bytes(bytes(data))
    assert_scene_error(tmp_path, f"{p}: corrupt PNG")


def jpeg(size=(12, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_truncated_jpeg(tmp_path) -> None:
    p = write_ngp(tmp_path) / "images" / "0003.png"
    data = jpeg()
    p.write_bytes(data[: len(data) * 2 // 3])
    assert_scene_error(tmp_path, f"{p}: truncated JPEG")


def test_corrupt_jpeg(tmp_path) -> None:
    p = write_ngp(tmp_path) / "images" / "0004.png"
    data = bytearray(jpeg())
    data[2:40] = b"\xff\x01" * 19
    p.write_bytes(bytes(data))
    assert_scene_error(tmp_path, f"{p}: corrupt JPEG")


def test_not_an_image(tmp_path) -> None:
    p = write_ngp(tmp_path) / "images" / "0002.png"
    p.write_text("hello")
    assert_scene_error(tmp_path, f"{p}: not a PNG or JPEG image")


def test_mismatched_image_sizes(tmp_path) -> None:
    p = write_blender(tmp_path) / "train" / "r_2.png"
    Image.new("RGBA", (5, 5)).save(p)
    assert_scene_error(tmp_path, f"{p}: image is 5x5 but", "all views of a scene must share one size")


def test_image_size_disagrees_with_intrinsics(tmp_path) -> None:
    edit_json(write_ngp(tmp_path) / "transforms.json", lambda d: d.update(w=20))
    assert_scene_error(tmp_path, "transforms.json: frame 0: image is 12x8 but its intrinsics say 20x8")


def test_nan_pose(tmp_path) -> None:
    path = write_ngp(tmp_path) / "transforms.json"
    path.write_text(path.read_text().replace("[0, 0, 0, 1]", "[NaN, 0, 0, 1]", 1).replace("[0.0, 0.0, 0.0, 1.0]", "[NaN, 0, 0, 1]", 1))
    assert_scene_error(tmp_path, f"{path}: frame 0: 'transform_matrix' has NaN or infinite values")


def test_infinite_pose_llff(tmp_path) -> None:
    path = write_llff(tmp_path) / "poses_bounds.npy"
    arr = np.load(path)
    arr[3, 3] = np.inf
    np.save(path, arr)
    assert_scene_error(tmp_path, f"{path}: view 3: pose or bounds have NaN or infinite values")


def test_non_rigid_pose(tmp_path) -> None:
    path = write_blender(tmp_path) / "transforms_train.json"
    edit_json(path, lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(0, 2.5))
    assert_scene_error(tmp_path, f"{path}: frame 1: pose rotation is not orthonormal")


def test_empty_frame_list(tmp_path) -> None:
    path = write_ngp(tmp_path) / "transforms.json"
    edit_json(path, lambda d: d.update(frames=[]))
    assert_scene_error(tmp_path, f"{path}: 'frames' is empty")


def test_unknown_format(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert_scene_error(tmp_path, f"{tmp_path}: unknown scene format")
    assert_scene_error(tmp_path / "notes.txt", "unknown scene format")
    assert_scene_error(tmp_path / "nope", f"{tmp_path}/nope: no such file or folder")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(camera_angle_x="wide"), "'camera_angle_x' must be a number, got str"),
        (lambda d: d.update(frames={"a": 1}), "'frames' must be a list, got dict"),
        (lambda d: d["frames"][1].update(transform_matrix="eye"), "frame 1: 'transform_matrix' must be a list, got str"),
        (lambda d: d["frames"][0].update(transform_matrix=[[1, 2]]), "frame 0: 'transform_matrix' must be a 4x4"),
        (lambda d: d["frames"][2].update(file_path=7), "frame 2: 'file_path' must be a non-empty string, got int"),
        (lambda d: d["frames"].__setitem__(0, "r_0"), "frame 0: must be a JSON object, got str"),
        (lambda d: d.pop("camera_angle_x"), "missing 'camera_angle_x'"),
    ],
)
def test_wrong_json_types_blender(tmp_path, edit, message) -> None:
    path = write_blender(tmp_path) / "transforms_train.json"
    edit_json(path, edit)
    assert_scene_error(tmp_path, f"{path}: ", message)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(fl_x=True), "'fl_x' must be a number, got bool"),
        (lambda d: d["frames"][3].update(w=10.5), "frame 3: 'w' must be a whole number of pixels"),
        (lambda d: d.update(h=1e300), "'h' must be a whole number of pixels in 0..1048576"),
        (lambda d: d.update(cx=1e300), "frame 0: principal point cx = 1e+300 px is more than 1 image width outside"),
        (lambda d: d.update(train_filenames=["nope.png"]), "'train_filenames' names 'nope.png'"),
        (lambda d: [d.pop(k) for k in ("fl_x", "fl_y")], "frame 0: no focal length"),
    ],
)
def test_wrong_json_values_ngp(tmp_path, edit, message) -> None:
    path = write_ngp(tmp_path) / "transforms.json"
    edit_json(path, edit)
    assert_scene_error(tmp_path, f"{path}: ", message)


def test_invalid_json_syntax(tmp_path) -> None:
    path = write_ngp(tmp_path) / "transforms.json"
    path.write_text('{"frames": [}')
    assert_scene_error(tmp_path, f"{path}: invalid JSON: ", "line 1")
    path.write_text("[1, 2]")
    assert_scene_error(tmp_path, f"{path}: expected a JSON object at the top level, got list")


def test_npz_and_llff_structure(tmp_path) -> None:
    npz = tmp_path / "a.npz"
    np.savez(npz, images=np.zeros((2, 4, 4, 3)), poses=np.zeros((2, 4, 4)))
    assert_scene_error(npz, f"{npz}: missing array 'focal'")
    (tmp_path / "b.npz").write_bytes(b"not a zip")
    assert_scene_error(tmp_path / "b.npz", f"{tmp_path}/b.npz: cannot read as a .npz archive")
    llff = write_llff(tmp_path / "llff")
    next((llff / "images_4").iterdir()).unlink()
    assert_scene_error(llff, "images_4: 8 images but poses_bounds.npy has 9 poses")


def test_bad_arguments_are_value_errors(tmp_path) -> None:
    write_npz(tmp_path / "s.npz")
    with pytest.raises(ValueError, match="background must be one of white, black, random"):
        load_scene(tmp_path, background="grey")
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        load_scene(tmp_path, factor=0)
    assert_scene_error(tmp_path, "views= must be distinct indices in 0..8", views=[3, 9])


# --- fuzzing the JSON path: any JSON value anywhere gives a Scene or one SceneError ---

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
KEYS = ["fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "camera_angle_x", "aabb_scale", "frames", "file_path",
        "transform_matrix", "train_filenames", "offset", "scale"]


@pytest.fixture(scope="module")
def ngp_dir(tmp_path_factory) -> Path:
    return write_ngp(tmp_path_factory.mktemp("ngp_fuzz"), n=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=JSON_VALUES, in_frame=st.booleans(), frame=st.integers(0, 2))
def test_fuzz_json_fields(ngp_dir: Path, key: str, value, in_frame: bool, frame: int) -> None:
    doc = json.loads((ngp_dir / "transforms.json").read_text())
    (doc["frames"][frame] if in_frame else doc)[key] = value
    path = ngp_dir / "fuzz.json"
    path.write_text(json.dumps(doc))
    try:
        scene = load_scene(path)
    except SceneError as e:
        assert str(e).startswith(str(ngp_dir)), str(e)
    else:
        assert scene.images.shape[0] == len(scene.cameras)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzz_json_bytes(ngp_dir: Path, data: bytes) -> None:
    path = ngp_dir / "fuzz_bytes.json"
    path.write_bytes(data)
    with pytest.raises(SceneError, match=str(path)):
        load_scene(path)
