"""Compaction and `GraphMLP` compute exactly the masked dense network's function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.pruning import GraphMLP, LayerSpec, Topology, compact, nerf_topology, tune_modes

TOL = 1e-5
FAST = settings(max_examples=40, deadline=None)


def reference_forward(topology, state, masks, inputs, prefix=""):
    """The masked dense network, written plainly: act((W * M) @ concat(inputs) + b * Mb)."""
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}
    values = {name: x.double() for (name, _), x in zip(topology.inputs, inputs)}
    for layer in topology.layers:
        w = state[f"{prefix}{layer.name}.weight"].double()
        b = state[f"{prefix}{layer.name}.bias"].double()
        w = w * masks.get(f"{prefix}{layer.name}.weight", torch.ones_like(w, dtype=torch.bool))
        b = b * masks.get(f"{prefix}{layer.name}.bias", torch.ones_like(b, dtype=torch.bool))
        x = torch.cat([values[s] for s, _ in layer.inputs], -1)
        values[layer.name] = act[layer.activation](x @ w.T + b)
    return tuple(values[name] for name in topology.outputs)


def random_state(topology, rng, density, prefix="", bias_masks=False):
    state, masks = {}, {}
    for layer in topology.layers:
        shape = (layer.out_features, layer.in_features)
        key = f"{prefix}{layer.name}"
        state[f"{key}.weight"] = torch.from_numpy(rng.normal(0, 1.5 / max(1, layer.in_features) ** 0.5, shape).astype(np.float32))
        state[f"{key}.bias"] = torch.from_numpy(rng.normal(0, 0.5, layer.out_features).astype(np.float32))
        masks[f"{key}.weight"] = torch.from_numpy(rng.random(shape) < density)
        if bias_masks:
            masks[f"{key}.bias"] = torch.from_numpy(rng.random(layer.out_features) < 0.7)
    return state, masks


def random_inputs(topology, rng, n=16):
    return [torch.from_numpy(rng.normal(0, 1, (n, w)).astype(np.float32)) for _, w in topology.inputs]


def assert_same(got, expect):
    assert len(got) == len(expect)
    for g, e in zip(got, expect):
        assert g.shape == e.shape
        torch.testing.assert_close(g.double(), e, atol=TOL, rtol=TOL)


@st.composite
def nerf_like(draw):
    depth = draw(st.integers(1, 4))
    skips = draw(st.sets(st.integers(0, max(0, depth - 2)), max_size=2)) if depth > 1 else set()
    return nerf_topology(depth, draw(st.integers(2, 6)), skips, draw(st.integers(1, 5)), draw(st.integers(1, 3)))


@st.composite
def random_dag(draw):
    """Hidden layers reading random earlier sources (always one skip from an input), 1-2 output heads."""
    inputs = tuple((f"in{i}", draw(st.integers(1, 4))) for i in range(draw(st.integers(1, 2))))
    sources, layers = list(inputs), []
    for i in range(draw(st.integers(1, 4))):
        picks = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3, unique=True))
        if i == 1:
            picks = [inputs[0]] + [p for p in picks if p != inputs[0]]  # a skip connection
        act = draw(st.sampled_from(["relu", "sigmoid", "none"]))
        layers.append(LayerSpec(f"h{i}", draw(st.integers(1, 5)), tuple(picks), act))
        sources.append((f"h{i}", layers[-1].out_features))
    for j in range(draw(st.integers(1, 2))):
        picks = draw(st.lists(st.sampled_from(sources[len(inputs):]), min_size=1, max_size=2, unique=True))
        layers.append(LayerSpec(f"out{j}", draw(st.integers(1, 3)), tuple(picks), "sigmoid", is_output=True))
    return Topology(inputs=inputs, layers=tuple(layers))


def check_compaction(topology, seed, density, bias_masks=False):
    rng = np.random.default_rng(seed)
    state, masks = random_state(topology, rng, density, prefix="fine.", bias_masks=bias_masks)
    inputs = random_inputs(topology, rng)
    expect = reference_forward(topology, state, masks, inputs, prefix="fine.")
    result = compact(topology, state, masks)
    assert result.parameter_count() <= topology.parameter_count()
    small = GraphMLP(result.topology, result.state, input_index=result.input_index)
    assert_same(small(*inputs), expect)
    masked = GraphMLP(topology, state, masks, prefix="fine.")
    assert_same(masked(*inputs), expect)
    masked.set_modes({l.name: "csr" for l in topology.layers})
    assert_same(masked(*inputs), expect)
    return result, state, masks


@FAST
@given(nerf_like(), st.integers(0, 2**31), st.sampled_from([0.05, 0.2, 0.5, 1.0]), st.booleans())
def test_compaction_of_nerf_shaped_nets_is_exact(topology, seed, density, bias_masks):
    result, _, _ = check_compaction(topology, seed, density, bias_masks)
    for name in topology.outputs:  # output neurons are never removed
        assert result.topology.layer(name).out_features == topology.layer(name).out_features


@FAST
@given(random_dag(), st.integers(0, 2**31), st.sampled_from([0.1, 0.3, 0.6]))
def test_compaction_of_random_graphs_with_skips_is_exact(topology, seed, density):
    check_compaction(topology, seed, density)


@FAST
@given(random_dag(), st.integers(0, 2**31), st.sampled_from([0.1, 0.3]))
def test_compaction_is_a_fixed_point(topology, seed, density):
    result, _, _ = check_compaction(topology, seed, density)
    live = {f"{k}": v != 0 for k, v in result.state.items() if k.endswith(".weight")}
    again = compact(result.topology, result.state, live, net="")
    assert again.topology == result.topology
    assert sum(again.dead_in.values()) + sum(again.dead_out.values()) == 0


@pytest.mark.parametrize("depth,width,skips", [(8, 256, (4,)), (2, 128, ())])
def test_presets_at_95_percent_sparsity(depth, width, skips):
    topology = nerf_topology(depth, width, skips)
    rng = np.random.default_rng(0)
    state, masks = random_state(topology, rng, 0.05, prefix="coarse.")
    inputs = random_inputs(topology, rng, n=64)
    result = compact(topology, state, masks, net="coarse")
    expect = reference_forward(topology, state, masks, inputs, prefix="coarse.")
    model = GraphMLP(result.topology, result.state, input_index=result.input_index)
    sigma, rgb = model(*inputs)
    assert sigma.shape == (64, 1) and rgb.shape == (64, 3)
    assert_same((sigma, rgb), expect)
    assert result.parameter_count() < topology.parameter_count()


def test_nerf_topology_follows_the_spec():
    t = nerf_topology()
    assert [l.name for l in t.layers] == [f"pts.{i}" for i in range(8)] + ["sigma", "feature", "views.0", "rgb"]
    assert t.layer("pts.0").in_features == 63 and t.layer("pts.5").inputs == (("pos", 63), ("pts.4", 256))
    assert t.layer("pts.4").in_features == 256
    assert t.layer("views.0").inputs == (("feature", 256), ("dir", 27)) and t.layer("views.0").out_features == 128
    assert (t.layer("sigma").activation, t.layer("rgb").activation, t.layer("feature").activation) == ("none", "sigmoid", "none")
    assert t.outputs == ("sigma", "rgb")
    assert Topology.from_json(t.to_json()) == t
    small = nerf_topology(2, 128, ())
    assert small.layer("pts.1").inputs == (("pts.0", 128),)
    with pytest.raises(ValueError, match=r"skips \[7\]"):
        nerf_topology(8, 256, (7,))


def test_bad_topologies_and_states_name_the_problem():
    with pytest.raises(ValueError, match="'a' reads 'b'"):
        Topology(inputs=(("x", 2),), layers=(LayerSpec("a", 2, (("b", 2),)),))
    with pytest.raises(ValueError, match="activation 'tanh'"):
        Topology(inputs=(("x", 2),), layers=(LayerSpec("a", 2, (("x", 2),), "tanh"),))
    t = nerf_topology(2, 4, (), 3, 2)
    state, _ = random_state(t, np.random.default_rng(0), 1.0, prefix="coarse.")
    both = state | {k.replace("coarse.", "fine."): v for k, v in state.items()}
    with pytest.raises(ValueError, match="pass net='coarse'"):
        compact(t, both, None)
    with pytest.raises(KeyError, match="fine.pts.0.weight"):
        GraphMLP(t, state, prefix="fine.")


def test_tuned_modes_leave_the_function_unchanged():
    topology = nerf_topology(2, 16, (), 5, 3)
    rng = np.random.default_rng(1)
    state, masks = random_state(topology, rng, 0.1)
    inputs = random_inputs(topology, rng)
    model = GraphMLP(topology, state, masks)
    modes = tune_modes(model, batch=64, repeats=1)
    assert set(modes) == {l.name for l in topology.layers} and set(modes.values()) <= {"dense", "csr"}
    assert_same(model(*inputs), reference_forward(topology, state, masks, inputs))
