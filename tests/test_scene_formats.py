"""The four formats on small synthetic datasets: same Scene type, validated, conventions converted.

The writers here are also used by test_scene_errors.py to build broken datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfprune.scene import FORMATS, detect_format, format_help, load_scene
from nerfprune.scene.builtin import look_at

W, H = 12, 8


def pose(i: int) -> np.ndarray:
    """[3, 4] OpenGL camera-to-world on a circle around the origin."""
    a = 0.7 * i
    return look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.5]))


def image(i: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (H, W, channels), dtype=np.uint8)


def write_blender(root: Path, counts=(3, 1, 2), ext: bool = False) -> Path:
    k = 0
    for split, count in zip(("train", "val", "test"), counts):
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for j in range(count):
            Image.fromarray(image(k, 4)).save(root / split / f"r_{j}.png")
            m = np.concatenate([pose(k), [[0, 0, 0, 1]]]).tolist()
            frames.append({"file_path": f"./{split}/r_{j}" + (".png" if ext else ""), "transform_matrix": m})
            k += 1
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    return root


def write_ngp(root: Path, n: int = 9, per_frame: bool = False, filenames: bool = False) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    doc: dict = {"fl_x": 11.5, "fl_y": 11.0, "cx": 6.2, "cy": 3.9, "w": float(W), "h": float(H),
                 "k1": 0.01, "k2": -0.02, "p1": 0.001, "p2": 0.0, "aabb_scale": 2, "frames": []}
    for i in range(n):
        Image.fromarray(image(i, 3)).save(root / "images" / f"{i:04d}.png")
        frame = {"file_path": f"images/{i:04d}.png", "transform_matrix": np.concatenate([pose(i), [[0, 0, 0, 1]]]).tolist()}
        if per_frame:
            frame.update(fl_x=10.0 + i, cx=6.0)
        doc["frames"].append(frame)
    if filenames:
        doc["train_filenames"] = [f"images/{i:04d}.png" for i in range(n - 2)]
        doc["val_filenames"] = [f"{n - 2:04d}.png"]
        doc["test_filenames"] = [f"./images/{n - 1:04d}.png"]
    (root / "transforms.json").write_text(json.dumps(doc))
    return root


def write_llff(root: Path, n: int = 9, folder: str = "images_4") -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        Image.fromarray(image(i, 3)).save(root / folder / f"img{i:03d}.png")
        c2w = pose(i)  # OpenGL [right, up, back, t] -> LLFF [down, right, back, t]
        llff = np.stack([-c2w[:, 1], c2w[:, 0], c2w[:, 2], c2w[:, 3]], 1)
        hwf = np.array([[H * 4], [W * 4], [40.0]])
        rows.append(np.concatenate([np.concatenate([llff, hwf], 1).ravel(), [2.0 + i * 0.1, 9.0]]))
    np.save(root / "poses_bounds.npy", np.asarray(rows))
    return root


def write_npz(path: Path, n: int = 9, float_images: bool = True) -> Path:
    images = np.stack([image(i, 3) for i in range(n)])
    poses = np.stack([np.concatenate([pose(i), [[0, 0, 0, 1]]]) for i in range(n)])
    np.savez(path, images=images / 255.0 if float_images else images, poses=poses, focal=np.float64(13.0))
    return path


def test_blender(tmp_path) -> None:
    scene = load_scene(write_blender(tmp_path))
    assert detect_format(tmp_path)[0] == "blender" and scene.meta["format"] == "blender"
    assert scene.images.shape == (6, H, W, 4)
    assert {k: v.tolist() for k, v in scene.splits.items()} == {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    np.testing.assert_allclose(scene.cameras.fx, 0.5 * W / np.tan(0.4), rtol=1e-6)
    np.testing.assert_allclose(scene.cameras.c2w[4], pose(4), atol=1e-6)
    np.testing.assert_array_equal(scene.images[5], image(5, 4))
    assert (scene.cameras.near, scene.cameras.far) == (2.0, 6.0)


def test_blender_file_path_with_extension_views_factor_background(tmp_path) -> None:
    write_blender(tmp_path, ext=True)
    scene = load_scene(tmp_path / "transforms_val.json", factor=2, background="black", views=[1, 3, 5])
    assert scene.images.shape == (3, H // 2, W // 2, 4)
    assert {k: v.tolist() for k, v in scene.splits.items()} == {"train": [0], "val": [1], "test": [2]}
    np.testing.assert_allclose(scene.cameras.fx, 0.5 * W / np.tan(0.4) / 2, rtol=1e-6)
    assert scene.background == (0.0, 0.0, 0.0) and not scene.random_background
    assert load_scene(tmp_path, background="random", views=[0]).random_background


def test_ngp_top_level_intrinsics_distortion_and_holdout(tmp_path) -> None:
    scene = load_scene(write_ngp(tmp_path))
    assert scene.meta["format"] == "ngp" and scene.images.shape == (9, H, W, 3)
    assert scene.splits["val"].tolist() == [0, 8] and scene.splits["train"].tolist() == list(range(1, 8))
    np.testing.assert_allclose([scene.cameras.fx[0], scene.cameras.fy[0], scene.cameras.cx[0], scene.cameras.cy[0]], [11.5, 11.0, 6.2, 3.9], rtol=1e-6)
    np.testing.assert_allclose(scene.cameras.distortion[0], [0.01, -0.02, 0, 0, 0.001, 0], atol=1e-7)
    assert scene.aabb is not None and (scene.aabb[0] < 0).all() and 0 < scene.cameras.near < scene.cameras.far
    assert load_scene(tmp_path, holdout_every=3).splits["val"].tolist() == [0, 3, 6]


def test_ngp_per_frame_intrinsics_and_split_filenames(tmp_path) -> None:
    scene = load_scene(write_ngp(tmp_path, per_frame=True, filenames=True) / "transforms.json", factor=2)
    np.testing.assert_allclose(scene.cameras.fx, (10.0 + np.arange(9)) / 2, rtol=1e-6)
    np.testing.assert_allclose(scene.cameras.cx, 3.0)
    np.testing.assert_allclose(scene.cameras.fy, 5.5)  # top-level fl_y still applies
    assert {k: v.tolist() for k, v in scene.splits.items()} == {"train": list(range(7)), "val": [7], "test": [8]}


def test_llff_reorders_rescales_and_recentres(tmp_path) -> None:
    scene = load_scene(write_llff(tmp_path))
    assert scene.meta["format"] == "llff" and scene.images.shape == (9, H, W, 3)
    np.testing.assert_allclose(scene.cameras.fx, 40.0 * W / (W * 4), rtol=1e-6)  # focal scaled to the image width
    c2w = scene.cameras.c2w.astype(np.float64)
    # Recentred: the average pose is the identity; rescaled: near bound = 0.9 / 0.75.
    np.testing.assert_allclose(c2w[:, :, 3].mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(c2w[:, :, 2].sum(0) / np.linalg.norm(c2w[:, :, 2].sum(0)), [0, 0, 1], atol=1e-6)
    assert scene.cameras.near == pytest.approx(0.9 / 0.75)
    assert scene.cameras.far == pytest.approx(9.0 / 2.0 / 0.75)
    # Rigid motion + uniform scale preserve relative rotations: R0^T R1 as in the input.
    np.testing.assert_allclose(c2w[0, :, :3].T @ c2w[1, :, :3], pose(0)[:, :3].T @ pose(1)[:, :3], atol=1e-6)
    assert load_scene(tmp_path, factor=2).images.shape == (9, H // 2, W // 2, 3)


def test_llff_reads_an_existing_downscaled_folder(tmp_path) -> None:
    write_llff(tmp_path, folder="images_4")
    (tmp_path / "images_8").mkdir()
    for i in range(9):  # a half-size copy, filled with a constant so it is recognisable
        Image.new("RGB", (W // 2, H // 2), (i, 0, 0)).save(tmp_path / "images_8" / f"img{i:03d}.png")
    scene = load_scene(tmp_path, factor=2)
    assert scene.meta["image_dir"].endswith("images_8")
    assert scene.images.shape == (9, H // 2, W // 2, 3) and (scene.images[3, ..., 0] == 3).all()
    np.testing.assert_allclose(scene.cameras.fx, 40.0 * (W // 2) / (W * 4), rtol=1e-6)


def test_npz_float_and_uint8_images(tmp_path) -> None:
    scene = load_scene(write_npz(tmp_path / "tiny.npz"), factor=2)
    assert scene.meta["format"] == "npz" and scene.images.shape == (9, H // 2, W // 2, 3)
    np.testing.assert_allclose(scene.cameras.fx, 6.5)
    same = load_scene(write_npz(tmp_path / "tiny_u8.npz", float_images=False))
    np.testing.assert_array_equal(same.images[3], image(3, 3))
    assert detect_format(tmp_path / "tiny.npz")[0] == "npz"


def test_builtin_by_name() -> None:
    scene = load_scene("builtin")
    assert scene.name == "builtin" and scene.images.shape[0] == len(scene.cameras)


def test_format_registry_drives_detection_and_help(tmp_path) -> None:
    names = [f.name for f in FORMATS]
    assert names == ["blender", "ngp", "llff", "npz"]
    assert [name for name, _ in format_help()] == names
    assert all(help_text and "\n" not in help_text for _, help_text in format_help())
    writers = {"blender": write_blender, "ngp": write_ngp, "llff": write_llff}
    for name, write in writers.items():
        root = write(tmp_path / name)
        assert detect_format(root)[0] == name
        assert load_scene(root).meta["format"] == name
    assert detect_format(write_npz(tmp_path / "npz.npz"))[0] == "npz"
    assert detect_format(tmp_path / "blender" / "transforms_val.json") == ("blender", tmp_path / "blender")
    assert detect_format(tmp_path / "llff" / "poses_bounds.npy") == ("llff", tmp_path / "llff")


def test_val_frames_repeated_as_test_are_accepted_with_a_warning(tmp_path, caplog) -> None:
    """Datasets often ship transforms_test.json = transforms_val.json: accepted (logged), not an error."""
    write_blender(tmp_path, counts=(3, 2, 2))
    (tmp_path / "transforms_test.json").write_text((tmp_path / "transforms_val.json").read_text())
    with caplog.at_level("WARNING", logger="nerfprune.scene.loading"):
        scene = load_scene(tmp_path)
    assert scene.splits["test"].tolist() == [5, 6] and (scene.images[5] == scene.images[3]).all()
    assert "2 test frames repeat val frames" in caplog.text and "transforms_test.json: frame 0" in caplog.text


def test_allow_outside_paths_reads_images_elsewhere(tmp_path) -> None:
    root = write_ngp(tmp_path / "scene", n=3)
    shared = tmp_path / "shared_images"
    (root / "images").rename(shared)
    doc = json.loads((root / "transforms.json").read_text())
    for i, frame in enumerate(doc["frames"]):
        frame["file_path"] = str(shared / f"{i:04d}.png") if i else f"../shared_images/{i:04d}.png"
    (root / "transforms.json").write_text(json.dumps(doc))
    scene = load_scene(root, allow_outside_paths=True)
    np.testing.assert_array_equal(scene.images[2], image(2, 3))
    with pytest.raises(ValueError, match="allow_outside_paths must be True or False"):
        load_scene(root, allow_outside_paths="yes")
