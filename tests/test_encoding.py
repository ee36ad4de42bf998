"""Positional encoding: the Taichi kernel equals the torch reference; the reference equals the formula."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.field.config import encoded_width
from taichi_kernels.reference import positional_encoding
from taichi_kernels.encoding import positional_encoding as taichi_encoding


def test_reference_follows_the_nerf_formula():
    x = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    enc = positional_encoding(x, 3)[0]
    expected = [0.3, -1.2, 2.0]
    for level in range(3):
        expected += [math.sin(2**level * v) for v in (0.3, -1.2, 2.0)]
        expected += [math.cos(2**level * v) for v in (0.3, -1.2, 2.0)]
    assert enc.tolist() == pytest.approx(expected, abs=1e-12)
    assert encoded_width(10) == 63 and encoded_width(4) == 27


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), dims=st.integers(1, 4), levels=st.integers(0, 10), seed=st.integers(0, 2**16))
def test_taichi_kernel_matches_the_reference(n, dims, levels, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, dims, generator=g) - 0.5) * 12.0  # points of NeRF scenes lie within a few units
    ours = taichi_encoding(x, levels)
    exact = positional_encoding(x.double(), levels)
    assert ours.shape == (n, dims * (1 + 2 * levels))
    # float32 sin/cos of arguments up to 2^9 * 6 differ from the exact value by ~ulp(3000) ~ 2.4e-4
    np.testing.assert_allclose(ours.numpy(), exact.numpy(), atol=5e-4, rtol=0)
    np.testing.assert_allclose(ours.numpy(), positional_encoding(x, levels).numpy(), atol=5e-4, rtol=0)


def test_inputs_needing_gradients_are_refused():
    with pytest.raises(ValueError, match="no backward"):
        taichi_encoding(torch.zeros(2, 3, requires_grad=True), 2)
