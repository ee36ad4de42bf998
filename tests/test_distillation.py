"""Distillation from the dense parent while re-training a pruned model (`nerfprune.loss.Teacher`, `PruneConfig.distill`):
the loss is photometric + w x the distillation term, the teacher renders the student's rays with its jitter, the
option is validated and recorded, and without it training is what it was."""

import copy
import json

import pytest
import torch

from conftest import toward_the_origin
from nerfprune.errors import ConfigError
from nerfprune.field import PRESETS, MLPConfig, NerfModel, NerfModelConfig
from nerfprune.loss import Teacher, block_generators, loss_and_backward
from nerfprune.pruning.lottery import PruneConfig, run_pruning
from nerfprune.renderer import RenderConfig, render_rays
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.training import TrainConfig, Trainer, load_model

CFG = RenderConfig(n_coarse=8, n_fine=8, early_stop_eps=0.0)


def _rays(n=24, seed=5):
    origins, dirs = toward_the_origin(n, seed)
    g = torch.Generator().manual_seed(seed)
    return origins, dirs, torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g)


def _models(backward="handwritten"):
    torch.manual_seed(0)
    student = NerfModel(PRESETS["tiny"], mlp=MLPConfig(backward=backward))
    torch.manual_seed(1)
    return student, NerfModel(PRESETS["tiny"]).requires_grad_(False)


def _step(model, teacher=None, block_points=0, workers=1, seed=11):
    origins, dirs, target, background = _rays()
    model.zero_grad(set_to_none=True)
    result = loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0, CFG, block_points, training=True,
                               generator=torch.Generator().manual_seed(seed), workers=workers, teacher=teacher)
    return result, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_loss_is_photometric_plus_weight_times_the_distillation_term_and_so_is_its_gradient():
    student, teacher_model = _models()
    w = 0.7
    plain, g_plain = _step(student)
    taught, g_taught = _step(student, Teacher(teacher_model, w))
    assert taught.mse_fine == plain.mse_fine  # the teacher's render did not change the student's jitter
    assert taught.distill > 0
    assert taught.loss == pytest.approx(plain.loss + w * taught.distill, rel=1e-6)

    # the distillation term and its gradient, computed here from two renders with the block's jitter
    origins, dirs, _, background = _rays()
    (gen,) = block_generators(torch.Generator().manual_seed(11), 1)
    twin = torch.Generator().set_state(gen.get_state())
    with torch.no_grad():
        want = render_rays(teacher_model, origins, dirs, background, 2.0, 6.0, CFG, training=True, generator=twin)
    out = render_rays(student, origins, dirs, background, 2.0, 6.0, CFG, training=True, generator=gen)
    term = (torch.sum((out["rgb"] - want["rgb"]) ** 2) + torch.sum((out["rgb_coarse"] - want["rgb_coarse"]) ** 2)) / (3 * 24)
    assert taught.distill == pytest.approx(float(term.detach()), rel=1e-6)
    student.zero_grad(set_to_none=True)
    term.backward()
    for name, p in student.named_parameters():
        torch.testing.assert_close(g_taught[name], g_plain[name] + w * p.grad, rtol=1e-4, atol=1e-8, msg=name)
    assert all(p.grad is None for p in teacher_model.parameters())  # the teacher is never trained


def test_the_teacher_sees_the_students_samples():
    """A teacher equal to the student renders the same colours from the same jittered samples: the term is 0."""
    student, _ = _models(backward="autograd")  # the same arithmetic with and without gradient: exactly 0
    twin = copy.deepcopy(student).requires_grad_(False)
    twin.mlp = MLPConfig(backward="autograd", inference="reference")  # without gradient, still the module's forward
    result, _ = _step(student, Teacher(twin, 1.0))
    assert result.distill == 0.0
    twin.mlp = MLPConfig(backward="autograd")  # the inference path (direction term per ray): 0 up to rounding
    result, _ = _step(student, Teacher(twin, 1.0))
    assert 0.0 <= result.distill < 1e-12
    student.mlp = MLPConfig(backward="handwritten")  # another order of float sums: 0 up to rounding
    result, _ = _step(student, Teacher(copy.deepcopy(student).requires_grad_(False), 1.0))
    assert 0.0 <= result.distill < 1e-12


def test_two_block_workers_give_the_one_worker_distilled_loss():
    student, teacher_model = _models()
    teacher = Teacher(teacher_model, 2.0)
    one, g_one = _step(student, teacher, block_points=5 * 16, workers=1)  # 5 rays per block: 5 blocks
    two, g_two = _step(student, teacher, block_points=5 * 16, workers=2)
    assert one.distill > 0
    assert two.loss == pytest.approx(one.loss, rel=1e-5) and two.distill == pytest.approx(one.distill, rel=1e-5)
    assert two.mse_fine == pytest.approx(one.mse_fine, rel=1e-5)
    for name, g in g_one.items():
        torch.testing.assert_close(g_two[name], g, rtol=1e-4, atol=1e-7, msg=name)


# -- the pruning option --------------------------------------------------------------------------------------------

def test_the_option_is_validated():
    PruneConfig(distill=0.5).validate()
    with pytest.raises(ConfigError, match=r"distill must be in \[0, 10000\], got -1.0"):
        PruneConfig(distill=-1.0).validate()
    with pytest.raises(ConfigError, match="distill: expected a finite float, got float nan"):
        PruneConfig(distill=float("nan")).validate()
    with pytest.raises(ConfigError, match="distill_target: unknown distillation target 'samples': choose one of rays"):
        PruneConfig(distill=1.0, distill_target="samples").validate()


@pytest.fixture(scope="module")
def scene16():
    return make_builtin_scene(BuiltinSceneConfig(width=16, height=16, n_views=9, n_test=1))


@pytest.fixture(scope="module")
def parent16(tmp_path_factory, scene16):
    out = tmp_path_factory.mktemp("parent16")
    cfg = TrainConfig(iterations=6, batch_size=64, checkpoint_every=6, model=NerfModelConfig(preset="tiny"),
                      render=RenderConfig(n_coarse=8, n_fine=8))
    Trainer(scene16, cfg, out).run(resume=False)
    return out


def _spy(monkeypatch):
    """Record what every training step's loss got and gave."""
    import nerfprune.training as training

    calls, real = [], training.loss_and_backward

    def spy(model, *args, **kw):
        result = real(model, *args, **kw)
        calls.append((kw.get("teacher"), result))
        return result

    monkeypatch.setattr(training, "loss_and_backward", spy)
    return calls


def test_pruning_distils_from_the_dense_parent_and_records_the_option(parent16, scene16, tmp_path, monkeypatch):
    calls = _spy(monkeypatch)
    cfg = PruneConfig(sparsity=0.8, method="structured", retrain_iterations=3, eval_views=0, distill=0.25)
    run_pruning(parent16, scene16, cfg, tmp_path)
    parent_weights = load_model(parent16)[0].state_dict()
    assert len(calls) == 3
    for teacher, result in calls:
        assert teacher.weight == 0.25
        state = teacher.model.state_dict()
        assert all(torch.equal(state[k], parent_weights[k]) for k in parent_weights)  # the dense parent, untouched
        assert result.distill > 0 and result.loss > result.mse_fine
    saved = json.loads((tmp_path / "prune_config.json").read_text())
    assert saved["distill"] == 0.25 and saved["distill_target"] == "rays"
    record = json.loads((tmp_path / "round-1" / "round.json").read_text())
    assert record["distill"] == 0.25 and record["distill_target"] == "rays"
    assert load_model(tmp_path / "round-1")[2].extra["distill"] == 0.25


def test_without_distillation_a_round_is_the_plain_masked_training_bit_for_bit(parent16, scene16, tmp_path, monkeypatch):
    calls = _spy(monkeypatch)
    cfg = PruneConfig(sparsity=0.8, method="structured", retrain_iterations=3, eval_views=0)
    run_pruning(parent16, scene16, cfg, tmp_path / "prune")
    assert len(calls) == 3 and all(teacher is None and result.distill == 0.0 for teacher, result in calls)
    pruned, retrain_cfg, ckpt = load_model(tmp_path / "prune" / "round-1")
    assert "distill" not in ckpt.extra and "distill" not in json.loads((tmp_path / "prune" / "round-1" / "round.json").read_text())
    parent, _, _ = load_model(parent16)
    plain = Trainer(scene16, retrain_cfg, tmp_path / "plain", masks=ckpt.masks, init_state=parent.state_dict()).run()
    for name, value in plain.state_dict().items():
        assert torch.equal(value, pruned.state_dict()[name]), name


def test_cli_prune_passes_the_options(monkeypatch, parent16, tmp_path):
    import nerfprune.api as api
    from nerfprune.cli import main

    seen = {}
    monkeypatch.setattr(api, "prune", lambda path, scene, cfg, **kw: seen.setdefault("cfg", cfg) and
                        {"rounds": [], "final": "x"})
    assert main(["prune", "--model", str(parent16), "--distill", "0.5", "--out", str(tmp_path / "p")]) == 0
    assert seen["cfg"].distill == 0.5 and seen["cfg"].distill_target == "rays"
    assert main(["prune", "--model", str(parent16), "--distill", "-2", "--out", str(tmp_path / "q")]) == 2
