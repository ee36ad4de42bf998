"""The fused encoding + first layer (`nerfprune.field.fused`, `rust/core/src/fused.rs`) computes the unfused one.

Reference: the torch positional encoding (`taichi_kernels.reference.positional_encoding`) of the sample points
and the layer's product in float64. The plan with the kernel forced on must give what the unfused plan gives,
for dense and compacted networks; the plan must not fuse where it cannot (a skip connection reads the encoding
again, bf16, the torch backend).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dense_net

from nerfprune import _native
from nerfprune.errors import NativeArgumentError
from nerfprune.field.config import FieldConfig, MLPConfig
from nerfprune.field.fused import FUSE_MAX_WIDTH, rays_for_kernel
from nerfprune.field.inference import InferencePlan, plan_for
from nerfprune.field.mlp import NerfModel
from nerfprune.field.runners import infer_field
from nerfprune.pruning.variants import build_variant
from taichi_kernels import reference
from taichi_kernels.backend import TAICHI, TORCH

FAST = settings(max_examples=30, deadline=None)


def rays_and_samples(rays: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    origins = torch.rand(rays, 3, generator=g) * 2 - 1
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, generator=g), dim=-1)
    t = torch.rand(n, generator=g) * 3
    ray_index = torch.randint(0, rays, (n,), generator=g)
    return origins, dirs, t, ray_index


def reference_layer(origins, dirs, t, ray_index, weight, columns, n_frequencies, relu):
    """The layer in float64 on the torch encoding of the points: [n, out]."""
    points = origins.double()[ray_index] + t.double()[:, None] * dirs.double()[ray_index]
    enc = reference.positional_encoding(points, n_frequencies)[:, columns]
    y = enc @ weight[:, :-1].double().T + weight[:, -1].double()
    return y.clamp_min(0) if relu else y


@FAST
@given(rays=st.integers(1, 12), n=st.integers(0, 300), out=st.integers(1, 40), n_frequencies=st.integers(0, 10),
       drop=st.integers(0, 2**30), relu=st.booleans(), pad=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_the_kernel_is_the_encoding_then_the_layer(rays, n, out, n_frequencies, drop, relu, pad, seed):
    features = 3 * (1 + 2 * n_frequencies)
    columns = [c for c in range(features) if not drop >> (c % 31) & 1] or [0]
    columns = columns[::-1] if seed % 2 else columns  # any order
    origins, dirs, t, ray_index = rays_and_samples(rays, n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(out, len(columns) + 1, generator=g) / len(columns) ** 0.5
    got = torch.full((n, out + pad), -3.0)
    _native.encode_first_layer(*rays_for_kernel(origins, dirs), t.numpy(), ray_index.numpy(), weight.numpy(),
                               np.array(columns, dtype=np.int64), n_frequencies, got.numpy(), relu=relu, threads=2)
    expect = reference_layer(origins, dirs, t, ray_index, weight, columns, n_frequencies, relu)
    # the double-angle recurrence doubles float32 rounding at every octave (as the Taichi encoding kernel)
    torch.testing.assert_close(got[:, :out].double(), expect, atol=5e-5 * 2 ** n_frequencies / 8, rtol=1e-4)
    assert (got[:, out:] == -3.0).all()  # the columns past the layer (the plan's column of ones) are untouched


def test_bad_arguments_name_the_problem():
    origins, dirs, t, ray_index = rays_and_samples(4, 10, 0)
    o, d = rays_for_kernel(origins, dirs)
    weight = np.zeros((5, 10), dtype=np.float32)
    columns = np.arange(9, dtype=np.int64)
    out = np.zeros((10, 6), dtype=np.float32)
    call = _native.encode_first_layer
    with pytest.raises(NativeArgumentError, match="ray index 4 outside"):
        call(o, d, t.numpy(), np.full(10, 4, dtype=np.int64), weight, columns, 1, out)
    with pytest.raises(NativeArgumentError, match="column 9 outside the 9 features"):
        call(o, d, t.numpy(), ray_index.numpy(), weight, np.arange(1, 10, dtype=np.int64), 1, out)
    with pytest.raises(NativeArgumentError, match=r"weight must be \[5, 6\] \(the bias as last column\), got 50 floats"):
        call(o, d, t.numpy(), ray_index.numpy(), weight, columns[:5], 1, out)
    with pytest.raises(NativeArgumentError, match="out must be"):
        call(o, d, t.numpy(), ray_index.numpy(), weight, columns, 1, out[:, :4].copy())
    with pytest.raises(NativeArgumentError, match="C-contiguous"):
        call(o, d, t.numpy(), ray_index.numpy(), weight, columns, 1, np.zeros((6, 10), dtype=np.float32).T)
    with pytest.raises(NativeArgumentError, match="must not be negative"):
        call(o, d, t.numpy(), ray_index.numpy(), weight, -columns, 1, out)


def structured_compacted(cfg: FieldConfig, seed: int, keep: float):
    """A compacted network with hidden neurons and encoding columns pruned (random masks)."""
    net = dense_net(cfg, seed)
    model = NerfModel(cfg, fine=False)
    model.coarse.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for layer in net.topology.layers:
        w = net.layer(layer.name).weight
        rows = torch.rand(w.shape[0], generator=g) < keep if not layer.is_output else torch.ones(w.shape[0], dtype=torch.bool)
        m = rows[:, None] & (torch.rand(w.shape, generator=g) < 0.9)
        masks[f"coarse.{layer.name}.weight"] = m
    return build_variant(model.eval(), masks, "compacted").coarse


@pytest.mark.parametrize("kind", ["dense", "compacted"])
def test_the_plan_with_the_kernel_gives_the_unfused_plan(kind):
    cfg = FieldConfig(depth=2, width=24, skips=(), pos_frequencies=10, dir_frequencies=4)
    net = dense_net(cfg, 3) if kind == "dense" else structured_compacted(cfg, 3, 0.5)
    origins, dirs, t, ray_index = rays_and_samples(50, 3000, 1)
    dir_enc = reference.positional_encoding(dirs, cfg.dir_frequencies)
    plan = plan_for(net)
    assert plan.fused_first_layer(cfg.pos_frequencies, t.device, "on") is not None
    assert plan.fused_first_layer(cfg.pos_frequencies, t.device, "off") is None
    args = (origins, dirs, t, ray_index, dir_enc, cfg.pos_frequencies, TAICHI.positional_encoding_at, 700)
    sigma_f, rgb_f = plan.run(*args, fuse="on")
    sigma_u, rgb_u = plan.run(*args, fuse="off")
    torch.testing.assert_close(sigma_f, sigma_u, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(rgb_f, rgb_u, atol=2e-5, rtol=1e-4)
    assert not torch.equal(sigma_f, sigma_u)  # two different computations (so the comparison is not vacuous)


def test_the_plan_fuses_only_where_the_kernel_can_run():
    skip = plan_for(dense_net(FieldConfig(depth=3, width=8, skips=(0,), pos_frequencies=3, dir_frequencies=1), 0))
    assert skip.fused_first_layer(3, torch.device("cpu"), "on") is None  # the skip layer reads the encoding again
    cfg = FieldConfig(depth=2, width=8, skips=(), pos_frequencies=3, dir_frequencies=1)
    net = dense_net(cfg, 0)
    assert plan_for(net, torch.bfloat16).fused_first_layer(3, torch.device("cpu"), "on") is None
    assert plan_for(net).fused_first_layer(3, torch.device("meta"), "on") is None  # CPU only
    with pytest.raises(ValueError, match="fuse must be one of auto, on, off"):
        plan_for(net).fused_first_layer(3, torch.device("cpu"), "yes")


def test_the_torch_backend_and_the_unfused_path_never_fuse(monkeypatch):
    cfg = FieldConfig(depth=2, width=8, skips=(), pos_frequencies=3, dir_frequencies=1)
    net = dense_net(cfg, 0)
    seen = []
    original = InferencePlan.run

    def spy(self, *args, fuse="off", **kwargs):
        seen.append(fuse)
        return original(self, *args, fuse=fuse, **kwargs)

    monkeypatch.setattr(InferencePlan, "run", spy)
    origins, dirs, t, ray_index = rays_and_samples(5, 40, 0)
    dir_enc = reference.positional_encoding(dirs, cfg.dir_frequencies)
    for math, inference in ((TORCH, "fast"), (TAICHI, "unfused"), (TAICHI, "fast")):
        infer_field(net, origins, dirs, t, ray_index, dir_enc, 3, math, 64, MLPConfig(inference=inference))
    assert seen == ["off", "off", "auto"]


def test_auto_fuses_narrow_first_layers_and_leaves_wide_ones_on_blas():
    for width, fused_by_default in ((FUSE_MAX_WIDTH, True), (FUSE_MAX_WIDTH + 1, False)):
        plan = plan_for(dense_net(FieldConfig(depth=2, width=width, skips=(), pos_frequencies=4, dir_frequencies=1), 0))
        assert (plan.fused_first_layer(4, torch.device("cpu"), "auto") is not None) == fused_by_default
        assert plan.fused_first_layer(4, torch.device("cpu"), "on") is not None
