"""Lottery-ticket rounds, rewinding, structured pruning and the fast inference variants."""


from dataclasses import replace

import numpy as np
import pytest
import torch

from nerfprune.field import NerfModelConfig
from nerfprune.pruning.variants import VARIANTS, build_variant
from nerfprune.pruning.lottery import PruneConfig, prunable_weights, run_pruning
from nerfprune.renderer import RenderConfig
from nerfprune.training import CHECKPOINT_NAME, TrainConfig, Trainer, load_model


def tiny_cfg(iterations=12, **kw) -> TrainConfig:
    return TrainConfig(iterations=iterations, batch_size=64, log_every=4, checkpoint_every=6,
                       model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8), **kw)


@pytest.fixture(scope="module")
def parent(tmp_path_factory, tiny_scene):
    out = tmp_path_factory.mktemp("parent")
    Trainer(tiny_scene, tiny_cfg(), out, snapshots=(4,)).run(resume=False)
    return out


def test_iterative_rounds_reach_the_target_and_nest(parent, tiny_scene, tmp_path):
    cfg = PruneConfig(sparsity=0.9, rounds=2, retrain_iterations=4, eval_views=1)
    summary = run_pruning(parent, tiny_scene, cfg, tmp_path)
    r1, r2 = summary["rounds"]
    assert r1["sparsity"] == pytest.approx(1 - np.sqrt(0.1), abs=2e-3)
    assert r2["sparsity"] == pytest.approx(0.9, abs=2e-3)
    m1, m2 = load_model(tmp_path / "round-1")[2].masks, load_model(tmp_path / "round-2")[2].masks
    for k in m2:
        assert not (m2[k] & ~m1[k]).any(), "a later round only removes weights"
    model, _, ckpt = load_model(tmp_path / "round-2")
    weights = prunable_weights(model)
    assert set(weights) == set(ckpt.masks)
    for k, w in weights.items():
        assert (w[~ckpt.masks[k]] == 0).all(), f"{k}: pruned weights stay exactly zero after re-training"
    assert np.isfinite(r2["val_psnr"])


def test_finished_rounds_are_skipped_and_an_interrupted_round_resumes(parent, tiny_scene, tmp_path):
    cfg = PruneConfig(sparsity=0.8, rounds=2, retrain_iterations=4, eval_views=0)
    first = run_pruning(parent, tiny_scene, cfg, tmp_path)
    weights_before = load_model(tmp_path / "round-2")[0].state_dict()
    (tmp_path / "round-2" / "round.json").unlink()  # as if stopped before the round was recorded
    again = run_pruning(parent, tiny_scene, cfg, tmp_path)
    assert again["rounds"] == first["rounds"]
    weights_after = load_model(tmp_path / "round-2")[0].state_dict()
    assert all(torch.equal(weights_before[k], weights_after[k]) for k in weights_before)
    # Stopped before round 2 wrote its first checkpoint: its masks are recomputed from round 1's model.
    masks_before = load_model(tmp_path / "round-2")[2].masks
    (tmp_path / "round-2" / "round.json").unlink()
    (tmp_path / "round-2" / CHECKPOINT_NAME).unlink()
    third = run_pruning(parent, tiny_scene, cfg, tmp_path)
    assert third["rounds"] == first["rounds"]
    _, _, ckpt = load_model(tmp_path / "round-2")
    assert set(ckpt.masks) == set(masks_before) and all(torch.equal(ckpt.masks[k], masks_before[k]) for k in masks_before)
    assert all(torch.equal(weights_before[k], ckpt.model[k]) for k in weights_before)


def test_late_rewinding_recreates_the_parents_weights_exactly(parent, tiny_scene, tmp_path):
    from safetensors.torch import load_file

    from nerfprune.pruning.lottery import _rewind_state

    parent_model, parent_cfg, _ = load_model(parent)
    snapshot = load_file(str(parent / "snapshot-4.safetensors"))
    recreated = _rewind_state(tmp_path / "nowhere", parent_cfg, tiny_scene, PruneConfig(rewind="late", rewind_iteration=4),
                              tmp_path, parent_model.state_dict())
    assert all(torch.equal(snapshot[k], recreated[k]) for k in snapshot)
    init = _rewind_state(parent, parent_cfg, tiny_scene, PruneConfig(rewind="init"), tmp_path, {})
    assert not torch.equal(init["coarse.pts.0.weight"], snapshot["coarse.pts.0.weight"])


def test_structured_pruning_removes_whole_neurons(parent, tiny_scene, tmp_path):
    from nerfprune.pruning.compact import compact

    run_pruning(parent, tiny_scene, PruneConfig(sparsity=0.8, method="structured", retrain_iterations=2, eval_views=0), tmp_path)
    model, _, ckpt = load_model(tmp_path / "round-1")
    result = compact(model.topology(), model.state_dict(), ckpt.masks, net="coarse")
    dense_params = model.topology().parameter_count()
    assert result.parameter_count() < 0.45 * dense_params
    for k, m in ckpt.masks.items():
        rows_alive = m.any(1)
        assert (m[rows_alive].sum(1) > 0).all()
    assert result.topology.layer("pts.0").out_features < model.field_cfg.width


@pytest.mark.parametrize("method", ["structured", "global"])
def test_every_inference_variant_computes_the_masked_model(parent, tiny_scene, tmp_path, method):
    run_pruning(parent, tiny_scene, PruneConfig(sparsity=0.9, method=method, retrain_iterations=2, eval_views=0), tmp_path)
    model, _, ckpt = load_model(tmp_path / "round-1")
    torch.manual_seed(0)
    pos = torch.randn(257, model.field_cfg.pos_features)
    dirs = torch.randn(257, model.field_cfg.dir_features)
    masked = build_variant(model, ckpt.masks, "masked")
    with torch.no_grad():
        ref_sigma, ref_rgb = masked.fine(pos, dirs)
    for variant in VARIANTS:
        net = build_variant(model, ckpt.masks, variant).fine
        with torch.no_grad():
            sigma, rgb = net(pos, dirs)
        tol = 5e-2 if variant == "int8" else 1e-5  # int8: per-tensor weight quantisation error
        assert torch.allclose(sigma, ref_sigma, atol=tol, rtol=tol), variant
        assert torch.allclose(rgb, ref_rgb, atol=tol, rtol=tol), variant


def test_retrain_lr_sets_the_fine_tuning_rate_and_zero_keeps_the_parents(parent, tiny_scene, tmp_path):
    import json

    weights = {}
    for lr in (0.0, 1e-2):
        cfg = PruneConfig(sparsity=0.5, retrain_iterations=3, retrain_lr=lr, eval_views=0)
        run_pruning(parent, tiny_scene, cfg, tmp_path / f"lr{lr:g}")
        saved = json.loads((tmp_path / f"lr{lr:g}" / "round-1" / "config.json").read_text())
        assert saved["lr"] == (lr or tiny_cfg().lr)
        weights[lr] = load_model(tmp_path / f"lr{lr:g}" / "round-1")[0].state_dict()
    moved = [k for k in weights[0.0] if not torch.equal(weights[0.0][k], weights[1e-2][k])]
    assert moved, "a different fine-tuning rate trains to different weights"


def test_pruning_a_pruned_model_is_refused(parent, tiny_scene, tmp_path):
    from nerfprune.errors import ConfigError

    run_pruning(parent, tiny_scene, PruneConfig(sparsity=0.5, retrain_iterations=1, eval_views=0), tmp_path / "a")
    with pytest.raises(ConfigError, match="already pruned"):
        run_pruning(tmp_path / "a" / "round-1", tiny_scene, PruneConfig(), tmp_path / "b")


@pytest.mark.parametrize("fields,message", [
    ({"sparsity": 1.0}, "sparsity must be in"), ({"method": "magic"}, "unknown pruning method"),
    ({"rewind": "x"}, "unknown rewind"),
    ({"importance": "loud", "method": "structured"}, "importance: unknown neuron importance 'loud'"),
    ({"importance": "taylor"}, "importance: 'taylor' scores whole neurons; it needs method 'structured', got method 'global'"),
    ({"importance_batches": 0}, "importance_batches must be in \\[1, 1000\\], got 0"),
    ({"min_neurons": 0}, "min_neurons must be in \\[1, 4096\\], got 0"),
    ({"schedule": "linear"}, "schedule: unknown sparsity schedule 'linear': choose one of geometric, cubic"),
    ({"importance_batches": 2.0}, "importance_batches: expected int"),
])
def test_bad_prune_config_is_named(fields, message):
    from nerfprune.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        PruneConfig(**fields).validate()


def test_sparsity_schedules_per_round():
    geometric = PruneConfig(sparsity=0.95, rounds=4)
    cubic = PruneConfig(sparsity=0.95, rounds=4, schedule="cubic")
    assert [geometric.sparsity_after(r) for r in range(5)] == pytest.approx([1 - 0.05 ** (r / 4) for r in range(5)])
    assert [cubic.sparsity_after(r) for r in range(5)] == pytest.approx(
        [0.0, 0.95 * 37 / 64, 0.95 * 7 / 8, 0.95 * 63 / 64, 0.95])  # s (1 - (1 - r/4)^3)
    kept = [1 - geometric.sparsity_after(r) for r in range(5)]
    assert np.diff(np.log(kept)) == pytest.approx([np.log(0.05) / 4] * 4), "geometric: the same share of the live each round"
    removed = np.diff([cubic.sparsity_after(r) for r in range(5)])  # weights removed per round, of all prunable
    assert (np.diff(removed) < 0).all(), "cubic: much early, little late"
    assert PruneConfig(sparsity=0.9, schedule="cubic").sparsity_after(1) == pytest.approx(0.9), "one round: the target"


@pytest.mark.parametrize("schedule", ["geometric", "cubic"])
def test_structured_rounds_track_the_schedule_without_adding_up_overshoot(schedule):
    """Each round aims at the schedule's absolute target from the live count, so the steps of whole neurons
    (every round lands a little beyond its target) do not accumulate."""
    from nerfprune.field.config import FieldConfig
    from nerfprune.field.mlp import NerfModel
    from nerfprune.pruning.lottery import next_masks
    from nerfprune.pruning.masks import mask_stats

    torch.manual_seed(0)
    model = NerfModel(FieldConfig(depth=2, width=64, skips=(), pos_frequencies=6, dir_frequencies=2), fine=False)
    cfg = PruneConfig(sparsity=0.95, rounds=5, schedule=schedule, method="structured")
    masks = None
    for r in range(1, 6):
        masks = next_masks(model, masks, cfg, r)
        reached = mask_stats(masks)["total"].sparsity
        assert cfg.sparsity_after(r) <= reached <= cfg.sparsity_after(r) + 0.02, (r, reached)
    assert reached <= 0.953


def test_gradual_structured_taylor_rounds_continue_from_the_last_weights(parent, tiny_scene, tmp_path):
    """Cubic schedule, Taylor scores, no rewind: round r+1 fine-tunes round r's weights (re-run by hand, bit for bit)."""
    cfg = PruneConfig(sparsity=0.9, rounds=3, schedule="cubic", rewind="continue", method="structured",
                      importance="taylor", importance_batches=1, retrain_iterations=2, eval_views=0)
    summary = run_pruning(parent, tiny_scene, cfg, tmp_path / "gradual")
    targets = [cfg.sparsity_after(r) for r in (1, 2, 3)]
    assert [r["target_sparsity"] for r in summary["rounds"]] == pytest.approx(targets)
    for record, target in zip(summary["rounds"], targets):  # whole neurons come in steps of a neuron per layer
        assert target - 1e-9 <= record["sparsity"] <= target + 0.03, record
    round_masks = [load_model(tmp_path / "gradual" / f"round-{r}")[2].masks for r in (1, 2, 3)]
    for earlier, later in zip(round_masks, round_masks[1:]):
        assert all(not (later[k] & ~earlier[k]).any() for k in later), "a later round only removes neurons"
    round1, train_cfg, _ = load_model(tmp_path / "gradual" / "round-1")
    manual = Trainer(tiny_scene, train_cfg, tmp_path / "manual", masks=round_masks[1],
                     init_state={k: v.clone() for k, v in round1.state_dict().items()}).run(resume=False)
    round2 = load_model(tmp_path / "gradual" / "round-2")[0]
    assert all(torch.equal(manual.state_dict()[k], v) for k, v in round2.state_dict().items())


def test_rewinding_rounds_restart_from_the_pretrained_weights(parent, tiny_scene, tmp_path):
    """The contrast to "continue": with "finetune" every round starts from the parent's weights, masked."""
    cfg = PruneConfig(sparsity=0.8, rounds=2, method="structured", importance="activation", importance_batches=1,
                      retrain_iterations=2, eval_views=0)
    run_pruning(parent, tiny_scene, cfg, tmp_path / "lt")
    masks2 = load_model(tmp_path / "lt" / "round-2")[2].masks
    pretrained, train_cfg, _ = load_model(parent)
    manual = Trainer(tiny_scene, replace(train_cfg, iterations=2), tmp_path / "manual", masks=masks2,
                     init_state={k: v.clone() for k, v in pretrained.state_dict().items()}).run(resume=False)
    round2 = load_model(tmp_path / "lt" / "round-2")[0]
    assert all(torch.equal(manual.state_dict()[k], v) for k, v in round2.state_dict().items())
