"""RayBatcher: pure function of (seed, iteration), epochs without replacement, targets composited."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.scene import BatchConfig, Cameras, RayBatcher, Scene


def tiny_scene(n: int = 3, h: int = 5, w: int = 6, channels: int = 4, seed: int = 0, random_bg: bool = False) -> Scene:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4, dtype=np.float32)[:3], (n, 1, 1))
    ones = np.ones(n, np.float32)
    cams = Cameras(fx=ones * 10, fy=ones * 10, cx=ones * w / 2, cy=ones * h / 2,
                   width=np.full(n, w, np.int32), height=np.full(n, h, np.int32), c2w=c2w, near=1.0, far=5.0)
    idx = np.arange(n)
    return Scene(name="tiny", source="tiny", images=rng.integers(0, 256, (n, h, w, channels), dtype=np.uint8),
                 cameras=cams, splits={"train": idx[1:], "val": idx[:1]}, background=(0.2, 0.4, 0.6),
                 random_background=random_bg)


def keys(b) -> list[tuple[int, int, int]]:
    return list(zip(b.view.tolist(), b.row.tolist(), b.col.tolist()))


def reference_rgb(scene: Scene, b) -> np.ndarray:
    px = scene.images[b.view, b.row, b.col].astype(np.float32) / 255.0
    alpha = px[:, 3:4] if px.shape[1] == 4 else 1.0
    return px[:, :3] * alpha + b.background * (1.0 - alpha)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 70), seed=st.integers(0, 2**32), n=st.integers(2, 4), h=st.integers(1, 6), w=st.integers(1, 6))
def test_each_epoch_visits_every_pixel_once(batch: int, seed: int, n: int, h: int, w: int) -> None:
    scene = tiny_scene(n, h, w)
    batcher = RayBatcher(scene, batch_size=batch, seed=seed)
    m = batcher.rays_per_epoch
    assert m == (n - 1) * h * w
    stream = [k for it in range(-(-2 * m // batch)) for k in keys(batcher.batch(it))]
    for epoch in (stream[:m], stream[m:2 * m]):
        assert sorted(epoch) == sorted((v, r, c) for v in range(1, n) for r in range(h) for c in range(w))


def test_batches_are_pure_functions_of_seed_and_iteration() -> None:
    scene = tiny_scene()
    a, b = RayBatcher(scene, batch_size=16, seed=5), RayBatcher(scene, batch_size=16, seed=5)
    for it in (7, 0, 10**9):  # any order, any iteration: no state
        assert keys(a.batch(it)) == keys(b.batch(it))
        np.testing.assert_array_equal(a.batch(it).rgb, b.batch(it).rgb)
    assert keys(a.batch(0)) != keys(RayBatcher(scene, batch_size=16, seed=6).batch(0))
    assert keys(a.batch(0)) != keys(a.batch(1))


@pytest.mark.parametrize("channels", [3, 4])
def test_targets_are_composited_on_the_returned_background(channels: int) -> None:
    scene = tiny_scene(channels=channels)
    b = RayBatcher(scene, batch_size=40, seed=1).batch(2)
    assert b.rgb.dtype == np.float32 and b.rgb.shape == (40, 3) and b.view.dtype == np.int64
    np.testing.assert_allclose(b.background, np.tile([0.2, 0.4, 0.6], (40, 1)), atol=1e-7)
    np.testing.assert_allclose(b.rgb, reference_rgb(scene, b), atol=1e-6)


def test_random_background_per_ray_is_seeded() -> None:
    scene = tiny_scene(random_bg=True)
    batcher = RayBatcher(scene, batch_size=64, seed=3)
    b = batcher.batch(4)
    assert ((b.background >= 0) & (b.background <= 1)).all()
    assert len(np.unique(b.background[:, 0])) > 50  # a colour per ray
    np.testing.assert_allclose(b.rgb, reference_rgb(scene, b), atol=1e-6)
    np.testing.assert_array_equal(b.background, batcher.batch(4).background)
    assert not np.array_equal(b.background, batcher.batch(5).background)


def test_precrop_then_full_image() -> None:
    scene = tiny_scene(n=2, h=20, w=40)
    batcher = RayBatcher(scene, batch_size=50, seed=0, precrop_iters=4, precrop_frac=0.5)
    for it in range(4):
        b = batcher.batch(it)
        assert ((b.row >= 5) & (b.row < 15)).all() and ((b.col >= 10) & (b.col < 30)).all()
    rows = np.concatenate([batcher.batch(it).row for it in range(4, 20)])
    assert ((rows < 5) | (rows >= 15)).any()


def test_single_image_mode_uses_one_view_per_batch_and_all_views_per_round() -> None:
    scene = tiny_scene(n=5)
    batcher = RayBatcher(scene, batch_size=8, seed=2, single_image=True)
    views = []
    for it in range(8):
        b = batcher.batch(it)
        assert len(set(b.view.tolist())) == 1
        assert len(set(keys(b))) == 8  # without replacement inside the batch
        views.append(int(b.view[0]))
    assert sorted(views[:4]) == [1, 2, 3, 4] and sorted(views[4:]) == [1, 2, 3, 4]


def test_to_torch_and_bad_arguments() -> None:
    torch = pytest.importorskip("torch", reason="torch is needed only for RayBatch.to_torch")
    scene = tiny_scene()
    b = RayBatcher(scene, batch_size=4).batch(0).to_torch()
    assert b.rgb.dtype == torch.float32 and b.view.dtype == torch.int64
    with pytest.raises(ValueError, match="batch_size"):
        RayBatcher(scene, batch_size=0)
    with pytest.raises(ValueError, match="precrop_frac"):
        RayBatcher(scene, precrop_frac=0.0)
    with pytest.raises(ValueError, match="no split 'test'"):
        RayBatcher(scene, split="test")


def test_from_config_equals_keyword_construction() -> None:
    scene = tiny_scene()
    cfg = BatchConfig(batch_size=12, seed=4, precrop_iters=1, single_image=True)
    a = RayBatcher.from_config(scene, cfg).batch(3)
    b = RayBatcher(scene, batch_size=12, seed=4, precrop_iters=1, single_image=True).batch(3)
    assert keys(a) == keys(b)
