"""Neuron importance (activation statistics, first-order Taylor) and the structured masks that use it."""

import pytest
import torch

from nerfprune.field.config import FieldConfig
from nerfprune.field.mlp import NerfMLP, NerfModel
from nerfprune.pruning.importance import NeuronRecorder, gather_importance
from nerfprune.pruning.lottery import prunable_weights
from nerfprune.pruning.masks import mask_stats
from nerfprune.pruning.structured import structured_masks

SMALL = FieldConfig(depth=2, width=6, skips=(), pos_frequencies=1, dir_frequencies=1)  # pos 9, dir 9 features


def _net(seed: int = 0, cfg: FieldConfig = SMALL) -> NerfMLP:
    torch.manual_seed(seed)
    return NerfMLP(cfg).double()


def _inputs(n: int, cfg: FieldConfig = SMALL, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, cfg.pos_features, generator=g, dtype=torch.float64)  # [n, P]
    dirs = torch.randn(n, cfg.dir_features, generator=g, dtype=torch.float64)  # [n, D]
    target = torch.rand(n, 3, generator=g, dtype=torch.float64)  # [n, 3]
    return pos, dirs, target


def _loss(sigma_raw: torch.Tensor, rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((rgb - target) ** 2).sum() + torch.relu(sigma_raw).square().sum()


def _manual_activations(net: NerfMLP, pos: torch.Tensor, dirs: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The forward written out layer by layer: {layer: activation [n, out]} of every hidden layer, sigma_raw, rgb."""
    values = {"pos": pos, "dir": dirs}
    for spec in net.topology.layers:
        x = torch.cat([values[s] for s, _ in spec.inputs], dim=-1)
        z = net.layer(spec.name)(x)
        values[spec.name] = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda t: t}[spec.activation](z)
    hidden = {s.name: values[s.name] for s in net.topology.layers if not s.is_output}
    return hidden, values["sigma"], values["rgb"]


def test_a_neuron_that_never_fires_scores_zero():
    net = _net()
    with torch.no_grad():  # pts.0 neuron 2 and views.0 neuron 1: zero weights, negative bias -> ReLU output 0
        net.layer("pts.0").weight[2] = 0.0
        net.layer("pts.0").bias[2] = -1.0
        net.layer("views.0").weight[1] = 0.0
        net.layer("views.0").bias[1] = -1.0
    pos, dirs, target = _inputs(200)
    with NeuronRecorder({"n": net}, taylor=True) as rec:
        _loss(*net(pos, dirs), target).backward()
    for kind in ("activation", "taylor"):
        scores = rec.scores(kind)
        assert scores["n.pts.0"][2] == 0 and scores["n.views.0"][1] == 0, kind
        assert (scores["n.pts.0"][[0, 1, 3, 4, 5]] > 0).all(), f"{kind}: live neurons score above 0"
    assert set(rec.scores("activation")) == {"n.pts.0", "n.pts.1", "n.feature", "n.views.0"}, "heads are not scored"


def test_scores_equal_a_manual_autograd_computation():
    """activation: mean |a|; taylor: mean over points of |a dL/da| -- accumulated over two forward/backward passes."""
    net = _net(seed=3)
    pos, dirs, target = _inputs(300, seed=4)
    halves = (slice(0, 120), slice(120, 300))
    with NeuronRecorder({"n": net}, taylor=True) as rec:
        for part in halves:
            _loss(*net(pos[part], dirs[part]), target[part]).backward()
    manual_abs, manual_taylor = {}, {}
    for part in halves:
        acts, sigma_raw, rgb = _manual_activations(net, pos[part], dirs[part])
        grads = torch.autograd.grad(_loss(sigma_raw, rgb, target[part]), list(acts.values()))
        for (name, a), g in zip(acts.items(), grads):
            manual_abs[name] = manual_abs.get(name, 0) + a.abs().sum(0)
            manual_taylor[name] = manual_taylor.get(name, 0) + (a * g).abs().sum(0)
    for name in manual_abs:
        assert torch.allclose(rec.scores("activation")[f"n.{name}"], manual_abs[name] / 300, rtol=1e-12, atol=0), name
        assert torch.allclose(rec.scores("taylor")[f"n.{name}"], manual_taylor[name] / 300, rtol=1e-10, atol=1e-300), name
    assert all(float(v.detach().max()) > 0 for v in manual_taylor.values())


def test_hooks_are_removed_and_the_forward_is_unchanged():
    net = _net()
    pos, dirs, _ = _inputs(50)
    before = net(pos, dirs)
    with NeuronRecorder({"n": net}) as rec:
        inside = net(pos, dirs)
    net(pos, dirs)  # after the block: not recorded
    assert rec.points["n.pts.0"] == 50
    assert all(torch.equal(a, b) for a, b in zip(before, inside))
    assert not any(net.layer(name)._forward_hooks for name in net.topology.names)


def test_recorder_refuses_a_network_it_cannot_read():
    with pytest.raises(TypeError, match="network 'coarse' is a Linear"):
        NeuronRecorder({"coarse": torch.nn.Linear(2, 2)})
    with pytest.raises(RuntimeError, match="no taylor statistics recorded"):
        NeuronRecorder({"n": _net()}, taylor=True).scores("taylor")


def test_gather_importance_is_deterministic_and_leaves_the_model_alone(tiny_scene):
    from nerfprune.field import NerfModelConfig
    from nerfprune.renderer import RenderConfig
    from nerfprune.training import TrainConfig, build_model

    cfg = TrainConfig(batch_size=48, model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8))
    model = build_model(cfg)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    mlp = model.mlp
    first = gather_importance(model, tiny_scene, cfg, taylor=True, batches=2, seed=5)
    again = gather_importance(model, tiny_scene, cfg, taylor=True, batches=2, seed=5)
    other = gather_importance(model, tiny_scene, cfg, taylor=False, batches=2, seed=6)
    hidden = {f"{net}.{layer}" for net in ("coarse", "fine") for layer in ("pts.0", "pts.1", "feature", "views.0")}
    assert set(first) == {"activation", "taylor"} and set(other) == {"activation"}
    for kind in first:
        assert set(first[kind]) == hidden
        assert all(torch.equal(first[kind][k], again[kind][k]) for k in hidden), f"{kind}: same seed, same scores"
        assert all(bool(v.isfinite().all()) and float(v.max()) > 0 for v in first[kind].values())
    assert not all(torch.equal(first["activation"][k], other["activation"][k]) for k in hidden), "other seed, other rays"
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and model.mlp is mlp


# -- structured masks from scores ------------------------------------------------------------------

MEDIUM = FieldConfig(depth=2, width=64, skips=(), pos_frequencies=6, dir_frequencies=2)
HIDDEN = ("pts.0", "pts.1", "feature", "views.0")


def _model(cfg: FieldConfig = MEDIUM) -> NerfModel:
    torch.manual_seed(0)
    return NerfModel(cfg, fine=False)


def _random_scores(model: NerfModel, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"coarse.{name}": torch.rand(model.coarse.layer(name).out_features, generator=g, dtype=torch.float64)
            for name in HIDDEN}


def _live_rows(masks: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
    return masks[f"coarse.{layer}.weight"].any(1)


@pytest.mark.parametrize("sparsity", [0.8, 0.9, 0.95])
def test_scored_masks_remove_whole_neurons_and_reach_the_sparsity(sparsity):
    model = _model()
    scores = _random_scores(model)
    masks = structured_masks(model, prunable_weights(model), None, sparsity, scores=scores)
    reached = mask_stats(masks)["total"].sparsity
    assert sparsity <= reached <= sparsity + 0.015, reached
    alive = {"pos": torch.ones(MEDIUM.pos_features, dtype=torch.bool), "dir": torch.ones(MEDIUM.dir_features, dtype=torch.bool)}
    for spec in model.topology().layers:  # whole neurons: weight (i, j) is live iff neuron i and input j both are
        if spec.is_output:
            continue
        alive[spec.name] = _live_rows(masks, spec.name)
        columns = torch.cat([alive[source] for source, _ in spec.inputs])
        assert torch.equal(masks[f"coarse.{spec.name}.weight"], alive[spec.name][:, None] & columns[None, :]), spec.name
    for name in ("pts.0", "feature"):  # no head reads these: the kept neurons are exactly the best-scored
        live = _live_rows(masks, name)
        best = torch.argsort(scores[f"coarse.{name}"], descending=True)[: int(live.sum())]
        assert set(best.tolist()) == set(torch.nonzero(live)[:, 0].tolist()), name


def test_scores_decide_which_neurons_stay():
    model = _model()
    low = _random_scores(model, seed=1)
    high = {k: -v for k, v in low.items()}  # the opposite ranking
    a = structured_masks(model, prunable_weights(model), None, 0.9, scores=low)
    b = structured_masks(model, prunable_weights(model), None, 0.9, scores=high)
    assert not (_live_rows(a, "feature") & _live_rows(b, "feature")).any()


def _has_live_path_to_sigma(model: NerfModel, masks: dict[str, torch.Tensor]) -> bool:
    """Some input feature reaches the density head through live weights (pos -> pts.0 -> pts.1 -> sigma)."""
    reach0 = masks["coarse.pts.0.weight"].any(1)  # [W] pts.0 neurons with a live input
    reach1 = (masks["coarse.pts.1.weight"][:, reach0]).any(1)  # [W]
    w_sigma = model.coarse.layer("sigma").weight.detach()[0]  # [W]; heads are not pruned
    return bool((reach1 & (w_sigma != 0)).any())


@pytest.mark.parametrize("min_neurons", [1, 2, 3])
@pytest.mark.parametrize("sparsity", [0.99, 0.999])
def test_the_heads_floor_holds_at_99_percent(min_neurons, sparsity):
    """Ranked last by their scores, the neurons the density head reads most are kept anyway."""
    model = _model()
    width = MEDIUM.width
    scores = {f"coarse.{name}": torch.arange(model.coarse.layer(name).out_features, dtype=torch.float64) for name in HIDDEN}
    with torch.no_grad():  # the density head reads pts.1 neurons 0, 1, 2 most; the colour head views.0 neurons 0 .. 2
        model.coarse.sigma.weight.fill_(1e-3)
        model.coarse.sigma.weight[0, :3] = torch.tensor([5.0, 4.0, 3.0])
        model.coarse.rgb.weight.fill_(1e-3)
        model.coarse.rgb.weight[:, :3] = torch.tensor([5.0, 4.0, 3.0])
    activity = {k: torch.ones_like(v) for k, v in scores.items()}
    masks = structured_masks(model, prunable_weights(model), None, sparsity, scores=scores, activity=activity,
                             min_neurons=min_neurons)
    for name in HIDDEN:  # at 99.9 % the floor is all that is left
        count = int(_live_rows(masks, name).sum())
        assert count == min_neurons if sparsity == 0.999 else count >= min_neurons, name
    for name in ("pts.1", "views.0"):  # the head's strongest inputs are kept, though they score lowest
        assert _live_rows(masks, name)[:min_neurons].all(), name
        assert not _live_rows(masks, name)[min_neurons:width // 4].any(), f"{name}: the other low scorers go"
    assert _live_rows(masks, "pts.0")[width - min_neurons:].all(), "elsewhere the scores rule"
    assert _has_live_path_to_sigma(model, masks)


def test_magnitude_floor_keeps_the_density_head_fed_at_99_percent():
    """Without gathered statistics, |in|_1 x |W_sigma[:, k]|_1 picks the density head's inputs."""
    model = _model()
    masks = structured_masks(model, prunable_weights(model), None, 0.995)
    assert int(_live_rows(masks, "pts.1").sum()) >= 2
    assert _has_live_path_to_sigma(model, masks)


def test_bad_scores_are_named():
    model = _model()
    scores = _random_scores(model)
    del scores["coarse.feature"]
    with pytest.raises(KeyError, match="no neuron scores for layer 'coarse.feature'"):
        structured_masks(model, prunable_weights(model), None, 0.9, scores=scores)
    scores = _random_scores(model)
    scores["coarse.pts.0"] = scores["coarse.pts.0"][:3]
    with pytest.raises(ValueError, match="scores of 'coarse.pts.0' must be \\[64\\] finite values"):
        structured_masks(model, prunable_weights(model), None, 0.9, scores=scores)


@pytest.mark.parametrize("sparsity", [0.9, 0.95])
def test_prune_inputs_drops_whole_encoding_features_and_keeps_the_raw_coordinates(sparsity):
    from nerfprune.pruning.compact import compact
    from nerfprune.pruning.structured import POS_KEPT

    model = _model()
    weights = prunable_weights(model)
    masks = structured_masks(model, weights, None, sparsity, prune_inputs=True)
    assert sparsity <= mask_stats(masks)["total"].sparsity <= sparsity + 0.02
    read = masks["coarse.pts.0.weight"].any(0)  # [pos features] read by a live weight
    assert read[:POS_KEPT].all() and 0 < int(read.sum()) < MEDIUM.pos_features
    live_rows = _live_rows(masks, "pts.0")
    assert torch.equal(masks["coarse.pts.0.weight"], live_rows[:, None] & read[None, :])  # whole columns
    w = model.coarse.layer("pts.0").weight.detach().abs().sum(0)  # the kept features are the largest |column|_1
    rest = torch.arange(POS_KEPT, MEDIUM.pos_features)
    kept = set(torch.nonzero(read[POS_KEPT:])[:, 0].add(POS_KEPT).tolist())
    best = set(rest[torch.argsort(w[rest], descending=True)[: len(kept)]].tolist())
    assert kept == best
    result = compact(model.topology(), model.state_dict(), masks, net="coarse")
    assert result.input_index["pos"].tolist() == torch.nonzero(read)[:, 0].tolist()  # never computed once compacted
    plain = structured_masks(model, weights, None, sparsity)
    assert bool(plain["coarse.pts.0.weight"].any(0).all())  # off: every feature still read


def test_prune_inputs_needs_structured_pruning():
    from nerfprune.errors import ConfigError
    from nerfprune.pruning.lottery import PruneConfig

    with pytest.raises(ConfigError, match="prune_inputs.*needs method 'structured'"):
        PruneConfig(method="global", prune_inputs=True).validate()
    PruneConfig(method="structured", prune_inputs=True).validate()
