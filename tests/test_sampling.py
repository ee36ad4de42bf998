"""Stratified and importance sampling: kernels against the torch reference, and the laws they obey."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taichi_kernels import reference as ref
from taichi_kernels import sampling

SETTINGS = settings(max_examples=30, deadline=None)
F32_EPS = torch.finfo(torch.float32).eps
ranges = st.tuples(st.floats(0.05, 3.0), st.floats(0.1, 20.0)).map(lambda p: (p[0], p[0] + p[1]))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def coarse_and_weights(b: int, s: int, seed: int, near: float = 2.0, far: float = 6.0):
    """Sorted perturbed coarse samples and random compositing-like weights (some zero)."""
    t = ref.stratified(b, s, near, far, True, generator=gen(seed))
    g = gen(seed + 1)
    w = torch.rand(b, s, generator=g) ** 3 * (torch.rand(b, s, generator=g) > 0.3)
    return t, w


# --------------------------------------------------------------------- stratified


@SETTINGS
@given(b=st.integers(0, 50), s=st.integers(0, 70), nf=ranges, perturb=st.booleans(), lindisp=st.booleans(),
       seed=st.integers(0, 2**16))
def test_stratified_equals_reference_sorted_inside_range(b, s, nf, perturb, lindisp, seed):
    near, far = nf
    got = sampling.stratified(b, s, near, far, perturb, lindisp, generator=gen(seed))
    want = ref.stratified(b, s, near, far, perturb, lindisp, generator=gen(seed))
    assert got.shape == (b, s) and got.dtype == torch.float32
    # In disparity, an error d in the float32 sample fraction moves t by a relative t * (1/near - 1/far) * d,
    # up to far/near times d: the kernel (i * step) and torch.linspace round s differently.
    rtol = 1e-5 + (8 * F32_EPS * far / near if lindisp else 0.0)
    torch.testing.assert_close(got, want, rtol=rtol, atol=1e-5 * far)
    assert (got >= near).all() and (got <= far).all()
    assert (got[:, 1:] >= got[:, :-1]).all()


@pytest.mark.parametrize("lindisp", [False, True])
def test_stratified_deterministic_spans_near_to_far_evenly(lindisp):
    t = sampling.stratified(3, 9, 2.0, 6.0, perturb=False, lindisp=lindisp)
    assert torch.equal(t[0], t[2])
    torch.testing.assert_close(t[:, 0], torch.full((3,), 2.0))
    torch.testing.assert_close(t[:, -1], torch.full((3,), 6.0))
    even = 1.0 / t if lindisp else t  # even steps in disparity or in depth
    steps = even[:, 1:] - even[:, :-1]
    torch.testing.assert_close(steps, steps[:, :1].expand_as(steps), rtol=1e-4, atol=1e-6)


def test_stratified_perturbed_stays_in_its_bin_and_covers_it():
    t_det = sampling.stratified(1, 8, 2.0, 6.0, perturb=False)[0]
    mids = 0.5 * (t_det[1:] + t_det[:-1])
    lower = torch.cat([t_det[:1], mids])
    upper = torch.cat([mids, t_det[-1:]])
    t = sampling.stratified(4000, 8, 2.0, 6.0, perturb=True, generator=gen(0))
    assert ((t >= lower - 1e-6) & (t <= upper + 1e-6)).all()
    frac = (t - lower) / (upper - lower)  # uniform in [0, 1] per bin: mean 1/2, sd 1/sqrt(12 n)
    bound = 5.0 / math.sqrt(12 * 4000)
    assert ((frac.mean(dim=0) - 0.5).abs() < bound).all()


def test_stratified_is_repeatable_with_a_seed():
    a = sampling.stratified(10, 5, 1.0, 2.0, True, generator=gen(3))
    b = sampling.stratified(10, 5, 1.0, 2.0, True, generator=gen(3))
    c = sampling.stratified(10, 5, 1.0, 2.0, True, generator=gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stratified_rejects_bad_range():
    with pytest.raises(ValueError, match="near < far"):
        sampling.stratified(1, 4, 3.0, 2.0, False)
    with pytest.raises(ValueError, match="lindisp"):
        sampling.stratified(1, 4, 0.0, 2.0, False, lindisp=True)


# --------------------------------------------------------------------- importance


@SETTINGS
@given(b=st.integers(0, 40), s=st.integers(3, 64), n_fine=st.integers(0, 64), perturb=st.booleans(),
       seed=st.integers(0, 2**16))
def test_importance_equals_reference_and_keeps_coarse(b, s, n_fine, perturb, seed):
    t, w = coarse_and_weights(b, s, seed)
    got = sampling.importance(t, w, n_fine, perturb, generator=gen(seed + 2))
    want = ref.importance(t, w, n_fine, perturb, generator=gen(seed + 2))
    assert got.shape == (b, s + n_fine)
    # Compared in CDF space: a float32 rounding of the CDF (~1e-7) moves a sample that lands in
    # a near-empty bin (probability ~1e-5) by a large fraction of the bin; its CDF value barely moves.
    torch.testing.assert_close(piecewise_cdf(t, w, got), piecewise_cdf(t, w, want), rtol=0, atol=2e-5)
    assert (got[:, 1:] >= got[:, :-1]).all(), "merged samples must be sorted"
    assert (got >= t[:, :1]).all() and (got <= t[:, -1:]).all(), "inside the coarse range, so inside [near, far]"
    # every coarse sample is still there (fine samples never replace them)
    assert torch.isin(t, got).all()


def piecewise_cdf(t: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The CDF of each ray's piecewise-constant pdf (t, w: [B, S]) at points x [B, n], in float64."""
    edges = 0.5 * (t[:, 1:] + t[:, :-1]).double()  # [B, S-1]
    p = w[:, 1:-1].double() + ref.PDF_EPS
    p = p / p.sum(dim=-1, keepdim=True)  # [B, S-2]
    inside = (x.double()[..., None] - edges[:, None, :-1]) / (edges[:, None, 1:] - edges[:, None, :-1])
    return (inside.clamp(0, 1) * p[:, None, :]).sum(dim=-1)  # [B, n]


def test_importance_samples_follow_the_pdf():
    """Statistical test, fixed seed: the empirical CDF of 64 x 4096 random fine samples of one
    ray stays within the Dvoretzky-Kiefer-Wolfowitz bound of the true piecewise-linear CDF
    (P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2); eps chosen for a 1e-6 false-alarm rate)."""
    t, w = coarse_and_weights(1, 24, seed=11)
    rays, n_fine = 64, 4096
    fine = sampling._fine_samples(t.expand(rays, -1), w.expand(rays, -1), n_fine, True, gen(5), merge=False)
    x = torch.sort(fine.reshape(-1)).values
    n = x.numel()
    f = piecewise_cdf(t, w, x[None])[0]
    ecdf_hi = torch.arange(1, n + 1, dtype=torch.float64) / n
    ecdf_lo = torch.arange(0, n, dtype=torch.float64) / n
    sup = torch.maximum((ecdf_hi - f).abs(), (ecdf_lo - f).abs()).max().item()
    eps = math.sqrt(math.log(2 / 1e-6) / (2 * n))
    assert sup < eps, f"sup |F_n - F| = {sup:.2e} exceeds the DKW bound {eps:.2e} for n = {n}"
    # and each bin receives its share: |count/n - p| within 5 binomial standard deviations
    edges = 0.5 * (t[0, 1:] + t[0, :-1])
    counts = torch.bucketize(x, edges[1:-1]).bincount(minlength=edges.numel() - 1)
    p = (w[0, 1:-1].double() + ref.PDF_EPS) / (w[0, 1:-1].double() + ref.PDF_EPS).sum()
    assert ((counts / n - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n) + 1.0 / n).all()


def test_deterministic_importance_inverts_the_cdf_at_even_levels():
    """Without perturbation the j-th fine sample sits where the CDF equals j / (M - 1)."""
    t, w = coarse_and_weights(1, 32, seed=3)
    fine = sampling._fine_samples(t, w, 17, False, None, merge=False)[0]
    torch.testing.assert_close(piecewise_cdf(t, w, fine[None])[0], torch.linspace(0, 1, 17, dtype=torch.float64),
                               rtol=0, atol=1e-5)


def test_importance_concentrates_where_the_weight_is():
    t = sampling.stratified(1, 64, 2.0, 6.0, perturb=False)
    w = torch.zeros(1, 64)
    w[0, 30] = 1.0  # one opaque sample
    fine = sampling._fine_samples(t, w, 128, True, gen(0), merge=False)[0]
    inside = (fine >= 0.5 * (t[0, 29] + t[0, 30])) & (fine <= 0.5 * (t[0, 30] + t[0, 31]))
    assert inside.float().mean() > 0.95


def test_importance_needs_three_coarse_samples():
    t = torch.tensor([[1.0, 2.0]])
    with pytest.raises(ValueError, match="at least 3 coarse samples"):
        sampling.importance(t, torch.ones_like(t), 4, False)
    assert torch.equal(sampling.importance(t, torch.ones_like(t), 0, False), t)
