"""The feature-grid position encoding (`encoding = "grid"`, `nerfprune.field.feature_grid`): its values against a
trilinear interpolation written out here, gradients reaching the tables through training, every inference path
agreeing, pruning and compaction keeping the grid, checkpoints carrying its box, and bad configs refused."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.checkpoint import load_checkpoint, save_checkpoint
from nerfprune.errors import CheckpointError, ConfigError
from nerfprune.field.config import MLPConfig, NerfModelConfig
from nerfprune.field.feature_grid import FeatureGrid, level_resolutions
from nerfprune.field.runners import infer_field
from nerfprune.pruning.lottery import PruneConfig, next_masks
from nerfprune.pruning.variants import compacted_variant
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.training import TrainConfig, Trainer, load_model
from taichi_kernels.backend import BACKENDS

GRID = dict(encoding="grid", grid_levels=3, grid_resolution=12, grid_features=2)


def _trilinear(table: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """table [C, r, r, r] (z, y, x), points unit [N, 3] (x, y, z) in [0, 1] -> [N, C], corner by corner (float64)."""
    r = table.shape[1]
    pos = np.clip(unit, 0.0, 1.0) * (r - 1)
    base = np.minimum(np.floor(pos).astype(int), r - 2)
    frac = pos - base
    out = np.zeros((unit.shape[0], table.shape[0]))
    for dx, dy, dz in itertools.product((0, 1), repeat=3):
        w = (np.where(dx, frac[:, 0], 1 - frac[:, 0]) * np.where(dy, frac[:, 1], 1 - frac[:, 1])
             * np.where(dz, frac[:, 2], 1 - frac[:, 2]))
        out += w[:, None] * table[:, base[:, 2] + dz, base[:, 1] + dy, base[:, 0] + dx].T
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), levels=st.integers(1, 3), resolution=st.integers(2, 9),
       features=st.integers(1, 3), scale=st.floats(0.5, 20.0))
def test_features_are_the_trilinear_interpolation_of_every_level_times_the_scale(seed, levels, resolution, features,
                                                                                 scale):
    torch.manual_seed(seed)
    lo, hi = np.array([-1.5, -0.5, 0.0]), np.array([1.5, 2.0, 0.7])
    grid = FeatureGrid(levels, resolution, features, scale, tuple(lo), tuple(hi))
    with torch.no_grad():
        for table in grid.tables:
            table.normal_()
    points = lo + (hi - lo) * np.random.default_rng(seed).uniform(-0.1, 1.1, (64, 3))  # some outside: the border
    got = grid(torch.tensor(points, dtype=torch.float32)).detach().double().numpy()
    assert got.shape == (64, 3 + levels * features) == (64, grid.width)
    np.testing.assert_allclose(got[:, :3], points, atol=1e-6)  # the raw coordinates come first
    unit = (points - lo) / (hi - lo)
    for level, table in enumerate(grid.tables):
        want = scale * _trilinear(table[0].detach().double().numpy(), unit)
        np.testing.assert_allclose(got[:, 3 + level * features:3 + (level + 1) * features], want, rtol=1e-4, atol=1e-4)


def test_levels_grow_geometrically_to_the_finest_resolution():
    assert level_resolutions(6, 96) == (16, 23, 33, 47, 67, 96)
    assert level_resolutions(1, 40) == (40,)
    assert level_resolutions(3, 8) == (8, 8, 8)  # a finest level below the base: every level at it


def test_encode_at_gives_the_columns_asked_for_into_the_buffer():
    torch.manual_seed(0)
    grid = FeatureGrid(2, 6, 2, 3.0)
    origins, dirs = torch.randn(5, 3) * 0.3, torch.randn(5, 3) * 0.1
    ray, t = torch.tensor([0, 0, 3, 4, 1]), torch.rand(5)
    full = grid(origins[ray] + t[:, None] * dirs[ray])
    columns = torch.tensor([6, 0, 4])
    out = torch.full((5, 4), 7.0)
    grid.encode_at(origins, dirs, t, ray, columns=columns, out=out)
    torch.testing.assert_close(out[:, :3], full[:, columns])
    assert bool((out[:, 3] == 7.0).all())  # the column after the asked ones is left alone (the plan's ones column)


def _grid_cfg(iterations: int = 12, **model) -> TrainConfig:
    return TrainConfig(iterations=iterations, batch_size=64, lr=5e-3, val_views=0, log_every=1000,
                       checkpoint_every=1000, model=NerfModelConfig(preset="tiny", **{**GRID, **model}),
                       render=RenderConfig(n_coarse=8, n_fine=8))


@pytest.fixture(scope="module")
def trained(tiny_scene, tmp_path_factory):
    """A tiny grid model trained a few steps: (folder, trainer)."""
    out = tmp_path_factory.mktemp("grid")
    trainer = Trainer(tiny_scene, _grid_cfg(), out / "train")
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(resume=False)
    return out / "train", trainer, start


def test_training_moves_the_tables_and_the_box_is_the_scenes(trained, tiny_scene):
    _, trainer, start = trained
    state = trainer.model.state_dict()
    for level in range(3):  # the hand-written backward passes the gradient on to the encoding
        assert not torch.equal(state[f"features.tables.{level}"], start[f"features.tables.{level}"])
    torch.testing.assert_close(state["features.lo"], torch.tensor(tiny_scene.aabb[0], dtype=torch.float32))
    torch.testing.assert_close(state["features.hi"], torch.tensor(tiny_scene.aabb[1], dtype=torch.float32))
    shared = trainer.model.features
    assert trainer.model.coarse is not trainer.model.fine and shared is not None
    assert not any(name.startswith("features.") for name, _ in trainer.model.coarse.named_parameters())


def test_a_saved_grid_model_renders_the_same_after_loading(trained, tiny_scene):
    folder, trainer, _ = trained
    model, cfg, _ = load_model(folder)
    assert cfg.model.encoding == "grid"
    rc = RenderConfig(n_coarse=8, n_fine=8)
    a = render_view(trainer.model.eval(), tiny_scene.cameras, 0, rc)
    b = render_view(model, tiny_scene.cameras, 0, rc)
    np.testing.assert_array_equal(a["rgb"], b["rgb"])


def test_every_inference_path_agrees_with_the_networks_own_forward(trained):
    _, trainer, _ = trained
    model = trainer.model.eval()
    torch.manual_seed(1)
    origins, dirs = torch.randn(6, 3) * 0.2, torch.randn(6, 3)
    t, ray = torch.rand(40) * 3 + 2, torch.randint(0, 6, (40,))
    dir_enc = BACKENDS["torch"].positional_encoding(dirs / dirs.norm(dim=-1, keepdim=True), 2)
    args = (model.coarse, origins, dirs, t, ray, dir_enc, 0)
    outs = {name: infer_field(*args, BACKENDS[backend], 16, MLPConfig(inference=name), features=model.features)
            for name in ("fast", "first-layer", "unfused", "reference") for backend in ("taichi",)}
    for name, (sigma, rgb) in outs.items():
        torch.testing.assert_close(sigma, outs["reference"][0], rtol=1e-5, atol=1e-5, msg=name)
        torch.testing.assert_close(rgb, outs["reference"][1], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("prune_inputs", [False, True])
def test_structured_pruning_keeps_the_grid_and_the_compacted_model_renders_the_masked_one(trained, tiny_scene,
                                                                                          prune_inputs):
    _, trainer, _ = trained
    model = trainer.model.eval()
    cfg = PruneConfig(method="structured", sparsity=0.8, prune_inputs=prune_inputs)
    masks = next_masks(model, None, cfg, 1)
    assert not any(name.startswith("features.") for name in masks)  # only the MLP is pruned
    baked = compacted_variant(model, masks)
    assert baked.features is not None
    reference = type(model)(model.field_cfg, fine=True, mlp=model.mlp)
    reference.load_state_dict({k: v * masks[k] if k in masks else v for k, v in model.state_dict().items()})
    reference.grid = model.grid
    rc = RenderConfig(n_coarse=8, n_fine=8)
    a = render_view(reference.eval(), tiny_scene.cameras, 1, rc)
    b = render_view(baked, tiny_scene.cameras, 1, rc)
    np.testing.assert_allclose(a["rgb"], b["rgb"], atol=2e-5)
    if prune_inputs:
        assert baked.coarse.input_index["pos"].numel() < model.field_cfg.pos_features


def test_a_damaged_box_or_table_is_refused_naming_the_file(trained, tmp_path):
    folder, _, _ = trained
    ckpt = load_checkpoint(folder / "checkpoint.safetensors")
    bad = dataclasses.replace(ckpt, model={**ckpt.model, "features.hi": ckpt.model["features.lo"].clone()})
    save_checkpoint(tmp_path / "box.safetensors", bad)
    with pytest.raises(CheckpointError, match=r"box\.safetensors: the feature grid's box is empty"):
        load_model(tmp_path / "box.safetensors")
    bad = dataclasses.replace(ckpt, model={**ckpt.model, "features.tables.0": torch.zeros(1, 2, 3, 3, 3)})
    save_checkpoint(tmp_path / "table.safetensors", bad)
    with pytest.raises(CheckpointError, match=r"table\.safetensors: tensor 'model/features\.tables\.0' has shape"):
        load_model(tmp_path / "table.safetensors")


def test_a_scene_without_a_box_is_refused_before_anything_is_written(tiny_scene, tmp_path):
    unbounded = dataclasses.replace(tiny_scene, aabb=None)
    with pytest.raises(ConfigError, match="encoding 'grid' needs a bounded scene"):
        Trainer(unbounded, _grid_cfg(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value, message", [
    ("encoding", "hash", "unknown position encoding 'hash'"),
    ("grid_resolution", 1, "grid_resolution must be in"),
    ("grid_levels", 0, "grid_levels must be in"),
    ("grid_scale", float("nan"), "grid_scale: expected a finite float"),
    ("grid_scale", 0.0, "grid_scale must be in"),
    ("grid_features", 64, "must be <= 2\\^28"),
])
def test_bad_grid_settings_are_refused(field, value, message):
    cfg = NerfModelConfig(**{**GRID, "grid_resolution": 512 if field == "grid_features" else 12, field: value})
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_cli_train_passes_the_grid_flags_and_refuses_an_unknown_encoding(monkeypatch, tmp_path, capsys):
    import nerfprune.api as api
    from nerfprune.cli import main

    seen = {}
    monkeypatch.setattr(api, "train", lambda scene, cfg, **kw: seen.setdefault("cfg", cfg))
    assert main(["train", "--preset", "tiny", "--iterations", "1", "--encoding", "grid", "--grid-levels", "4",
                 "--grid-resolution", "40", "--grid-features", "3", "--grid-scale", "5", "--out", str(tmp_path)]) == 0
    model = seen["cfg"].model
    assert (model.encoding, model.grid_levels, model.grid_resolution, model.grid_features, model.grid_scale) == \
        ("grid", 4, 40, 3, 5.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--encoding", "hash"])
    assert exit_info.value.code == 2 and "invalid choice: 'hash'" in capsys.readouterr().err


def test_configs_saved_before_the_grid_existed_load_as_frequency():
    from nerfprune.config import from_dict, to_dict

    old = to_dict(TrainConfig())
    for key in ("encoding", "grid_levels", "grid_resolution", "grid_features", "grid_scale"):
        del old["model"][key]
    cfg = from_dict(TrainConfig, old, "config")
    assert cfg.model.encoding == "frequency" and cfg.model.field_config().pos_features == 63



@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), levels=st.integers(1, 3), resolution=st.integers(2, 9),
       features=st.integers(1, 3), pick=st.booleans())
def test_the_taichi_lookup_kernel_matches_the_torch_reference(seed, levels, resolution, features, pick):
    from taichi_kernels.feature_grid import grid_encoding_at, pack_tables

    torch.manual_seed(seed)
    grid = FeatureGrid(levels, resolution, features, 7.0, (-1.0, -2.0, 0.0), (1.0, 0.5, 3.0))
    with torch.no_grad():
        for table in grid.tables:
            table.normal_()
    origins, dirs = torch.randn(7, 3), torch.randn(7, 3)
    t, ray = torch.rand(50) * 3, torch.randint(0, 7, (50,))  # some points outside the box: the border cells
    columns = torch.randperm(grid.width)[:max(1, grid.width // 2)] if pick else None
    want = grid.encode_at(origins, dirs, t, ray, columns=columns).detach()
    out = torch.full((50, want.shape[1] + 1), 5.0)
    got = grid_encoding_at(origins, dirs, t, ray, pack_tables(list(grid.tables)), torch.stack([grid.lo, grid.hi]),
                           grid.scale, columns=columns, out=out)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert bool((out[:, -1] == 5.0).all())
    torch.testing.assert_close(grid.kernel_encode_at(origins, dirs, t, ray, columns=columns), want, rtol=1e-4,
                               atol=1e-4)


def test_the_kernel_follows_the_tables_as_they_train():
    grid = FeatureGrid(2, 5, 2, 1.0)
    origins, dirs, t, ray = torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([0.1, 0.3]), torch.tensor([0, 0])
    before = grid.kernel_encode_at(origins, dirs, t, ray).clone()
    with torch.no_grad():
        grid.tables[1].add_(1.0)  # an optimiser step changes the table in place
    after = grid.kernel_encode_at(origins, dirs, t, ray)
    torch.testing.assert_close(after[:, 5:], before[:, 5:] + 1.0)
    torch.testing.assert_close(after, grid.encode_at(origins, dirs, t, ray).detach(), rtol=1e-5, atol=1e-5)


def test_the_profiler_counts_the_grid_lookups_as_their_own_stage(trained, tiny_scene):
    from nerfprune.experiments.profile import profile_render

    _, trainer, _ = trained
    model = trainer.model.eval()
    stages = profile_render(model, tiny_scene.cameras, 0, RenderConfig(n_coarse=8, n_fine=8), repeats=1)
    assert stages["grid encoding"] > 0.0  # ("positional encoding" is the view directions' now)
    assert "kernel_encode_at" not in model.features.__dict__  # the timing wrappers are gone afterwards
