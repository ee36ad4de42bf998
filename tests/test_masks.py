"""Mask bookkeeping (Rust core through `nerfprune.pruning.masks`) against numpy references."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from nerfprune.errors import MaskError, NativeArgumentError, NerfpruneError
from nerfprune.pruning import (
    global_magnitude_masks,
    keep_count,
    layerwise_magnitude_masks,
    magnitude_threshold,
    mask_overlap,
    mask_stats,
    masked_csr,
    random_masks,
    random_masks_like,
)

FAST = settings(max_examples=40, deadline=None)


@st.composite
def layers(draw, max_layers=4):
    """Weights on a coarse grid (many ties) with random current masks."""
    n = draw(st.integers(1, max_layers))
    weights, current = {}, {}
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (draw(st.integers(1, 7)), draw(st.integers(1, 9)))
        weights[f"net.l{i}.weight"] = torch.from_numpy(rng.integers(-6, 7, shape).astype(np.float32) * 0.5)
        current[f"net.l{i}.weight"] = torch.from_numpy(rng.random(shape) < draw(st.floats(0.0, 1.0)))
    return weights, current


def flat_live(weights, current):
    return np.concatenate([w.abs().numpy()[m.numpy()] for w, m in zip(weights.values(), current.values())])


def reference_kept(weights, current, k):
    """Sort-based: |w| descending, ties by (layer order, row-major position)."""
    cands = []
    for li, (w, m) in enumerate(zip(weights.values(), current.values())):
        flat_w, flat_m = w.abs().reshape(-1).numpy(), m.reshape(-1).numpy()
        cands += [(-float(flat_w[i]), li, i) for i in np.flatnonzero(flat_m)]
    return set((li, i) for _, li, i in sorted(cands)[:k])


@FAST
@given(layers(), st.floats(0.0, 1.0))
def test_global_threshold_matches_numpy_partition(data, fraction):
    weights, current = data
    live = flat_live(weights, current)
    k = keep_count(live.size, fraction)
    assert k == int(min(np.floor((1 - fraction) * live.size + 0.5), live.size))
    new = global_magnitude_masks(weights, current, fraction)
    threshold = magnitude_threshold(weights, current, fraction)
    if k == 0:
        assert threshold is None
    else:
        assert threshold == np.partition(live, live.size - k)[live.size - k]
    kept = np.concatenate([w.abs().numpy()[m.numpy()] for w, m in zip(weights.values(), new.values())])
    assert kept.size == k
    if k:
        pruned = np.concatenate([w.abs().numpy()[(c & ~m).numpy()] for w, c, m in zip(weights.values(), current.values(), new.values())])
        assert kept.min() >= threshold and (pruned.size == 0 or pruned.max() <= threshold)
    got = {(li, int(i)) for li, m in enumerate(new.values()) for i in np.flatnonzero(m.reshape(-1).numpy())}
    assert got == reference_kept(weights, current, k)
    for name in weights:
        assert new[name].dtype == torch.bool and new[name].shape == weights[name].shape
        assert not (new[name] & ~current[name]).any()


@FAST
@given(layers(), st.floats(0.0, 1.0))
def test_layerwise_prunes_the_same_fraction_in_every_layer(data, fraction):
    weights, current = data
    new = layerwise_magnitude_masks(weights, current, fraction)
    for name, w in weights.items():
        live = w.abs()[current[name]].numpy()
        k = keep_count(live.size, fraction)
        assert int(new[name].sum()) == k
        if 0 < k < live.size:
            thr = np.partition(live, live.size - k)[live.size - k]
            assert w.abs()[new[name]].min() >= thr >= w.abs()[current[name] & ~new[name]].max()


@FAST
@given(layers(), st.floats(0.0, 1.0), st.integers(0, 2**63), st.booleans())
def test_random_controls_keep_the_counts_and_are_seeded(data, fraction, seed, per_layer):
    weights, current = data
    a = random_masks(weights, current, fraction, seed, per_layer=per_layer)
    assert all(torch.equal(a[n], b) for n, b in random_masks(weights, current, fraction, seed, per_layer).items())
    live = {n: int(m.sum()) for n, m in current.items()}
    if per_layer:
        assert all(int(a[n].sum()) == keep_count(live[n], fraction) for n in weights)
    else:
        assert sum(int(m.sum()) for m in a.values()) == keep_count(sum(live.values()), fraction)
    assert all(not (a[n] & ~current[n]).any() for n in weights)
    like = random_masks_like(a, current, seed + 1)
    assert all(int(like[n].sum()) == int(a[n].sum()) and not (like[n] & ~current[n]).any() for n in weights)


def test_random_masks_differ_between_seeds():
    w = {"l.weight": torch.zeros(40, 50)}
    a, b = random_masks(w, None, 0.5, 1), random_masks(w, None, 0.5, 2)
    assert not torch.equal(a["l.weight"], b["l.weight"])


@FAST
@given(layers(), layers())
def test_stats_and_overlap_match_numpy(a, b):
    ma = a[1]
    mb = {n: (torch.rand(m.shape) < 0.5) for n, m in ma.items()}
    stats = mask_stats(ma)
    for n, m in ma.items():
        assert stats[n].live == int(m.sum()) and stats[n].total == m.numel()
        assert stats[n].sparsity == pytest.approx(1 - m.float().mean().item())
    assert stats["total"].live == sum(int(m.sum()) for m in ma.values())
    overlap = mask_overlap(ma, mb)
    for n in ma:
        inter, union = int((ma[n] & mb[n]).sum()), int((ma[n] | mb[n]).sum())
        assert (overlap[n].intersection, overlap[n].union) == (inter, union)
        assert overlap[n].jaccard == pytest.approx(inter / union if union else 1.0)


@FAST
@given(layers(), st.integers(0, 2**31))
def test_csr_equals_the_masked_dense_weight(data, seed):
    weights, current = data
    g = torch.Generator().manual_seed(seed)
    for name, m in current.items():
        w = torch.randn(m.shape, generator=g)
        csr = masked_csr(w, m)
        assert csr.layout == torch.sparse_csr
        assert torch.equal(csr.to_dense(), w * m)
        assert csr.values().numel() == int(m.sum())


@FAST
@given(layers(), st.sampled_from([(), (0,), (3,), (2, 0, 4)]))
def test_masks_round_trip_through_the_checkpoint(data, extra_shape):
    """The training checkpoint is the one place masks are saved: bool in, the same bool out."""
    masks = dict(data[1])
    masks["net.extra.bias"] = torch.rand(extra_shape) < 0.5
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.safetensors"
        save_checkpoint(path, Checkpoint(iteration=3, config={}, model={}, optimizer={}, masks=masks,
                                         scene_fingerprint="0" * 16, extra={}))
        back = load_checkpoint(path).masks
    assert set(back) == set(masks)
    for name, m in masks.items():
        assert back[name].dtype == torch.bool and back[name].shape == m.shape and torch.equal(back[name], m), name


def test_bad_arguments_raise_named_nerfprune_errors():
    w = {"a.weight": torch.randn(3, 3)}
    with pytest.raises(NativeArgumentError, match=r"fraction must lie in \[0, 1\]"):
        global_magnitude_masks(w, None, 1.5)
    with pytest.raises(NerfpruneError, match="a.weight: the weight contains NaN"):
        global_magnitude_masks({"a.weight": torch.tensor([1.0, float("nan")])}, None, 0.5)
    with pytest.raises(NerfpruneError, match=r"masked_csr: need a 2-D weight \[out, in\], got shape \(3,\)"):
        masked_csr(torch.ones(3), torch.ones(3, dtype=torch.bool))


def test_masks_that_do_not_fit_raise_mask_error():
    w = {"a.weight": torch.randn(3, 3)}
    with pytest.raises(MaskError, match=r"mask 'a.weight' has shape \(2, 2\), weight has \(3, 3\)"):
        global_magnitude_masks(w, {"a.weight": torch.ones(2, 2, dtype=torch.bool)}, 0.5)
    a = {"a.weight": torch.ones(3, 3, dtype=torch.bool)}
    with pytest.raises(MaskError, match=r"different layers: \['b.weight'\]"):
        mask_overlap(a, {**a, "b.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(MaskError, match=r"'a.weight' has shapes \(3, 3\) and \(9,\)"):
        mask_overlap(a, {"a.weight": torch.ones(9, dtype=torch.bool)})
    with pytest.raises(MaskError, match=r"the mask has shape \(3, 2\), the weight \(3, 3\)"):
        masked_csr(w["a.weight"], torch.ones(3, 2, dtype=torch.bool))
