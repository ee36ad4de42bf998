"""bf16 MLP precision: float32 in and out, close to fp32, and training still learns."""

import pytest
import torch

from nerfprune.errors import ConfigError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field import PRESETS, MLPConfig, NerfMLP, NerfModelConfig
from nerfprune.field.runners import run_network
from nerfprune.renderer import RenderConfig
from nerfprune.training import TrainConfig, Trainer, build_model


def test_bf16_network_is_close_to_fp32_and_returns_float32():
    torch.manual_seed(0)
    cfg = PRESETS["small"]
    net = NerfMLP(cfg)
    pos = torch.rand(4096, cfg.pos_features) * 2 - 1
    dirs = torch.rand(4096, cfg.dir_features) * 2 - 1
    sig32, rgb32 = run_network(net, pos, dirs, chunk=1000)
    sig16, rgb16 = run_network(net, pos, dirs, chunk=1000, precision="bf16")
    assert sig16.dtype == rgb16.dtype == torch.float32 and sig16.shape == sig32.shape
    assert 0 < (rgb16 - rgb32).abs().max() < 2e-2  # bf16 is really used, and only rounds
    assert (sig16 - sig32).abs().max() < 3e-2 * sig32.abs().max()


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="unknown MLP precision 'fp16'.*fp32, bf16"):
        MLPConfig(precision="fp16").validate()


def test_training_in_bf16_learns(tiny_scene, tmp_path):
    cfg = TrainConfig(iterations=150, batch_size=256, lr=5e-3, log_every=50, checkpoint_every=1000, block_points=1024,
                      model=NerfModelConfig(preset="tiny"), mlp=MLPConfig(precision="bf16"),
                      render=RenderConfig(n_coarse=8, n_fine=8), random_background=False)  # as test_train's
    views = EvalConfig(split="train", max_views=3, timing_repeats=0)
    before = evaluate_views(build_model(cfg), tiny_scene, cfg.render, views)
    model = Trainer(tiny_scene, cfg, tmp_path).run()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights and Adam stay fp32
    after = evaluate_views(model, tiny_scene, cfg.render, views)
    assert after["psnr"]["mean"] > before["psnr"]["mean"] + 2.0, (before["psnr"], after["psnr"])
