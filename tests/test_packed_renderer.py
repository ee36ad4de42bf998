"""Rendering and training through the occupancy grid (`nerfprune.packed_renderer`)."""

from __future__ import annotations

import torch
from conftest import toward_the_origin

from nerfprune.field import PRESETS, NerfModel, NerfModelConfig
from nerfprune.occupancy import OccupancyGrid
from nerfprune.renderer import RenderConfig, render_rays
from nerfprune.training import OccupancyConfig, TrainConfig, Trainer, load_model


def _rays(n: int = 48):
    return toward_the_origin(n, seed=2)


def test_an_all_occupied_grid_renders_what_the_dense_sampler_renders():
    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"]).eval()
    origins, dirs = _rays()
    cfg = RenderConfig(n_coarse=16, n_fine=16, early_stop_eps=0.0)
    with torch.no_grad():
        dense = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, cfg)
        model.grid = OccupancyGrid([-8.0] * 3, [8.0] * 3, 8)  # warm-up state: every cell occupied
        packed = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, cfg)
    assert packed["samples"] == 48 * (16 + 32)
    for key in ("rgb", "rgb_coarse", "depth", "opacity"):
        torch.testing.assert_close(packed[key], dense[key], rtol=1e-4, atol=1e-4, msg=key)


def test_rays_through_empty_cells_take_the_background_without_mlp_calls():
    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"]).eval()
    grid = OccupancyGrid([-8.0] * 3, [8.0] * 3, 4)
    grid.update(lambda p: torch.zeros(p.shape[0]), step=0, warmup_steps=0)  # an empty field: no cell occupied
    model.grid = grid
    calls = []
    model.coarse.register_forward_hook(lambda *a: calls.append(1))
    origins, dirs = _rays()
    with torch.no_grad():
        out = render_rays(model, origins, dirs, torch.tensor([0.2, 0.4, 0.6]), 2.0, 6.0, RenderConfig(n_coarse=8, n_fine=8))
    assert out["samples"] == 0 and not calls
    torch.testing.assert_close(out["rgb"], torch.tensor([0.2, 0.4, 0.6]).expand(48, 3))
    assert float(out["opacity"].abs().max()) == 0.0


def test_training_with_the_grid_updates_it_and_resumes_exactly(tiny_scene, tmp_path):
    cfg = TrainConfig(iterations=40, batch_size=128, lr=5e-3, checkpoint_every=20, log_every=10, seed=1,
                      model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8),
                      occupancy=OccupancyConfig(enabled=True, resolution=16, update_every=4, warmup_steps=8))
    full = Trainer(tiny_scene, cfg, tmp_path / "full").run()
    assert full.grid.updates == 10 and not full.grid.warmup and float(full.grid.density.max()) > 0  # updated from the field
    Trainer(tiny_scene, cfg, tmp_path / "half").run(until=20)
    resumed = Trainer(tiny_scene, cfg, tmp_path / "half").run()
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(full.grid.bits, resumed.grid.bits) and torch.equal(full.grid.density, resumed.grid.density)
    loaded, _, _ = load_model(tmp_path / "full")
    assert torch.equal(loaded.grid.bits, full.grid.bits)


def test_a_pruned_model_starts_from_its_parents_grid_and_refreshes_it(tiny_scene, tmp_path):
    from nerfprune.pruning.lottery import PruneConfig, run_pruning

    cfg = TrainConfig(iterations=24, batch_size=128, lr=5e-3, checkpoint_every=24, seed=1,
                      model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8),
                      occupancy=OccupancyConfig(enabled=True, resolution=16, update_every=4, warmup_steps=8))
    parent = Trainer(tiny_scene, cfg, tmp_path / "dense").run()
    assert not parent.grid.warmup and parent.grid.updates == 6
    run_pruning(tmp_path / "dense", tiny_scene, PruneConfig(sparsity=0.5, retrain_iterations=4, eval_views=0),
                tmp_path / "pruned")
    pruned, pruned_cfg, _ = load_model(tmp_path / "pruned" / "round-1")
    assert pruned_cfg.occupancy.warmup_steps == 0  # no warm-up: it would mark every cell occupied again
    # one update (at re-training step 0) on top of the parent's six, from the pruned model's own field
    assert pruned.grid.updates == 7 and not pruned.grid.warmup
    assert not torch.equal(pruned.grid.density, parent.grid.density)


def test_the_grids_decay_comes_from_the_config_and_is_checked(tiny_scene, tmp_path, monkeypatch):
    import pytest

    from nerfprune.errors import ConfigError

    seen = []
    update = OccupancyGrid.update

    def spy(self, fn, step, **kw):
        seen.append(kw["decay"])
        return update(self, fn, step, **kw)

    monkeypatch.setattr(OccupancyGrid, "update", spy)
    cfg = TrainConfig(iterations=8, batch_size=64, checkpoint_every=8, seed=1, val_views=0,
                      model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8),
                      occupancy=OccupancyConfig(enabled=True, resolution=8, update_every=4, warmup_steps=0, decay=0.5))
    Trainer(tiny_scene, cfg, tmp_path / "run").run()
    assert seen == [0.5, 0.5]  # updates at steps 0 and 4
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="decay"):
            OccupancyConfig(decay=bad).validate()
