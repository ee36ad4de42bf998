"""Reviving a density head that pruning closed: `pruning.lottery.revive_density_heads`."""

import pytest
import torch

from nerfprune.errors import ConfigError
from nerfprune.field.config import FieldConfig
from nerfprune.field.mlp import NerfModel
from nerfprune.field import PRESETS
from nerfprune.occupancy import OccupancyGrid
from nerfprune.pruning.lottery import REVIVE_POINTS, PruneConfig, revive_density_heads
from taichi_kernels.reference import positional_encoding


def _model(activation: str = "relu", grid: bool = True) -> NerfModel:
    torch.manual_seed(0)
    model = NerfModel(FieldConfig(**{**PRESETS["tiny"].__dict__, "density_activation": activation}))
    if grid:
        model.grid = OccupancyGrid((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), 8)
        model.grid.update(lambda p: (p.norm(dim=-1) < 0.6).float() * 10.0, step=0, warmup_steps=0)  # a ball
        with torch.no_grad():  # the reference head: positive at about half of the points
            for net in model.networks().values():
                net.sigma.bias.fill_(0.0)
    return model


def _positive_share(model: NerfModel, state: dict, points: torch.Tensor) -> dict[str, float]:
    m = _model(model.field_cfg.density_activation, grid=False)
    m.load_state_dict(state)
    enc = positional_encoding(points, m.field_cfg.pos_frequencies)
    d = enc.new_zeros(points.shape[0], m.field_cfg.dir_features)
    return {n: float((net(enc, d)[0][:, 0] > 0).double().mean()) for n, net in m.networks().items()}


def test_a_closed_head_is_reopened_to_the_reference_share_and_only_once():
    model = _model()
    assert 0.0 < model.grid.occupied_fraction < 0.5
    init = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("coarse", "fine"):
        init[f"{name}.sigma.bias"] -= 100.0  # raw < 0 everywhere: what pruning left on mic
    occupied = torch.nonzero(model.grid.occupied.reshape(-1))[:, 0]
    points = model.grid.cell_points(occupied[torch.randint(occupied.numel(), (4096,))], torch.rand(4096, 3))
    assert max(_positive_share(model, init, points).values()) == 0.0
    shifts = revive_density_heads(model, init, {}, seed=3)
    assert set(shifts) == {"coarse", "fine"} and all(v > 90.0 for v in shifts.values())
    want = _positive_share(model, model.state_dict(), points)
    got = _positive_share(model, init, points)
    for name in want:  # the same share of positive raw density (other points than the ones matched on)
        assert got[name] == pytest.approx(want[name], abs=0.05), (name, got, want)
    assert revive_density_heads(model, init, {}, seed=3) == {}  # matched: nothing more to do


def test_masks_are_applied_before_matching_and_an_open_head_is_left_alone():
    model = _model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    assert revive_density_heads(model, init, {}, seed=0) == {}  # unpruned: already the reference
    masks = {"coarse.sigma.weight": torch.zeros_like(init["coarse.sigma.weight"], dtype=torch.bool)}
    init["coarse.sigma.bias"].fill_(-1.0)  # with the head's weights masked away, raw = bias < 0 everywhere
    shifts = revive_density_heads(model, init, masks, seed=0)
    assert set(shifts) == {"coarse"} and shifts["coarse"] == pytest.approx(1.0)
    assert REVIVE_POINTS >= 1024


@pytest.mark.parametrize("activation, grid", [("softplus", True), ("relu", False)])
def test_nothing_is_done_for_other_activations_or_without_a_grid(activation, grid):
    model = _model(activation, grid=grid)
    init = {k: v - 100.0 if k.endswith("sigma.bias") else v.clone() for k, v in model.state_dict().items()}
    assert revive_density_heads(model, init, {}, seed=0) == {}


def test_revive_density_is_a_switch():
    with pytest.raises(ConfigError, match="revive_density"):
        PruneConfig(revive_density=0.01).validate()
    PruneConfig(revive_density=False).validate()
