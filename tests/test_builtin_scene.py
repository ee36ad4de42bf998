"""The built-in scene: deterministic, consistent cameras and depth, valid through the scene types."""

import numpy as np
import pytest

from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene


def test_same_seed_same_bytes_other_seed_other_cameras():
    cfg = BuiltinSceneConfig(width=16, height=12, n_views=9, n_test=2)
    a, b = make_builtin_scene(cfg), make_builtin_scene(cfg)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.cameras.c2w, b.cameras.c2w)
    c = make_builtin_scene(BuiltinSceneConfig(width=16, height=12, n_views=9, n_test=2, seed=1))
    assert not np.allclose(a.cameras.c2w[:9], c.cameras.c2w[:9])


def test_shapes_splits_and_conventions(tiny_scene):
    s = tiny_scene
    assert s.images.shape == (14, 24, 24, 4) and s.images.dtype == np.uint8
    assert s.depth.shape == (14, 24, 24)
    assert sorted(np.concatenate(list(s.splits.values())).tolist()) == list(range(14))
    assert set(s.splits["val"]) == {0, 8}
    # Cameras look at the origin: -z axis of every c2w points from the eye to the origin.
    eyes = s.cameras.c2w[:, :, 3]
    forward = -s.cameras.c2w[:, :, 2]
    np.testing.assert_allclose(forward, -eyes / np.linalg.norm(eyes, axis=1, keepdims=True), atol=1e-5)
    # All cameras are above the floor and at the configured radius.
    np.testing.assert_allclose(np.linalg.norm(eyes, axis=1), 4.0, rtol=1e-5)
    assert (eyes[:, 2] > 0).all()


def test_alpha_is_exactly_where_depth_is_finite(tiny_scene):
    alpha = tiny_scene.images[..., 3]
    finite = np.isfinite(tiny_scene.depth)
    assert np.array_equal(alpha == 255, finite)
    assert np.array_equal(alpha == 0, ~finite)
    assert 0.1 < finite.mean() < 0.9  # both objects and background are visible
    d = tiny_scene.depth[finite]
    assert (d > tiny_scene.cameras.near).all() and (d < tiny_scene.cameras.far).all()


def test_depth_points_lie_on_the_primitives(tiny_scene):
    """Back-project the depth map of a view: every point lies on one of the analytic surfaces."""
    s = tiny_scene
    v = 3
    c2w = s.cameras.c2w[v].astype(np.float64)
    f, cx = float(s.cameras.fx[v]), float(s.cameras.cx[v])
    rows, cols = np.nonzero(np.isfinite(s.depth[v]))
    t = s.depth[v][rows, cols].astype(np.float64)
    cam = np.stack([(cols + 0.5 - cx) / f, -(rows + 0.5 - cx) / f, -np.ones_like(t)], 1)
    pts = c2w[:, 3] + t[:, None] * (cam @ c2w[:, :3].T)
    on_floor = np.abs(pts[:, 2] + 0.5) < 1e-3
    on_sphere1 = np.abs(np.linalg.norm(pts - [0.35, 0.3, 0.0], axis=1) - 0.45) < 1e-3
    on_sphere2 = np.abs(np.linalg.norm(pts - [-0.45, -0.25, -0.2], axis=1) - 0.3) < 1e-3
    lo, hi = np.array([-0.1, -0.85, -0.5]), np.array([0.55, -0.3, 0.05])
    in_box = ((pts > lo - 1e-3) & (pts < hi + 1e-3)).all(1)
    assert (on_floor | on_sphere1 | on_sphere2 | in_box).all()


def test_images_float_composites_alpha_on_background(tiny_scene):
    rgb = tiny_scene.images_float([0])[0]
    transparent = tiny_scene.images[0, ..., 3] == 0
    assert np.allclose(rgb[transparent], 1.0)  # white background
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.float32


@pytest.mark.parametrize("field,value,message", [
    ("fx", np.nan, "view 1: camera field 'fx' is NaN"),
    ("fx", -1.0, r"view 1: focal length fx = -1 px is outside 0.001..1000 x the image width \(24 px\)"),
    ("fy", 1e-30, "view 1: focal length fy = 1e-30 px is outside"),
    ("cx", 1e4, "view 1: principal point cx = 10000 px is more than 1 image width outside the image"),
    ("cy", -30.0, "view 1: principal point cy = -30 px"),
    ("width", 0, "view 1: image width must be 1..1048576 pixels, got 0"),
])
def test_camera_validation_names_the_problem(tiny_scene, field, value, message):
    from nerfprune.errors import SceneError

    cams = tiny_scene.cameras.subset(range(3))
    getattr(cams, field)[1] = value
    with pytest.raises(SceneError, match=message) as info:
        cams.validate("somewhere/transforms.json")
    assert str(info.value).startswith("somewhere/transforms.json: ")


def test_non_rigid_pose_is_rejected(tiny_scene):
    from nerfprune.errors import SceneError

    cams = tiny_scene.cameras.subset(range(3))
    cams.c2w[2, :, 0] *= 2.0  # a scaled axis
    with pytest.raises(SceneError, match="view 2: pose rotation is not orthonormal"):
        cams.validate("x.json")
