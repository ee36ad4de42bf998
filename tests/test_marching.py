"""Early termination in rounds (`nerfprune.marching`): the same image, fewer MLP calls."""

from __future__ import annotations

import torch
from conftest import toward_the_origin

from nerfprune.field import PRESETS, NerfModel
from nerfprune.renderer import RenderConfig, render_rays


def _opaque_model() -> NerfModel:
    """A tiny model whose density is large everywhere: rays become opaque after a few samples."""
    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for net in model.networks().values():
            net.sigma.bias.fill_(30.0)
    return model


def _rays(n: int = 40):
    return toward_the_origin(n, seed=5)


def test_rounds_give_the_image_of_evaluating_every_sample_with_fewer_mlp_points():
    model = _opaque_model()
    origins, dirs = _rays()
    with torch.no_grad():
        every = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, RenderConfig(n_coarse=32, n_fine=32, round_samples=0))
        rounds = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, RenderConfig(n_coarse=32, n_fine=32, round_samples=4))
    for key in ("rgb", "rgb_coarse", "depth", "opacity"):
        torch.testing.assert_close(rounds[key], every[key], rtol=1e-5, atol=1e-5, msg=key)
    assert every["samples"] == 40 * (32 + 64)
    assert rounds["samples"] < every["samples"] / 2  # opaque early on: half of the samples are never evaluated


def test_rounds_equal_the_padded_compositing_on_a_transparent_field():
    torch.manual_seed(1)
    model = NerfModel(PRESETS["tiny"]).eval()
    origins, dirs = _rays()
    cfg = dict(n_coarse=16, n_fine=16)
    with torch.no_grad():
        padded = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, RenderConfig(**cfg, early_stop_eps=0.0))
        rounds = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, RenderConfig(**cfg, round_samples=4))
    for key in ("rgb", "depth", "opacity"):
        torch.testing.assert_close(rounds[key], padded[key], rtol=1e-3, atol=1e-3, msg=key)


def test_training_never_marches_in_rounds():
    model = _opaque_model().train()
    origins, dirs = _rays(8)
    out = render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, RenderConfig(n_coarse=8, n_fine=8), training=True)
    assert out["samples"] == 8 * (8 + 16)
    (out["rgb"] + out["rgb_coarse"]).sum().backward()
    assert model.coarse.pts[0].weight.grad is not None
