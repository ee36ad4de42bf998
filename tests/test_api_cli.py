"""The API and the CLI do the same thing; render and evaluate write what they say."""

import json

import numpy as np
import pytest
import torch

import nerfprune
from nerfprune.cli import main
from nerfprune.field import MLPConfig, NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import TrainConfig, load_model

FLAGS = ["--preset", "tiny", "--iterations", "3", "--batch-size", "64", "--n-coarse", "8", "--n-fine", "8", "--seed", "3"]


@pytest.mark.parametrize("extra, changes", [
    ([], {}),
    (["--block-points", "160", "--mlp-precision", "bf16"], {"block_points": 160, "precision": "bf16"}),
    (["--mlp-backward", "autograd", "--block-workers", "1"], {"backward": "autograd", "block_workers": 1}),
])
def test_cli_train_equals_api_train(tmp_path, extra, changes):
    assert main(["train", *FLAGS, *extra, "--out", str(tmp_path / "cli")]) == 0
    mlp = MLPConfig(precision=changes.get("precision", "fp32"), backward=changes.get("backward", "handwritten"))
    cfg = TrainConfig(iterations=3, batch_size=64, seed=3, block_points=changes.get("block_points"),
                      block_workers=changes.get("block_workers", 2),
                      model=NerfModelConfig(preset="tiny"), mlp=mlp, render=RenderConfig(n_coarse=8, n_fine=8))
    api_model = nerfprune.train("builtin", cfg, out_dir=tmp_path / "api")
    cli_model, cli_cfg, _ = load_model(tmp_path / "cli")
    assert cli_cfg == cfg
    a, b = api_model.state_dict(), cli_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_scene):
    out = tmp_path_factory.mktemp("trained")
    cfg = TrainConfig(iterations=2, batch_size=64, model=NerfModelConfig(preset="tiny"), render=RenderConfig(n_coarse=8, n_fine=8))
    nerfprune.train(tiny_scene, cfg, out_dir=out)
    return out


def test_evaluate_reports_metrics_consistent_with_the_renders(trained, tiny_scene, tmp_path):
    from nerfprune.metrics import psnr

    result = nerfprune.evaluate(trained, tiny_scene, nerfprune.EvalConfig(split="test", timing_repeats=5), out_dir=tmp_path)
    assert result["views"] == tiny_scene.split("test").tolist()
    frames = nerfprune.render(trained, tiny_scene.cameras.subset(tiny_scene.split("test")))
    direct = [psnr(f["rgb"], gt) for f, gt in zip(frames, tiny_scene.images_float(tiny_scene.split("test")))]
    assert [v["psnr"] for v in result["per_view"]] == pytest.approx(direct, rel=1e-6)
    assert result["psnr"]["median"] == pytest.approx(float(np.median(direct)), rel=1e-6)
    assert result["render_time"]["repeats"] == 5 and result["render_time"]["median_s"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["psnr"] == result["psnr"]
    assert len(list((tmp_path / "images").glob("*.png"))) == len(result["views"])


def test_render_writes_pngs_config_and_video(trained, tiny_scene, tmp_path):
    from nerfprune.scene.paths import orbit_path

    cams = orbit_path(tiny_scene.cameras, 4)
    frames = nerfprune.render(trained, cams, out_dir=tmp_path, video="orbit.mp4", prefix="orbit")
    assert len(frames) == 4 and frames[0]["rgb"].shape == (24, 24, 3)
    for kind in ("rgb", "depth", "opacity"):
        assert (tmp_path / f"orbit_003_{kind}.png").exists()
    assert (tmp_path / "render_config.json").exists()
    video = next(tmp_path.glob("orbit.*"))
    assert video.suffix in (".mp4", ".gif") and video.stat().st_size > 0


def test_orbit_path_circles_the_scene_centre(tiny_scene):
    from nerfprune.scene.paths import look_at_point, orbit_path

    centre = look_at_point(tiny_scene.cameras)
    assert np.allclose(centre, 0.0, atol=1e-3)  # the built-in cameras all look at the origin
    cams = orbit_path(tiny_scene.cameras, 8)
    eyes = cams.c2w[:, :, 3]
    assert np.allclose(np.linalg.norm(eyes, axis=1), 4.0, rtol=1e-3)
    cams.validate("orbit")


def test_cli_eval_and_render_run_on_a_trained_model(trained, tmp_path, capsys):
    assert main(["eval", "--model", str(trained), "--repeats", "1", "--max-views", "1", "--out", str(tmp_path / "e")]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert main(["render", "--model", str(trained), "--path", "orbit", "--frames", "2", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "orbit_001_rgb.png").exists()


def test_cli_prune_runs_rounds_and_prints_them(trained, tmp_path, capsys):
    assert main(["prune", "--model", str(trained), "--sparsity", "0.75", "--rounds", "2", "--method", "layerwise",
                 "--retrain-iterations", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "round 1: sparsity 0.500" in out and "round 2: sparsity 0.750" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["method"] == "layerwise" and len(summary["rounds"]) == 2


def test_cli_prune_bad_sparsity_is_exit_2(trained, capsys):
    assert main(["prune", "--model", str(trained), "--sparsity", "1.5"]) == 2
    assert "sparsity must be in (0, 1)" in capsys.readouterr().err
