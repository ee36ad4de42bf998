"""The fused Rust kernels (`nerfprune.field.fused`, `rust/core/src/fused/`) compute what the unfused plan does.

Reference: the torch positional encoding (`taichi_kernels.reference.positional_encoding`) of the sample points
and the first layer's product in float64; for the plan, the unfused plan (the Taichi encoding kernel and a torch
product per layer), itself tested against the network's forward (tests/test_inference.py). The plan run as one
network kernel, or with the first layer fused, must give what the unfused plan gives, for dense and compacted
networks with and without skip connections; it must fall back where a kernel cannot run (a CSR layer, bf16,
off the CPU, the torch backend). The network kernel's own checks and its float64 property test are Rust's
(`cargo test -p nerfprune-core fused`).
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
from nerfprune.field.fused import rays_for_kernel
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


PLAN_CASES = {  # name -> (config, compacted kept fraction or None for dense)
    "dense": (FieldConfig(depth=2, width=24, skips=(), pos_frequencies=10, dir_frequencies=4), None),
    "compacted": (FieldConfig(depth=2, width=24, skips=(), pos_frequencies=10, dir_frequencies=4), 0.5),
    "compacted skip": (FieldConfig(depth=4, width=20, skips=(1,), pos_frequencies=6, dir_frequencies=2), 0.6),
    "dense skip": (FieldConfig(depth=3, width=16, skips=(0,), pos_frequencies=4, dir_frequencies=1), None),
}


def plan_case(name: str):
    cfg, keep = PLAN_CASES[name]
    net = dense_net(cfg, 3) if keep is None else structured_compacted(cfg, 3, keep)
    return cfg, plan_for(net)


def run_plan(plan, cfg, fuse: str, rays: int = 50, n: int = 3000, chunk: int = 700):
    origins, dirs, t, ray_index = rays_and_samples(rays, n, 1)
    dir_enc = reference.positional_encoding(dirs, cfg.dir_frequencies)
    return plan.run(origins, dirs, t, ray_index, dir_enc, cfg.pos_frequencies, TAICHI.positional_encoding_at, chunk,
                    fuse=fuse)


@pytest.mark.parametrize("name", ["dense", "compacted"])
def test_the_plan_with_the_first_layer_fused_gives_the_unfused_plan(name):
    cfg, plan = plan_case(name)
    assert plan.fused_first_layer(cfg.pos_frequencies, torch.device("cpu"), "first-layer") is not None
    assert plan.fused_first_layer(cfg.pos_frequencies, torch.device("cpu"), "off") is None
    assert plan.fused_network(cfg.pos_frequencies, torch.device("cpu"), "first-layer") is None
    sigma_f, rgb_f = run_plan(plan, cfg, "first-layer")
    sigma_u, rgb_u = run_plan(plan, cfg, "off")
    torch.testing.assert_close(sigma_f, sigma_u, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(rgb_f, rgb_u, atol=2e-5, rtol=1e-4)
    assert not torch.equal(sigma_f, sigma_u)  # two different computations (so the comparison is not vacuous)


@pytest.mark.parametrize("name", list(PLAN_CASES))
def test_the_plan_as_one_network_kernel_gives_the_unfused_plan(name):
    """Dense and compacted networks, skip connections (a layer reading the encoding's rows again) included."""
    cfg, plan = plan_case(name)
    network = plan.fused_network(cfg.pos_frequencies, torch.device("cpu"), "auto")
    assert network is not None
    assert plan.fused_network(cfg.pos_frequencies, torch.device("cpu"), "off") is None
    if cfg.skips:
        assert len(network.layers[cfg.skips[0] + 1].inputs) > plan.steps[cfg.skips[0]].out_features  # reads the encoding
    sigma_n, rgb_n = run_plan(plan, cfg, "auto")
    sigma_u, rgb_u = run_plan(plan, cfg, "off")
    scale = 1 + sigma_u.abs().max()
    torch.testing.assert_close(sigma_n / scale, sigma_u / scale, atol=5e-5 * 2 ** cfg.pos_frequencies / 8, rtol=0)
    torch.testing.assert_close(rgb_n, rgb_u, atol=5e-5, rtol=1e-4)
    assert not torch.equal(sigma_n, sigma_u)
    assert sigma_u.std() > 0.1 and rgb_u.std() > 0.01  # outputs far from constant: every layer matters
    empty = run_plan(plan, cfg, "auto", n=0)
    assert empty[0].shape == (0,) and empty[1].shape == (0, 3)


def test_the_network_kernel_writes_only_the_heads_and_keeps_the_per_ray_term():
    """The colour layer's per-ray term (bias + direction part) is gathered per sample: a change of one ray's
    direction changes the colour of that ray's samples only."""
    cfg, plan = plan_case("compacted")
    origins, dirs, t, ray_index = rays_and_samples(20, 400, 2)
    dir_enc = reference.positional_encoding(dirs, cfg.dir_frequencies)
    args = (origins, dirs, t, ray_index)
    sigma0, rgb0 = plan.run(*args, dir_enc, cfg.pos_frequencies, TAICHI.positional_encoding_at, 64, fuse="auto")
    turned = dir_enc.clone()
    turned[7] = reference.positional_encoding(-dirs[7:8], cfg.dir_frequencies)[0]
    sigma1, rgb1 = plan.run(*args, turned, cfg.pos_frequencies, TAICHI.positional_encoding_at, 64, fuse="auto")
    on_ray = ray_index == 7
    assert on_ray.any() and torch.equal(sigma0, sigma1)  # density never reads the direction
    assert torch.equal(rgb0[~on_ray], rgb1[~on_ray]) and not torch.allclose(rgb0[on_ray], rgb1[on_ray])


def test_the_plan_fuses_only_where_the_kernel_can_run():
    skip = plan_for(dense_net(FieldConfig(depth=3, width=8, skips=(0,), pos_frequencies=3, dir_frequencies=1), 0))
    assert skip.fused_first_layer(3, torch.device("cpu"), "first-layer") is None  # the skip layer reads the encoding again
    assert skip.fused_network(3, torch.device("cpu"), "auto") is not None  # a skip is more rows for the network
    cfg = FieldConfig(depth=2, width=8, skips=(), pos_frequencies=3, dir_frequencies=1)
    net = dense_net(cfg, 0)
    for dtype, device in ((torch.bfloat16, "cpu"), (torch.float32, "meta")):  # float32 on the CPU only
        plan = plan_for(net, dtype)
        assert plan.fused_first_layer(3, torch.device(device), "auto") is None
        assert plan.fused_network(3, torch.device(device), "auto") is None
    assert plan_for(net).fused_network(5, torch.device("cpu"), "auto") is None  # an encoding that does not fit
    for call in (plan_for(net).fused_first_layer, plan_for(net).fused_network):
        with pytest.raises(ValueError, match="fuse must be one of auto, first-layer, off"):
            call(3, torch.device("cpu"), "on")


def test_a_csr_layer_falls_back_to_the_fused_first_layer():
    cfg = FieldConfig(depth=2, width=16, skips=(), pos_frequencies=3, dir_frequencies=1)
    net = dense_net(cfg, 0)
    weights = net.inference_weights()
    sparse = {name: (w * (torch.rand(w.shape) < 0.05), b) for name, (w, b) in weights.items()}
    plan = InferencePlan(net.topology, sparse, modes={"pts.1": "csr"}, measure_csr=False)
    assert plan.fused_network(3, torch.device("cpu"), "auto") is None
    assert plan.fused_first_layer(3, torch.device("cpu"), "auto") is not None
    sigma_a, rgb_a = run_plan(plan, cfg, "auto")
    sigma_u, rgb_u = run_plan(plan, cfg, "off")
    torch.testing.assert_close(sigma_a, sigma_u, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rgb_a, rgb_u, atol=1e-5, rtol=1e-4)


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
    for math, inference in ((TORCH, "fast"), (TAICHI, "unfused"), (TAICHI, "fast"), (TAICHI, "first-layer")):
        infer_field(net, origins, dirs, t, ray_index, dir_enc, 3, math, 64, MLPConfig(inference=inference))
    assert seen == ["off", "off", "auto", "first-layer"]


def test_auto_runs_every_width_as_one_network_kernel():
    """No width limit: the network kernel measured faster than BLAS at every width up to 256 (field/fused.py)."""
    for width in (4, 128):
        plan = plan_for(dense_net(FieldConfig(depth=2, width=width, skips=(), pos_frequencies=4, dir_frequencies=1), 0))
        assert plan.fused_network(4, torch.device("cpu"), "auto") is not None
        assert plan.fused_first_layer(4, torch.device("cpu"), "auto") is not None


def test_bad_network_arguments_name_the_problem():
    origins, dirs, t, ray_index = rays_and_samples(4, 10, 0)
    o, d = rays_for_kernel(origins, dirs)
    encoding = 3 * (1 + 2 * 1)  # rows [0, 9): one octave
    w1, w2 = np.ones((5, encoding), np.float32), np.ones((1, 5), np.float32)
    rows = np.arange(encoding, dtype=np.int64)

    def layers(second_inputs=np.arange(9, 14), activation="none", term=None):
        return [(w1, rows, np.zeros(5, np.float32), None, "relu", 9, None),
                (w2, np.asarray(second_inputs, np.int64), np.zeros(1, np.float32), term, activation, 14, 0)]

    def call(layer_list, index=ray_index.numpy(), outputs=None):
        _native.run_network(o, d, t.numpy(), index, 1, layer_list,
                            outputs if outputs is not None else [np.zeros((10, 1), np.float32)])

    call(layers())  # the arguments as given are fine
    with pytest.raises(NativeArgumentError, match="ray index 4 outside"):
        call(layers(), index=np.full(10, 4, dtype=np.int64))
    with pytest.raises(NativeArgumentError, match="reads row 20, which neither the encoding nor an earlier layer"):
        call(layers(second_inputs=[9, 10, 11, 12, 20]))
    with pytest.raises(NativeArgumentError, match='layer 1: unknown activation "tanh"'):
        call(layers(activation="tanh"))
    with pytest.raises(NativeArgumentError, match=r"ray_term must be \[4, 1\]"):
        call(layers(term=np.zeros((3, 1), np.float32)))
    with pytest.raises(NativeArgumentError, match=r"output 0 must be \[10, 1\]"):
        call(layers(), outputs=[np.zeros((9, 1), np.float32)])
    with pytest.raises(NativeArgumentError, match="C-contiguous"):
        call(layers(), outputs=[np.zeros((10, 2), np.float32)[:, :1]])
    with pytest.raises(NativeArgumentError, match="no layer writes output 1"):
        call(layers(), outputs=[np.zeros((10, 1), np.float32), np.zeros((10, 3), np.float32)])
