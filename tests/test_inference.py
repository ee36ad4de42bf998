"""The inference path (`nerfprune.field.inference`) computes every variant's reference function.

Reference: the masked dense network's forward on per-sample inputs (every feature of the encoding, the
direction encoding gathered for every sample), as the original code renders. The plan applies the direction
part of the colour layer once per ray, encodes only the columns a compacted network reads, and reuses its
buffers across chunks: the tests check each of these against the reference, and that the columns recorded
by compaction are exactly those with a live weight.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dense_net

from nerfprune.field.config import FieldConfig, MLPConfig
from nerfprune.field.graph import GraphMLP, int8_available
from nerfprune.field.inference import InferencePlan, plan_for, workspace
from nerfprune.field.mlp import NerfMLP, NerfModel
from nerfprune.field.runners import infer_field
from nerfprune.field.topology import Topology
from nerfprune.pruning.compact import compact
from nerfprune.pruning.variants import build_variant
from nerfprune.renderer import RenderConfig, render_view
from taichi_kernels import reference
from taichi_kernels.backend import TAICHI, TORCH
from taichi_kernels.encoding import _where

TOL = 2e-5
FAST = settings(max_examples=25, deadline=None)


def random_masks(net: NerfMLP, density: float, dead_columns: list[int], seed: int) -> dict[str, torch.Tensor]:
    """Masks keyed like a NerfModel's ('coarse.<layer>.weight'); `dead_columns` of the encoding pruned in every
    layer that reads it (the first layer and the skips)."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for layer in net.topology.layers:
        w = net.layer(layer.name).weight
        m = torch.rand(w.shape, generator=g) < density
        col = 0
        for source, width in layer.inputs:
            if source == "pos":
                m[:, [col + c for c in dead_columns]] = False
            col += width
        masks[f"coarse.{layer.name}.weight"] = m
    return masks


@torch.no_grad()
def masked_reference(net: NerfMLP, masks: dict[str, torch.Tensor], points, dir_enc, ray_index, cfg: FieldConfig):
    """The masked dense network in float64 on per-sample inputs: the function every variant must compute."""
    values = {"pos": reference.positional_encoding(points.double(), cfg.pos_frequencies),
              "dir": dir_enc.double()[ray_index]}
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}
    for layer in net.topology.layers:
        lin = net.layer(layer.name)
        w = lin.weight.double() * masks.get(f"coarse.{layer.name}.weight", torch.ones_like(lin.weight)).double()
        x = torch.cat([values[s] for s, _ in layer.inputs], -1)
        values[layer.name] = act[layer.activation](x @ w.T + lin.bias.double())
    return values["sigma"][:, 0], values["rgb"]


def model_of(net: NerfMLP, cfg: FieldConfig) -> NerfModel:
    model = NerfModel(cfg, fine=False)
    model.coarse.load_state_dict(net.state_dict())
    return model.eval()


def samples(cfg: FieldConfig, rays: int, per_ray: list[int], seed: int):
    """Rays (origins, dirs [B, 3]), depths t [n] and the ray index [n] of their samples (ray r has
    per_ray[r % len] samples, in shuffled order), the direction encodings [B, D] and the points [n, 3]."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([per_ray[r % len(per_ray)] for r in range(rays)])
    ray_index = torch.repeat_interleave(torch.arange(rays), counts)
    ray_index = ray_index[torch.randperm(ray_index.numel(), generator=g)]  # any order: the plan gathers by index
    origins = torch.rand(rays, 3, generator=g) * 2 - 1
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, generator=g), dim=-1)
    t = torch.rand(ray_index.numel(), generator=g) * 3
    points = origins[ray_index] + t[:, None] * dirs[ray_index]
    return (origins, dirs, t, ray_index), reference.positional_encoding(dirs, cfg.dir_frequencies), points


def assert_close(got, expect, tol=TOL):
    for g, e in zip(got, expect):
        assert g.dtype == torch.float32 and g.shape == e.shape
        torch.testing.assert_close(g.double(), e, atol=tol, rtol=tol)


@st.composite
def field_configs(draw):
    depth = draw(st.integers(1, 4))
    skips = tuple(sorted(draw(st.sets(st.integers(0, depth - 2), max_size=2)))) if depth > 1 else ()
    return FieldConfig(depth=depth, width=draw(st.integers(2, 12)), skips=skips,
                       pos_frequencies=draw(st.integers(0, 4)), dir_frequencies=draw(st.integers(0, 3)))


@FAST
@given(cfg=field_configs(), variant=st.sampled_from(["dense", "masked", "baked", "compacted", "csr"]),
       density=st.sampled_from([0.15, 0.4, 1.0]), rays=st.integers(1, 9), per_ray=st.lists(st.integers(0, 7), min_size=1,
       max_size=3), chunk=st.integers(1, 40), dead=st.integers(0, 2**20), seed=st.integers(0, 2**16))
def test_every_variant_computes_the_masked_dense_function(cfg, variant, density, rays, per_ray, chunk, dead, seed):
    net = dense_net(cfg, seed)
    features = cfg.pos_features
    dead_columns = [c for c in range(features) if dead >> c & 1]  # a random subset of the encoding pruned away
    masks = {} if variant == "dense" else random_masks(net, density, dead_columns, seed)
    model = model_of(net, cfg)
    if variant != "dense":
        model = build_variant(model, masks, "compacted" if variant == "csr" else variant)
    if variant == "csr":
        model.coarse.set_modes({l.name: "csr" for l in model.coarse.topology.layers})
    rays_t, dir_enc, points = samples(cfg, rays, per_ray, seed)
    expect = masked_reference(net, masks, points, dir_enc, rays_t[3], cfg)
    got = infer_field(model.coarse, *rays_t, dir_enc, cfg.pos_frequencies, TORCH, chunk, MLPConfig())
    assert_close(got, expect)
    if variant == "csr":  # every layer sparse, even where the plan measured the dense product faster
        graph = model.coarse
        plan = InferencePlan(graph.topology, graph.inference_weights(), graph.input_index, graph.modes, measure_csr=False)
        assert_close(plan.run(*rays_t, dir_enc, cfg.pos_frequencies, TORCH.positional_encoding_at, chunk), expect)
    slow = infer_field(model.coarse, *rays_t, dir_enc, cfg.pos_frequencies, TORCH, chunk, MLPConfig(inference="reference"))
    assert_close(slow, expect)


@FAST
@given(cfg=field_configs(), density=st.sampled_from([0.1, 0.3]), dead=st.integers(0, 2**20), seed=st.integers(0, 2**16))
def test_compaction_records_exactly_the_encoding_columns_with_a_live_weight(cfg, density, dead, seed):
    net = dense_net(cfg, seed)
    dead_columns = [c for c in range(cfg.pos_features) if dead >> c & 1]
    masks = random_masks(net, density, dead_columns, seed)
    state = {f"coarse.{k}": v for k, v in net.state_dict().items()}
    result = compact(net.topology, state, masks, net="coarse")
    live = torch.zeros(cfg.pos_features, dtype=torch.bool)
    for layer in net.topology.layers:  # columns of 'pos' with a live weight into a neuron compaction kept
        col = 0
        for source, width in layer.inputs:
            if source == "pos":
                rows = result.kept[layer.name]
                live |= masks[f"coarse.{layer.name}.weight"][rows][:, col:col + width].any(0)
            col += width
    assert result.input_index["pos"].tolist() == torch.nonzero(live)[:, 0].tolist()
    assert not set(dead_columns) & set(result.input_index["pos"].tolist())
    graph = GraphMLP(result.topology, result.state, input_index=result.input_index)
    assert torch.equal(plan_for(graph).pos_columns, result.input_index["pos"])  # what the inference path encodes
    asked = []

    class Spy:
        def positional_encoding_at(self, *args, columns=None, out=None):
            asked.append(None if columns is None else columns.tolist())
            return TORCH.positional_encoding_at(*args, columns=columns, out=out)

    rays_t, dir_enc, _ = samples(cfg, 3, [4], seed)
    infer_field(graph, *rays_t, dir_enc, cfg.pos_frequencies, Spy(), 5, MLPConfig())
    assert asked and all(a == result.input_index["pos"].tolist() for a in asked)


@settings(max_examples=20, deadline=None)
@given(dims=st.integers(1, 3), levels=st.integers(0, 6), pick=st.integers(0, 2**21), seed=st.integers(0, 2**16))
def test_encoding_of_some_columns_equals_those_columns_of_the_full_encoding(dims, levels, pick, seed):
    features = dims * (1 + 2 * levels)
    columns = torch.tensor([c for c in range(features) if pick >> c & 1], dtype=torch.int64)
    columns = columns[torch.randperm(columns.numel(), generator=torch.Generator().manual_seed(seed))]  # any order
    x = (torch.rand(17, dims, generator=torch.Generator().manual_seed(seed)) - 0.5) * 12
    full = TAICHI.positional_encoding(x, levels).clone()
    out = torch.full((17, columns.numel() + 1), 7.0)  # one column more: left as it is
    got = TAICHI.positional_encoding(x, levels, columns=columns, out=out)
    assert torch.equal(got, full[:, columns]) and torch.equal(out[:, -1], torch.full((17,), 7.0))
    assert torch.equal(TORCH.positional_encoding(x, levels, columns=columns), reference.positional_encoding(x, levels)[:, columns])
    # at samples: the points o_r + t d_r made inside the kernel, the same features as encoding the points
    g = torch.Generator().manual_seed(seed + 1)
    origins, dirs = torch.randn(4, dims, generator=g), torch.randn(4, dims, generator=g)
    t, ray = torch.rand(17, generator=g) * 3, torch.randint(0, 4, (17,), generator=g)
    at = TAICHI.positional_encoding_at(origins, dirs, t, ray, levels, columns=columns).clone()
    exact = reference.positional_encoding((origins[ray] + t[:, None] * dirs[ray]).double(), levels)[:, columns]
    np.testing.assert_allclose(at.numpy(), exact.numpy(), atol=5e-4, rtol=0)  # float32 sin/cos of 2^5 x
    octaves = max(((int(c) // dims - 1) // 2 + 1 for c in columns if c >= dims), default=0)
    assert _where(dims, levels, columns, x.device)[1] == octaves  # octaves above the highest one read are skipped


def test_bad_encoding_columns_are_named():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"columns must lie in \[0, 9\)"):
        TAICHI.positional_encoding(x, 1, columns=torch.tensor([9]))
    with pytest.raises(ValueError, match="must not repeat"):
        TAICHI.positional_encoding(x, 1, columns=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="at least 9 columns"):
        TAICHI.positional_encoding(x, 1, out=torch.empty(2, 8))


def test_chunks_and_calls_reuse_the_same_buffers():
    cfg = FieldConfig(depth=3, width=16, skips=(0,), pos_frequencies=4, dir_frequencies=2)
    net = dense_net(cfg, 0)
    (origins, dirs, t, ray_index), dir_enc, _ = samples(cfg, 20, [9], 0)  # 180 points: 6 chunks of 32
    ws = workspace()
    ws.clear()
    plan = plan_for(net)
    before = ws.allocations
    plan.run(origins, dirs, t, ray_index, dir_enc, cfg.pos_frequencies, TORCH.positional_encoding_at, 32)
    made = ws.allocations - before
    # one buffer for all 6 chunks of: the encoding, two of width 16 taking turns for pts.0-2 and feature (a value
    # no later layer reads gives its buffer up), one of width 8 for views.0
    assert made == 1 + 2 + 1
    assert [s.slot for s in plan.steps] == ["value.0", "value.1", "value.0", "", "value.1", "value.2", ""]
    pointers = {key: buf.data_ptr() for key, buf in ws._buffers.items()}
    plan_for(net).run(origins, dirs, t[:100], ray_index[:100], dir_enc, cfg.pos_frequencies,
                      TORCH.positional_encoding_at, 32)
    assert ws.allocations - before == made  # a second call, fewer rows: the same buffers again
    assert {key: buf.data_ptr() for key, buf in ws._buffers.items()} == pointers


def test_the_direction_term_is_computed_once_per_ray():
    """The colour layer's direction columns run on [B] rays, its feature columns on the [n] samples."""
    cfg = FieldConfig(depth=2, width=8, skips=(), pos_frequencies=2, dir_frequencies=1)
    plan = plan_for(dense_net(cfg, 1))
    views = next(s for s in plan.steps if s.name == "views.0")
    assert [b.source for b in views.ray_blocks] == ["dir"] and [b.source for b in views.sample_blocks] == ["feature"]
    assert views.ray_blocks[0].weight.shape == (4, cfg.dir_features)
    assert all(not s.ray_blocks for s in plan.steps if s.name != "views.0")


def test_a_colour_branch_compacted_to_nothing_still_gives_per_sample_colours():
    """When every feature neuron is gone, the colour layers read only the direction: they run per ray."""
    cfg = FieldConfig(depth=2, width=6, skips=(), pos_frequencies=2, dir_frequencies=1)
    net = dense_net(cfg, 2)
    masks = {f"coarse.{l.name}.weight": torch.ones_like(net.layer(l.name).weight, dtype=torch.bool)
             for l in net.topology.layers}
    masks["coarse.views.0.weight"][:, :cfg.width] = False  # the feature columns
    model = build_variant(model_of(net, cfg), masks, "compacted")
    plan = plan_for(model.coarse)
    assert [s.name for s in plan.steps if s.per_ray] == ["views.0", "rgb"]
    rays_t, dir_enc, points = samples(cfg, 5, [3, 1], 2)
    got = infer_field(model.coarse, *rays_t, dir_enc, cfg.pos_frequencies, TORCH, 4, MLPConfig())
    assert_close(got, masked_reference(net, masks, points, dir_enc, rays_t[3], cfg))


def test_bf16_inference_is_close_to_fp32():
    cfg = FieldConfig(depth=2, width=32, skips=(), pos_frequencies=4, dir_frequencies=2)
    net = dense_net(cfg, 3)
    rays_t, dir_enc, _ = samples(cfg, 16, [20], 3)
    args = (net, *rays_t, dir_enc, cfg.pos_frequencies, TORCH, 64)
    sig32, rgb32 = infer_field(*args, MLPConfig())
    sig16, rgb16 = infer_field(*args, MLPConfig(precision="bf16"))
    assert sig16.dtype == rgb16.dtype == torch.float32
    assert 0 < (rgb16 - rgb32).abs().max() < 3e-2  # bf16 really used, and only rounds
    assert (sig16 - sig32).abs().max() < 5e-2 * sig32.abs().max()


@pytest.mark.skipif(not int8_available(), reason="this torch build has no dynamic int8 Linear (torch.ao)")
def test_int8_inference_stays_close_to_the_float_network():
    cfg = FieldConfig(depth=2, width=32, skips=(), pos_frequencies=4, dir_frequencies=2)
    net = dense_net(cfg, 4)
    model = build_variant(model_of(net, cfg), {}, "int8")
    rays_t, dir_enc, points = samples(cfg, 16, [20], 4)
    expect = masked_reference(net, {}, points, dir_enc, rays_t[3], cfg)
    args = (model.coarse, *rays_t, dir_enc, cfg.pos_frequencies, TORCH, 64)
    fast, slow = infer_field(*args, MLPConfig()), infer_field(*args, MLPConfig(inference="reference"))
    for f, s, e in zip(fast, slow, expect):  # int8 rounds (the plan quantises each column block on its own)
        assert 0 < (f.double() - e).abs().max() <= 2 * (s.double() - e).abs().max() + 1e-3


@pytest.mark.parametrize("variant", ["dense", "masked", "compacted", "sparse"])
def test_rendered_views_are_the_same_on_both_paths(tiny_scene, variant):
    """render_view (marching in rounds, the taichi kernels) gives the same image on the fast and reference paths."""
    cfg = FieldConfig(depth=2, width=16, skips=(), pos_frequencies=6, dir_frequencies=2)
    model = NerfModel(cfg, fine=True)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.6 if p.dim() == 1 else 2.0 / p.shape[1] ** 0.5)
    g = torch.Generator().manual_seed(5)
    masks = {k: torch.rand(p.shape, generator=g) < 0.5 for k, p in model.named_parameters() if k.endswith("weight")}
    if variant != "dense":
        model = build_variant(model, masks, variant)
    render = RenderConfig(n_coarse=16, n_fine=16, chunk=300)
    view = int(tiny_scene.split("val")[0])
    fast = render_view(model, tiny_scene.cameras, view, render, mlp=MLPConfig())
    slow = render_view(model, tiny_scene.cameras, view, render, mlp=MLPConfig(inference="reference"))
    assert fast["rgb"].std() > 1e-3 and 0 < fast["opacity"].mean() < 1  # a non-trivial image
    for key in ("rgb", "opacity", "depth"):
        np.testing.assert_allclose(fast[key], slow[key], atol=1e-4, rtol=1e-4)


def test_unknown_inference_path_is_refused():
    from nerfprune.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown MLP inference path 'turbo'.*fast, first-layer, unfused, reference"):
        MLPConfig(inference="turbo").validate()
    with pytest.raises(ValueError, match=r"inputs must be \('pos', 'dir'\).*got \['x'\]"):
        InferencePlan(Topology(inputs=(("x", 1),), layers=()), {})
