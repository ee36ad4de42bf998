"""Volume compositing: kernel against the torch reference, laws of the weights, and gradients."""

import gc
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taichi_kernels import reference as ref
from taichi_kernels import compositing

SETTINGS = settings(max_examples=30, deadline=None)


def random_inputs(b: int, s: int, seed: int, dtype=torch.float32, bg_per_ray: bool = False, scale: float = 3.0):
    """Sorted depths in [2, 6], densities with some exact zeros, colours in [0, 1], |d| in [1, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    sigma = scale * torch.rand(b, s, generator=g, dtype=dtype) ** 2 * (torch.rand(b, s, generator=g) > 0.2)
    rgb = torch.rand(b, s, 3, generator=g, dtype=dtype)
    t = torch.sort(2 + 4 * torch.rand(b, s, generator=g, dtype=dtype), dim=-1).values
    norm = 1 + 0.5 * torch.rand(b, generator=g, dtype=dtype)
    bg = torch.rand((b, 3) if bg_per_ray else (3,), generator=g, dtype=dtype)
    return sigma, rgb, t, norm, bg


@SETTINGS
@given(b=st.integers(0, 40), s=st.integers(0, 48), seed=st.integers(0, 2**16), bg_per_ray=st.booleans(),
       last_delta=st.sampled_from([1e10, 0.25]), scale=st.sampled_from([0.1, 3.0, 100.0]))
def test_kernel_equals_reference(b, s, seed, bg_per_ray, last_delta, scale):
    args = random_inputs(b, s, seed, bg_per_ray=bg_per_ray, scale=scale)
    got = compositing.composite(*args, last_delta=last_delta)
    want = ref.composite(*(x.double() for x in args), last_delta=last_delta)  # float64: the truth
    for g, w, shape in zip(got, want, [(b, 3), (b,), (b,), (b, s)]):
        assert g.shape == shape and g.dtype == torch.float32
        torch.testing.assert_close(g, w.float(), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(b=st.integers(1, 30), s=st.integers(1, 48), seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 3.0, 100.0]))
def test_weights_laws(b, s, seed, scale):
    """w >= 0, sum w = opacity <= 1, T = 1 - sum_{j<i} w_j never increases and w_i = T_i alpha_i."""
    sigma, rgb, t, norm, bg = random_inputs(b, s, seed, scale=scale)
    colour, depth, opacity, weights = compositing.composite(sigma, rgb, t, norm, bg)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), opacity, rtol=1e-6, atol=1e-6)
    assert (opacity <= 1 + 1e-6).all()
    trans = 1 - torch.cumsum(weights.double(), dim=-1) + weights.double()  # T_i before sample i
    assert (trans[:, 1:] <= trans[:, :-1] + 1e-7).all() and (trans >= -1e-6).all()
    delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full((b, 1), 1e10)], dim=-1) * norm[:, None]
    alpha = 1 - torch.exp(-sigma.double() * delta.double())
    torch.testing.assert_close(weights.double(), trans * alpha, rtol=1e-4, atol=1e-6)
    # colour is a convex mix of the sample colours and the background; depth a weighted mean
    assert (colour >= -1e-6).all() and (colour <= 1 + 1e-6).all()
    assert (depth <= t[:, -1] * opacity + 1e-4).all() and (depth >= t[:, 0] * opacity - 1e-4).all()


def test_zero_sample_rays_show_the_background():
    bg = torch.tensor([0.2, 0.4, 0.6])
    colour, depth, opacity, weights = compositing.composite(
        torch.zeros(4, 0), torch.zeros(4, 0, 3), torch.zeros(4, 0), torch.ones(4), bg)
    assert torch.equal(colour, bg.expand(4, 3)) and torch.equal(depth, torch.zeros(4))
    assert torch.equal(opacity, torch.zeros(4)) and weights.shape == (4, 0)


def test_one_opaque_sample_takes_its_colour_and_depth():
    sigma, rgb = torch.tensor([[1e4]]), torch.tensor([[[0.1, 0.2, 0.3]]])
    colour, depth, opacity, weights = compositing.composite(sigma, rgb, torch.tensor([[3.0]]), torch.ones(1),
                                                            torch.ones(3))
    torch.testing.assert_close(colour, rgb[:, 0])
    torch.testing.assert_close(depth, torch.tensor([3.0]))
    torch.testing.assert_close(opacity, torch.ones(1))


def test_reference_gradcheck_float64():
    sigma, rgb, t, norm, bg = random_inputs(3, 6, 0, dtype=torch.float64)
    inputs = tuple(x.requires_grad_() for x in (sigma, rgb, bg))
    assert torch.autograd.gradcheck(lambda s, c, b: ref.composite(s, c, t, norm, b, last_delta=0.5), inputs)


@pytest.mark.parametrize("bg_per_ray", [False, True])
def test_taichi_gradcheck_float64(bg_per_ray):
    sigma, rgb, t, norm, bg = random_inputs(4, 7, 1, dtype=torch.float64, bg_per_ray=bg_per_ray)
    inputs = tuple(x.requires_grad_() for x in (sigma, rgb, bg))
    assert torch.autograd.gradcheck(lambda s, c, b: compositing.composite(s, c, t, norm, b, last_delta=0.5), inputs)


def grads(fn, args, upstream, which):
    """Gradients of sum(output_k * upstream_k) over the chosen outputs w.r.t. sigma, rgb, background."""
    sigma, rgb, t, norm, bg = (x.clone() for x in args)
    leaves = tuple(x.requires_grad_() for x in (sigma, rgb, bg))
    outs = fn(sigma, rgb, t, norm, bg)
    loss = sum((outs[k] * upstream[k]).sum() for k in which)
    return torch.autograd.grad(loss, leaves, allow_unused=True)


@SETTINGS
@given(b=st.integers(1, 30), s=st.integers(1, 48), seed=st.integers(0, 2**16), bg_per_ray=st.booleans(),
       which=st.sets(st.integers(0, 3), min_size=1).map(sorted), scale=st.sampled_from([0.1, 3.0, 100.0]))
def test_taichi_backward_matches_reference_float32(b, s, seed, bg_per_ray, which, scale):
    args = random_inputs(b, s, seed, bg_per_ray=bg_per_ray, scale=scale)
    g = torch.Generator().manual_seed(seed + 1)
    upstream = [torch.randn(shape, generator=g) for shape in [(b, 3), (b,), (b,), (b, s)]]
    upstream[1] = upstream[1] * 0.1  # depth is ~5x larger than the other outputs
    got = grads(compositing.composite, args, upstream, which)
    # the reference runs in float64: in float32 its alpha rounds to 1 (and T to 0) from sigma * delta ~ 17,
    # where the kernel's T *= exp(-sigma delta) keeps the tiny transmittance that still carries gradient
    want = grads(ref.composite, [x.double() for x in args], [u.double() for u in upstream], which)
    for name, g_, w_ in zip(("sigma", "rgb", "background"), got, want):
        if w_ is None:
            assert g_ is None or not g_.any(), name
            continue
        scale_ = 1 + w_.abs().max().item()
        torch.testing.assert_close(g_, w_.float(), rtol=1e-4, atol=2e-5 * scale_, msg=lambda m: f"{name}: {m}")


def test_training_grad_with_huge_last_delta_matches_reference():
    """The default last delta 1e10 makes the last sample's density gradient large: same on both."""
    args = random_inputs(8, 16, 4)
    upstream = [torch.ones(8, 3), torch.zeros(8), torch.zeros(8), torch.zeros(8, 16)]
    got = grads(lambda *a: compositing.composite(*a, last_delta=1e10), args, upstream, [0])
    want = grads(lambda *a: ref.composite(*a, last_delta=1e10), args, upstream, [0])
    for g_, w_ in zip(got, want):
        torch.testing.assert_close(g_, w_, rtol=1e-4, atol=1e-4)


def test_early_termination_matches_reference_and_is_inference_only():
    sigma, rgb, t, norm, bg = random_inputs(20, 64, 2, scale=30.0)
    with torch.no_grad():
        got = compositing.composite(sigma, rgb, t, norm, bg, early_stop_eps=1e-2)
    want = ref.composite(sigma, rgb, t, norm, bg, early_stop_eps=1e-2)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    full = compositing.composite(sigma, rgb, t, norm, bg)
    assert (got[3] == 0).sum() > (full[3] == 0).sum(), "some samples after termination must be skipped"
    torch.testing.assert_close(got[0], full[0], rtol=0, atol=2e-2)  # the skipped tail holds < 1e-2 of weight
    with pytest.raises(ValueError, match="inference only"):
        compositing.composite(sigma.requires_grad_(), rgb, t, norm, bg, early_stop_eps=1e-2)


def test_pooled_outputs_survive_later_calls_and_backwards():
    """Two graphs of the same shape alive at once: buffers must not be shared between them."""
    a = random_inputs(16, 8, 5)
    b = random_inputs(16, 8, 6)
    leaves_a = [x.clone().requires_grad_() for x in a[:2]]
    leaves_b = [x.clone().requires_grad_() for x in b[:2]]
    out_a = compositing.composite(*leaves_a, *a[2:])
    kept = [x.detach().clone() for x in out_a]
    out_b = compositing.composite(*leaves_b, *b[2:])
    for x, y in zip(out_a, kept):
        assert torch.equal(x.detach(), y)
    g_a = torch.autograd.grad(out_a[0].sum(), leaves_a)
    g_a_kept = [g.clone() for g in g_a]
    torch.autograd.grad(out_b[0].sum(), leaves_b)
    for x, y in zip(g_a, g_a_kept):
        assert torch.equal(x, y)
    want = grads(ref.composite, a, [torch.ones(16, 3)], [0])
    for x, y in zip(g_a, want):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_bad_shapes_are_named():
    sigma, rgb, t, norm, bg = random_inputs(4, 5, 0)
    with pytest.raises(ValueError, match="'rgb' has shape"):
        compositing.composite(sigma, rgb[:, :4], t, norm, bg)
    with pytest.raises(ValueError, match="background must be"):
        compositing.composite(sigma, rgb, t, norm, torch.ones(4))


@pytest.mark.skipif(os.environ.get("NERFPRUNE_TEST_DEVICE", "cpu") != "cpu",
                    reason="looks at buffer addresses: on another device the tests get copies (tests/conftest.py)")
def test_dropped_outputs_are_reused():
    """The pool's point: once results are dropped, the next call of that shape writes into them."""
    args = random_inputs(32, 8, 7)
    with torch.no_grad():
        compositing.composite(*args)  # may compile; Taichi's compiler keeps that call's arguments until gc
        gc.collect()
        ptr = compositing.composite(*args)[3].data_ptr()
        assert compositing.composite(*args)[3].data_ptr() == ptr
        held = compositing.composite(*args)
        assert compositing.composite(*args)[3].data_ptr() != held[3].data_ptr()
