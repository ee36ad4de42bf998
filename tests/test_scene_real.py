"""The real scenes in <repo>/../shared/datasets (override: NERFPRUNE_DATASETS): mic (Blender),
fox (instant-ngp), fern (LLFF). Frame counts, shapes, intrinsics, the first pose, and pixels
checked against Pillow. Only a few views are decoded, to stay fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfprune.scene import load_scene
from nerfprune.scene.formats.blender import read_blender
from nerfprune.scene.formats.llff import read_llff
from nerfprune.scene.formats.ngp import read_ngp

DATASETS = Path(os.environ.get("NERFPRUNE_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


def scene_dir(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset '{name}' not found at {path} (set NERFPRUNE_DATASETS to the shared datasets folder)")
    return path


def pillow(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_mic_blender() -> None:
    root = scene_dir("mic")
    frames = read_blender(root)
    assert {k: len(v) for k, v in frames.splits.items()} == {"train": 100, "val": 100, "test": 200}
    scene = load_scene(root, views=[0, 1, 150, 399])
    assert scene.images.shape == (4, 800, 800, 4)
    assert {k: v.tolist() for k, v in scene.splits.items()} == {"train": [0, 1], "val": [2], "test": [3]}
    angle = json.loads((root / "transforms_train.json").read_text())["camera_angle_x"]
    np.testing.assert_allclose(scene.cameras.fx, 400 / np.tan(angle / 2), rtol=1e-6)
    np.testing.assert_allclose(scene.cameras.cx, 400.0)
    first = json.loads((root / "transforms_train.json").read_text())["frames"][0]["transform_matrix"]
    np.testing.assert_array_equal(scene.cameras.c2w[0], np.asarray(first, np.float32)[:3])
    for i, rel in enumerate(["train/r_0.png", "train/r_1.png", "val/r_50.png", "test/r_199.png"]):
        np.testing.assert_array_equal(scene.images[i], pillow(root / rel))
    alpha = scene.images[..., 3]
    assert 0.75 < (alpha == 0).mean() < 0.95  # mostly transparent, as the README says


def test_mic_downscaled_keeps_intrinsics_consistent() -> None:
    scene = load_scene(scene_dir("mic"), views=[0], factor=4, background="black")
    assert scene.images.shape == (1, 200, 200, 4)
    assert scene.cameras.cx[0] == 100.0 and scene.cameras.width[0] == 200
    ref = pillow(DATASETS / "mic" / "train" / "r_0.png").astype(np.float64).reshape(200, 4, 200, 4, 4)
    alpha_mean = ref[..., 3].mean((1, 3))
    np.testing.assert_allclose(scene.images[0, ..., 3], alpha_mean, atol=0.51)
    composited = scene.images_float()[0]  # on black: mean of premultiplied colour
    want = (ref[..., :3] * ref[..., 3:4] / 255.0).mean((1, 3)) / 255.0
    assert np.abs(composited - want).max() < 2.5 / 255


def test_fox_instant_ngp() -> None:
    root = scene_dir("fox")
    assert len(read_ngp(root / "transforms.json").paths) == 67
    scene = load_scene(root, views=[0, 9])
    assert scene.images.shape == (2, 1920, 1080, 3)
    c = scene.cameras
    np.testing.assert_allclose([c.fx[0], c.fy[0], c.cx[0], c.cy[0]], [1375.52, 1374.49, 554.558, 965.268], rtol=1e-6)
    np.testing.assert_allclose(c.distortion[0], [0.0578421, -0.0805099, 0, 0, -0.000980296, 0.00015575], rtol=1e-6)
    doc = json.loads((root / "transforms.json").read_text())
    np.testing.assert_array_equal(c.c2w[0], np.asarray(doc["frames"][0]["transform_matrix"], np.float32)[:3])
    assert {k: v.tolist() for k, v in scene.splits.items()} == {"train": [1], "val": [0], "test": [0]}  # view 8 is held out
    for i, name in enumerate([doc["frames"][0]["file_path"], doc["frames"][9]["file_path"]]):
        diff = np.abs(scene.images[i].astype(int) - pillow(root / name).astype(int))
        assert diff.max() <= 6 and diff.mean() < 0.5  # JPEG decoders differ by rounding only
    assert scene.meta["aabb_scale"] == 4


def original_llff_first_pose(raw: np.ndarray) -> np.ndarray:
    """The original NeRF loader (load_llff.py, bd_factor=0.75, recenter), written out independently."""
    poses = raw[:, :-2].reshape([-1, 3, 5]).transpose([1, 2, 0])
    bds = raw[:, -2:].transpose([1, 0])
    poses = np.concatenate([poses[:, 1:2, :], -poses[:, 0:1, :], poses[:, 2:, :]], 1)
    poses = np.moveaxis(poses, -1, 0).astype(np.float32)
    bds = np.moveaxis(bds, -1, 0).astype(np.float32)
    sc = 1.0 / (bds.min() * 0.75)
    poses[:, :3, 3] *= sc
    norm = lambda x: x / np.linalg.norm(x)  # noqa: E731
    center = poses[:, :3, 3].mean(0)
    z = norm(poses[:, :3, 2].sum(0))
    up = poses[:, :3, 1].sum(0)
    x = norm(np.cross(up, z))
    c2w = np.concatenate([np.stack([x, norm(np.cross(z, x)), z, center], 1), [[0, 0, 0, 1]]])
    full = np.concatenate([poses[:, :3, :4], np.tile([[[0, 0, 0, 1.0]]], (len(poses), 1, 1))], 1)
    return (np.linalg.inv(c2w) @ full)[0, :3, :4]


def test_fern_llff() -> None:
    root = scene_dir("fern")
    raw = np.load(root / "poses_bounds.npy")
    assert len(read_llff(root).paths) == 20
    scene = load_scene(root, views=[0, 8, 19])
    assert scene.images.shape == (3, 378, 504, 3)
    np.testing.assert_allclose(scene.cameras.fx, raw[[0, 8, 19], 14] * 504 / 4032, rtol=1e-6)
    np.testing.assert_allclose(scene.cameras.c2w[0], original_llff_first_pose(raw), atol=2e-5)
    assert scene.cameras.near == pytest.approx(0.9 / 0.75)
    names = sorted((root / "images_8").iterdir())
    for i, v in enumerate([0, 8, 19]):
        np.testing.assert_array_equal(scene.images[i], pillow(names[v]))
    assert scene.splits["val"].tolist() == [0, 1]  # views 0 and 8 are held out (every 8th)


@pytest.mark.parametrize("name", ["mic", "fox", "fern"])
def test_every_view_passes_the_camera_and_frame_checks(name: str, monkeypatch) -> None:
    """All frames of the real scenes pass validation (rotation tolerance, focal / principal point
    bounds, duplicates, splits); pixels are not decoded here, to stay fast."""
    import nerfprune.scene.loading as loading

    def no_pixels(paths, factor):
        w, h, alpha = loading.probe_image(paths[0])
        return np.zeros((len(paths), h // factor, w // factor, 4 if alpha else 3), np.uint8)

    monkeypatch.setattr(loading, "decode_images", no_pixels)
    scene = load_scene(scene_dir(name))
    assert len(scene.cameras) == {"mic": 400, "fox": 67, "fern": 20}[name]
    assert len(scene.splits["train"]) > 0
