"""Packed compositing and importance sampling: against the padded kernels, the torch twins and gradcheck."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taichi_kernels import compositing, packed, sampling
from taichi_kernels import reference_grid as rg

SETTINGS = settings(max_examples=30, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def packed_inputs(counts: list[int], seed: int, dtype=torch.float32, scale: float = 3.0, bg_per_ray: bool = False,
                  shuffle: bool = False):
    """Random packed rays: densities with exact zeros, colours, sorted depths, steps dt, |d| in [1, 1.5].

    shuffle: lay the rays out in the sample list in a random order (offsets not increasing).
    """
    g = gen(seed)
    c = torch.tensor(counts, dtype=torch.int64)
    b, m = c.shape[0], int(c.sum())
    order = torch.randperm(b, generator=g) if shuffle else torch.arange(b)
    offsets = torch.zeros(b, dtype=torch.int64)
    offsets[order] = torch.cumsum(c[order], 0) - c[order]
    sigma = scale * torch.rand(m, generator=g, dtype=dtype) ** 2 * (torch.rand(m, generator=g) > 0.2)
    rgb = torch.rand(m, 3, generator=g, dtype=dtype)
    t = 2 + 4 * torch.rand(m, generator=g, dtype=dtype)
    dt = 0.3 * torch.rand(m, generator=g, dtype=dtype)
    norm = 1 + 0.5 * torch.rand(b, generator=g, dtype=dtype)
    bg = torch.rand((b, 3) if bg_per_ray else (3,), generator=g, dtype=dtype)
    return sigma, rgb, t, dt, offsets, c, norm, bg


counts_st = st.lists(st.integers(0, 20), min_size=0, max_size=24)


@SETTINGS
@given(b=st.integers(0, 20), s=st.integers(1, 40), seed=st.integers(0, 2**16), last_delta=st.sampled_from([1e10, 0.25]),
       scale=st.sampled_from([0.1, 3.0, 100.0]), eps=st.sampled_from([0.0, 1e-3]))
def test_equal_counts_equal_padded_composite(b, s, seed, last_delta, scale, eps):
    g = gen(seed)
    sigma = scale * torch.rand(b, s, generator=g) ** 2
    rgb = torch.rand(b, s, 3, generator=g)
    t = torch.sort(2 + 4 * torch.rand(b, s, generator=g), dim=-1).values
    norm = 1 + 0.5 * torch.rand(b, generator=g)
    bg = torch.rand(3, generator=g)
    want = compositing.composite(sigma, rgb, t, norm, bg, last_delta=last_delta, early_stop_eps=eps)
    dt = torch.cat([t[:, 1:] - t[:, :-1], torch.full((b, 1), last_delta)], dim=1)
    counts = torch.full((b,), s, dtype=torch.int64)
    got = packed.composite(sigma.reshape(-1), rgb.reshape(-1, 3), t.reshape(-1), dt.reshape(-1), counts.cumsum(0) - s,
                           counts, norm, bg, early_stop_eps=eps)
    for x, y in zip(got[:3], want[:3]):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[3].reshape(b, s), want[3], rtol=1e-6, atol=1e-6)


@SETTINGS
@given(counts=counts_st, seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 3.0, 100.0]),
       bg_per_ray=st.booleans(), shuffle=st.booleans(), eps=st.sampled_from([0.0, 1e-2]))
def test_kernel_equals_reference_with_random_counts(counts, seed, scale, bg_per_ray, shuffle, eps):
    args = packed_inputs(counts, seed, scale=scale, bg_per_ray=bg_per_ray, shuffle=shuffle)
    got = packed.composite(*args, early_stop_eps=eps)
    want = rg.composite_packed(*(x.double() if x.dtype.is_floating_point else x for x in args), early_stop_eps=eps)
    b, m = len(counts), sum(counts)
    for g, w, shape in zip(got, want, [(b, 3), (b,), (b,), (m,)]):
        assert g.shape == shape and g.dtype == torch.float32
        torch.testing.assert_close(g, w.float(), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(counts=counts_st, seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 3.0, 30.0]),
       outputs=st.sets(st.sampled_from(range(4)), min_size=1))
def test_float32_gradients_equal_the_float64_reference(counts, seed, scale, outputs):
    args = packed_inputs(counts, seed, scale=scale, bg_per_ray=True)
    up = [torch.randn(x.shape, generator=gen(seed + i)) for i, x in
          enumerate(rg.composite_packed(*(a.double() if a.dtype.is_floating_point else a for a in args)))]

    def grads(fn, inputs):
        s, c, bg = (x.clone().requires_grad_() for x in (inputs[0], inputs[1], inputs[7]))
        out = fn(s, c, *inputs[2:7], bg)
        loss = sum((out[i] * up[i].to(out[i].dtype)).sum() for i in outputs)
        if not loss.requires_grad:  # no samples at all
            return [torch.zeros_like(x) for x in (s, c, bg)]
        return torch.autograd.grad(loss, (s, c, bg), allow_unused=True)

    got = grads(packed.composite, args)
    want = grads(rg.composite_packed, [a.double() if a.dtype.is_floating_point else a for a in args])
    for g, w in zip(got, want):
        w = torch.zeros_like(g, dtype=torch.float64) if w is None else w
        g = torch.zeros_like(w) if g is None else g
        torch.testing.assert_close(g.double(), w, rtol=1e-4, atol=1e-4)


def test_gradcheck_float64():
    sigma, rgb, t, dt, offsets, counts, norm, bg = packed_inputs([3, 0, 5, 1, 4], 1, dtype=torch.float64, shuffle=True)
    inputs = tuple(x.requires_grad_() for x in (sigma, rgb, bg))
    assert torch.autograd.gradcheck(
        lambda s, c, b: packed.composite(s, c, t, dt, offsets, counts, norm, b), inputs)


def test_zero_sample_ray_shows_the_background():
    sigma, rgb, t, dt, offsets, counts, norm, _ = packed_inputs([0, 4, 0], 2)
    bg = torch.tensor([[0.2, 0.4, 0.6], [0.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    colour, depth, opacity, weights = packed.composite(sigma, rgb, t, dt, offsets, counts, norm, bg)
    assert torch.equal(colour[[0, 2]], bg[[0, 2]]) and torch.equal(opacity[[0, 2]], torch.zeros(2))
    assert torch.equal(depth[[0, 2]], torch.zeros(2)) and weights.shape == (4,) and float(opacity[1]) > 0
    colour, depth, opacity, weights = packed.composite(torch.zeros(0), torch.zeros(0, 3), torch.zeros(0),
                                                       torch.zeros(0), torch.zeros(2, dtype=torch.int64),
                                                       torch.zeros(2, dtype=torch.int64), torch.ones(2), bg[0])
    assert torch.equal(colour, bg[0].expand(2, 3)) and torch.equal(opacity, torch.zeros(2))


def test_bad_packing_is_refused():
    sigma, rgb, t, dt, offsets, counts, norm, bg = packed_inputs([2, 3], 0)
    with pytest.raises(ValueError, match="inside the 5"):
        packed.composite(sigma, rgb, t, dt, offsets + 1, counts, norm, bg)
    with pytest.raises(ValueError, match="'dt' has shape"):
        packed.composite(sigma, rgb, t, dt[:4], offsets, counts, norm, bg)
    with pytest.raises(ValueError, match="inference only"):
        packed.composite(sigma.requires_grad_(), rgb, t, dt, offsets, counts, norm, bg, early_stop_eps=1e-3)


# ---------------------------------------------------------------------- importance


@SETTINGS
@given(b=st.integers(0, 20), s=st.integers(3, 40), n_fine=st.integers(0, 40), perturb=st.booleans(),
       seed=st.integers(0, 2**16))
def test_importance_with_equal_counts_equals_padded(b, s, n_fine, perturb, seed):
    t = sampling.stratified(b, s, 2.0, 6.0, True, generator=gen(seed))
    w = torch.rand(b, s, generator=gen(seed + 1)) ** 3
    want = sampling.importance(t, w, n_fine, perturb, generator=gen(seed + 2))
    counts = torch.full((b,), s, dtype=torch.int64)
    got, offsets, new_counts = packed.importance(t.reshape(-1), w.reshape(-1), counts.cumsum(0) - s, counts, n_fine,
                                                 perturb, generator=gen(seed + 2))
    assert new_counts.tolist() == [s + n_fine] * b
    assert offsets.tolist() == [i * (s + n_fine) for i in range(b)]
    got = got.reshape(b, s + n_fine)
    for r in range(b):  # the same rule, compiled apart: compared in CDF space (see the test below)
        torch.testing.assert_close(rg.ray_cdf(t[r], w[r], got[r]), rg.ray_cdf(t[r], w[r], want[r]), rtol=0, atol=2e-5)
    assert torch.isin(t, got).all()  # the coarse samples are kept


@SETTINGS
@given(counts=st.lists(st.sampled_from([0, 3, 4, 7, 20]), max_size=16), n_fine=st.integers(0, 24),
       perturb=st.booleans(), seed=st.integers(0, 2**16), shuffle=st.booleans())
def test_importance_with_random_counts_equals_reference(counts, n_fine, perturb, seed, shuffle):
    _, _, _, _, offsets, c, _, _ = packed_inputs(counts, seed, shuffle=shuffle)
    g = gen(seed + 1)
    m = int(c.sum())
    s = torch.empty(m)
    for r in range(len(counts)):  # sorted positions per ray
        k = slice(int(offsets[r]), int(offsets[r] + c[r]))
        s[k] = torch.sort(4 * torch.rand(int(c[r]), generator=g)).values
    w = torch.rand(m, generator=g) ** 3 * (torch.rand(m, generator=g) > 0.3)
    got = packed.importance(s, w, offsets, c, n_fine, perturb, generator=gen(seed + 2))
    want = rg.importance_packed(s, w, offsets, c, n_fine, perturb, generator=gen(seed + 2))
    assert torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])
    for r in range(len(counts)):
        k = slice(int(got[1][r]), int(got[1][r] + got[2][r]))
        assert bool((got[0][k][1:] >= got[0][k][:-1]).all())  # merged samples are sorted within each ray
        if c[r] > 0:
            # compared in CDF space, as test_sampling does: a float32 rounding of the CDF moves a sample in a
            # near-empty bin (probability ~1e-5) by much of the bin, while its CDF value barely moves
            kin = slice(int(offsets[r]), int(offsets[r] + c[r]))
            torch.testing.assert_close(rg.ray_cdf(s[kin], w[kin], got[0][k]), rg.ray_cdf(s[kin], w[kin], want[0][k]),
                                       rtol=0, atol=2e-5)



def test_importance_needs_three_samples_per_ray():
    with pytest.raises(ValueError, match="at least 3"):
        packed.importance(torch.arange(5.0), torch.ones(5), torch.tensor([0, 2]), torch.tensor([2, 3]), 4, False)
