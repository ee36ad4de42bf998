"""The demo pipeline end to end at toy size: train, render, evaluate, prune twice, compare."""

import json

from nerfprune.experiments.demo import DemoConfig, run_demo
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.scene.builtin import BuiltinSceneConfig
from nerfprune.training import TrainConfig


def test_demo_runs_end_to_end_and_reports_what_it_wrote(tmp_path):
    cfg = DemoConfig(
        out_dir=str(tmp_path),
        scene=BuiltinSceneConfig(width=20, height=20, n_views=9, n_test=2),
        train=TrainConfig(iterations=4, batch_size=64, model=NerfModelConfig(preset="tiny"),
                          render=RenderConfig(n_coarse=8, n_fine=8)),
        orbit_frames=2, finetune_iterations=2, timing_repeats=1,
    )
    summary = run_demo(cfg)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["psnr_test_mean"] == metrics["psnr"]["mean"]
    rows = json.loads((tmp_path / "prune" / "table.json").read_text())
    assert [r["path"] for r in rows] == ["dense", "masked", "baked", "compacted", "structured"]
    assert rows[0]["x_dense_time"] == 1.0 and all(r["median_s"] > 0 for r in rows)
    assert summary["structured_x_dense_time"] == rows[-1]["x_dense_time"]
    # MLP samples per ray of the timed view: coarse (<= 8) + fine (the coarse ones again + 8) at most
    assert all(0 < r["samples_per_ray"] <= 8 + 8 + 8 for r in rows)
    masked, baked = rows[1], rows[2]  # one pruned model, one grid, the same products: the same samples
    assert masked["samples_per_ray"] == baked["samples_per_ray"]
    assert (tmp_path / "render" / "test" / "test_001_rgb.png").exists()
    assert any((tmp_path / "render" / "orbit").glob("orbit.*"))
