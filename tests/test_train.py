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
    # on the background the views are evaluated on: random backgrounds (the default) teach transparency,
    # which a 150-iteration run of 8 + 8 samples in the grid's box barely starts (+1.0 dB instead of +4.9)
    cfg = tiny_cfg(iterations=150, batch_size=256, lr=5e-3, log_every=50, checkpoint_every=1000,
                   random_background=False)
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


def test_resume_accepts_other_render_only_settings(tiny_scene, tmp_path):
    # rays per rendering step and marching rounds change no trained number (their defaults changed once):
    # a run resumes with other values and ends where a straight run does; any other render setting is refused
    straight = Trainer(tiny_scene, tiny_cfg(), tmp_path / "a").run()
    other = RenderConfig(n_coarse=8, n_fine=8, ray_chunk=64, round_samples=4)
    Trainer(tiny_scene, tiny_cfg(render=other), tmp_path / "b").run(until=6)
    resumed = Trainer(tiny_scene, tiny_cfg(), tmp_path / "b").run()
    assert same_weights(straight.state_dict(), resumed.state_dict())
    with pytest.raises(CheckpointError, match=r"different settings \(render\)"):
        Trainer(tiny_scene, tiny_cfg(render=RenderConfig(n_coarse=8, n_fine=4)), tmp_path / "b").run()


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


# -- the divergence guard -------------------------------------------------------------------------

def test_a_nan_loss_stops_training_before_the_step_and_keeps_the_last_good_checkpoint(tiny_scene, tmp_path, monkeypatch):
    import nerfprune.training as training
    from nerfprune.errors import TrainingDiverged

    good = Trainer(tiny_scene, tiny_cfg(iterations=10), tmp_path / "good").run(until=4)  # the weights after 4 steps
    real = training.loss_and_backward

    def nan_at_step_5(model, *args, **kw):
        result = real(model, *args, **kw)
        return result if kw["generator"].initial_seed() % 1_000_003 != 4 else type(result)(**{**vars(result), "loss": float("nan")})

    monkeypatch.setattr(training, "loss_and_backward", nan_at_step_5)
    trainer = Trainer(tiny_scene, tiny_cfg(iterations=10), tmp_path / "run")  # checkpoint_every = 4
    with pytest.raises(TrainingDiverged, match=r"training diverged at iteration 5: the loss is nan; the last checkpoint "
                                               r".*checkpoint.safetensors holds the last good weights; try a lower --lr") as info:
        trainer.run()
    assert info.value.iteration == 5
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert ckpt.iteration == 4 and same_weights(ckpt.model, good.state_dict())
    assert same_weights(trainer.model.state_dict(), good.state_dict()), "the NaN step never reached the weights"


def test_a_non_finite_gradient_is_named(tiny_scene, tmp_path, monkeypatch):
    import nerfprune.training as training
    from nerfprune.errors import TrainingDiverged

    real = training.loss_and_backward

    def inf_gradient(model, *args, **kw):
        result = real(model, *args, **kw)
        model.coarse.sigma.bias.grad.fill_(float("inf"))
        return result

    monkeypatch.setattr(training, "loss_and_backward", inf_gradient)
    with pytest.raises(TrainingDiverged, match="iteration 1: the gradient of coarse.sigma.bias is NaN or infinite; "
                                               "no checkpoint was written"):
        Trainer(tiny_scene, tiny_cfg(iterations=3), tmp_path).run()
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_the_cli_reports_divergence_in_one_line(tiny_scene, tmp_path, monkeypatch, capsys):
    import nerfprune.training as training
    from nerfprune.cli import main

    real = training.loss_and_backward
    monkeypatch.setattr(training, "loss_and_backward",
                        lambda *a, **kw: type(r := real(*a, **kw))(**{**vars(r), "loss": float("inf")}))
    assert main(["train", "--preset", "tiny", "--iterations", "3", "--batch-size", "32", "--n-coarse", "8",
                 "--n-fine", "8", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged at iteration 1: the loss is inf" in err[0] and "--lr" in err[0]


# -- what a checkpoint is checked for, on load and on resume ----------------------------------------

def _rewrite(path, *, config=None, tensors=None, drop=()):
    """Rewrite checkpoint `path` with its config dict or tensors changed."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    if config is not None:
        meta["config"] = json.dumps(config(json.loads(meta["config"])))
    for key in drop:
        meta.pop(key)
    data = load_file(str(path))
    if tensors is not None:
        tensors(data)
    save_file(data, str(path), metadata=meta)


def test_resume_validates_the_stored_config(tiny_scene, tmp_path):
    Trainer(tiny_scene, tiny_cfg(iterations=2), tmp_path).run()
    path = tmp_path / "checkpoint.safetensors"
    _rewrite(path, config=lambda c: {**c, "render": {**c["render"], "n_coarse": 10**9}})
    with pytest.raises(CheckpointError, match=f"{path}: config.render.n_coarse must be in"):
        Trainer(tiny_scene, tiny_cfg(iterations=4), tmp_path).run()


def test_evaluating_a_checkpoint_asking_for_1e9_samples_fails_fast(tiny_scene, tmp_path):
    import time

    import nerfprune

    Trainer(tiny_scene, tiny_cfg(iterations=1), tmp_path).run()
    path = tmp_path / "checkpoint.safetensors"
    _rewrite(path, config=lambda c: {**c, "render": {**c["render"], "n_coarse": 10**9}})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=f"{path}: config.render.n_coarse"):
        nerfprune.evaluate(path, tiny_scene)
    assert time.perf_counter() - start < 10


def test_weights_are_checked_for_names_shapes_dtypes_and_finiteness(tiny_scene, tmp_path):
    Trainer(tiny_scene, tiny_cfg(iterations=1), tmp_path).run()
    path = tmp_path / "checkpoint.safetensors"
    original = path.read_bytes()
    cases = [
        (lambda t: t.pop("model/fine.rgb.bias"), "missing tensor.*model/fine.rgb.bias"),
        (lambda t: t.update({"model/fine.extra.weight": torch.zeros(2)}), "unexpected tensor.*model/fine.extra.weight"),
        (lambda t: t.update({"model/coarse.pts.0.weight": torch.zeros(3, 3)}), r"'model/coarse.pts.0.weight' has shape \(3, 3\)"),
        (lambda t: t["model/coarse.rgb.weight"].view(-1)[0].fill_(float("nan")), "weight tensor 'coarse.rgb.weight' holds NaN"),
        (lambda t: t.update({"model/coarse.rgb.bias": t["model/coarse.rgb.bias"].to(torch.int8)}), "has dtype int8, expected float32"),
        (lambda t: t["optim/coarse.rgb.bias/exp_avg_sq"].fill_(float("inf")), "optimizer state tensor 'coarse.rgb.bias/exp_avg_sq'"),
    ]
    for change, message in cases:
        path.write_bytes(original)
        _rewrite(path, tensors=change)
        with pytest.raises(CheckpointError, match=message) as info:
            load_model(tmp_path)
        assert str(path) in str(info.value)


def test_training_validates_everything_before_writing(tiny_scene, tmp_path):
    from nerfprune.errors import SceneError
    from nerfprune.scene.types import Scene

    no_train = Scene(**{**vars(tiny_scene), "splits": {**tiny_scene.splits, "train": tiny_scene.splits["train"][:0]}})
    with pytest.raises(SceneError, match="the train split is empty"):
        Trainer(no_train, tiny_cfg(iterations=2), tmp_path / "a").run()
    assert not (tmp_path / "a").exists()
    Trainer(tiny_scene, tiny_cfg(iterations=2), tmp_path / "b").run()
    before = (tmp_path / "b" / "config.json").read_text()
    with pytest.raises(CheckpointError, match="different settings"):
        Trainer(tiny_scene, tiny_cfg(iterations=4, lr=1e-3), tmp_path / "b").run()
    assert (tmp_path / "b" / "config.json").read_text() == before, "a refused resume rewrites no config.json"


# -- models remember their scene ------------------------------------------------------------------

def test_checkpoints_record_their_scene_and_old_ones_still_load(tiny_scene, tmp_path):
    from nerfprune.provenance import scene_fingerprint

    Trainer(tiny_scene, tiny_cfg(iterations=1), tmp_path).run()
    ckpt = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert ckpt.scene.format == "builtin" and ckpt.scene.path == "builtin"
    assert ckpt.scene.fingerprint == ckpt.scene_fingerprint == scene_fingerprint(tiny_scene)
    assert ckpt.scene.builtin["width"] == 24 and ckpt.scene.factor == 1 and ckpt.scene.background == "white"
    _rewrite(tmp_path / "checkpoint.safetensors", drop=("scene",))  # as written before scenes were recorded
    model, _, old = load_model(tmp_path)
    assert old.scene is None and old.scene_fingerprint == ckpt.scene_fingerprint


@pytest.mark.parametrize("scene, message", [
    ('[1, 2]', "metadata 'scene' must be a JSON object, got list"),
    ('{"path": 3, "abs_path": "", "format": "npz", "fingerprint": "0"}', "scene.path: expected str, got int 3"),
    ('{"path": "x", "abs_path": "", "format": "npz", "fingerprint": "0", "factor": 0}', "scene.factor must be in"),
    ('{"path": "builtin", "abs_path": "", "format": "builtin", "fingerprint": "0", "builtin": {"width": 100000}}',
     r"scene.builtin.width must be in \[1, 4096\]"),
])
def test_a_damaged_scene_record_is_named(tiny_scene, tmp_path, scene, message):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    Trainer(tiny_scene, tiny_cfg(iterations=1), tmp_path).run()
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(path)), str(path), metadata={**meta, "scene": scene})
    with pytest.raises(CheckpointError, match=f"{path}: .*{message}"):
        load_checkpoint(path)
