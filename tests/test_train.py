"""Training: it learns, it is deterministic, resume is exact, Ctrl-C saves, bad checkpoints are named."""

import json

import pytest
import torch

from nerfprune.checkpoint import load_checkpoint
from nerfprune.errors import CheckpointError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import TrainConfig, Trainer, TrainingInterrupted, build_model, load_model


def tiny_cfg(iterations=10, **kw) -> TrainConfig:
    base = dict(iterations=iterations, batch_size=64, log_every=2, checkpoint_every=4, block_points=16 * 16,
                model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8))
    base.update(kw)
    return TrainConfig(**base)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_improves_psnr_on_the_training_views(tiny_scene, tmp_path):
    cfg = tiny_cfg(iterations=150, batch_size=256, lr=5e-3, log_every=50, checkpoint_every=1000)
    before = evaluate_views(build_model(cfg), tiny_scene, cfg.render, EvalConfig(split="train", max_views=3, timing_repeats=0))
    model = Trainer(tiny_scene, cfg, tmp_path).run()
    after = evaluate_views(model, tiny_scene, cfg.render, EvalConfig(split="train", max_views=3, timing_repeats=0))
    assert after["psnr"]["mean"] > before["psnr"]["mean"] + 2.0, (before["psnr"], after["psnr"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [50, 100, 150]
    assert all({"loss", "psnr", "lr", "it_per_s"} <= r.keys() for r in log)


def test_resume_continues_exactly_as_an_uninterrupted_run(tiny_scene, tmp_path):
    straight = Trainer(tiny_scene, tiny_cfg(), tmp_path / "a").run()
    Trainer(tiny_scene, tiny_cfg(), tmp_path / "b").run(until=6)  # stopped after 6 of 10 iterations
    assert load_checkpoint(tmp_path / "b" / "checkpoint.safetensors").iteration == 6
    resumed = Trainer(tiny_scene, tiny_cfg(), tmp_path / "b").run()
    assert same_weights(straight.state_dict(), resumed.state_dict())
    a = load_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    assert a.iteration == b.iteration == 10 and same_weights(a.optimizer, b.optimizer)


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tiny_scene, tmp_path, monkeypatch):
    straight = Trainer(tiny_scene, tiny_cfg(), tmp_path / "a").run()
    trainer = Trainer(tiny_scene, tiny_cfg(), tmp_path / "b")
    real_step = Trainer.step

    def interrupting_step(self, *args):
        if self.iteration == 7:
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "step", interrupting_step)
    with pytest.raises(TrainingInterrupted, match="interrupted at iteration 7"):
        trainer.run()
    monkeypatch.setattr(Trainer, "step", real_step)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.safetensors").iteration == 7
    resumed = Trainer(tiny_scene, tiny_cfg(), tmp_path / "b").run()
    assert same_weights(straight.state_dict(), resumed.state_dict())


def test_resume_refuses_other_settings_and_other_scenes(tiny_scene, tmp_path):
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    Trainer(tiny_scene, tiny_cfg(iterations=2), tmp_path).run()
    with pytest.raises(CheckpointError, match=r"different settings \(batch_size\)"):
        Trainer(tiny_scene, tiny_cfg(iterations=4, batch_size=32), tmp_path).run()
    other = make_builtin_scene(BuiltinSceneConfig(width=24, height=24, n_views=12, n_test=2, seed=5))
    with pytest.raises(CheckpointError, match="different scene images"):
        Trainer(other, tiny_cfg(iterations=4), tmp_path).run()


@pytest.mark.parametrize("content,message", [
    (b"", "not a readable safetensors checkpoint"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "not a readable safetensors checkpoint"),
])
def test_corrupt_checkpoints_are_named(tmp_path, content, message):
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_named(tiny_scene, tmp_path):
    Trainer(tiny_scene, tiny_cfg(iterations=1), tmp_path).run()
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path)


def test_checkpoint_writes_leave_no_temporary_files(tiny_scene, tmp_path):
    Trainer(tiny_scene, tiny_cfg(iterations=9), tmp_path).run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "config.json", "log.jsonl"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["iterations"] == 9 and saved["model"]["preset"] == "tiny"
