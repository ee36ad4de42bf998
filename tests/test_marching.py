"""Early termination in rounds (`nerfprune.marching`): the same image, fewer MLP calls."""

from __future__ import annotations

import torch
from conftest import toward_the_origin

from nerfprune.field import PRESETS, NerfModel
from nerfprune.marching import Packed, shade_in_rounds
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


def _packed(counts: list[int]) -> Packed:
    """Packed samples of len(counts) rays with the given sample counts, steps of 0.1 from depth 1."""
    counts_t = torch.tensor(counts, dtype=torch.int64)
    offsets = torch.cumsum(counts_t, 0) - counts_t
    ray_index = torch.arange(len(counts)).repeat_interleave(counts_t)
    local = torch.arange(int(counts_t.sum())) - offsets[ray_index]
    t = 1.0 + 0.1 * local.float()
    return Packed(t=t, dt=torch.full_like(t, 0.1), ray_index=ray_index, offsets=offsets, counts=counts_t)


def test_pooled_round_outputs_are_zero_where_unevaluated_and_survive_the_next_call():
    """The rounds' density and colour come from a pooled buffer: stale values must never show, and a result
    still held must not be overwritten by the next call (of another sample count in the same pool class)."""
    def shade(samples, sigma_value):
        def run(index):
            return torch.full((index.numel(),), sigma_value), samples.ray_index[index, None].float().expand(-1, 3) + 1.0
        return run

    norm = torch.ones(3)
    clear = _packed([41, 3, 69])  # longer than one round: rounds run
    sigma_a, rgb_a, evaluated_a = shade_in_rounds(shade(clear, 1e-3), clear, norm, 1e-4, 8)
    assert evaluated_a == clear.t.numel() and torch.equal(sigma_a, torch.full_like(sigma_a, 1e-3))
    kept = sigma_a.clone(), rgb_a.clone()
    opaque = _packed([40, 3, 70])  # same pool class, another layout; its rays stop after one round
    sigma_b, rgb_b, evaluated_b = shade_in_rounds(shade(opaque, 50.0), opaque, norm, 1e-4, 8)
    assert torch.equal(sigma_a, kept[0]) and torch.equal(rgb_a, kept[1]), "a held result was overwritten"
    stopped = torch.ones_like(sigma_b, dtype=torch.bool)
    for start, n in zip(opaque.offsets.tolist(), opaque.counts.tolist()):
        stopped[start:start + min(n, 8)] = False
    assert evaluated_b == int((~stopped).sum())
    assert torch.equal(sigma_b[stopped], torch.zeros(int(stopped.sum())))
    assert torch.equal(rgb_b[stopped], torch.zeros(int(stopped.sum()), 3))
    want = sigma_b.clone(), rgb_b.clone()
    del sigma_a, rgb_a, sigma_b, rgb_b
    sigma_c, rgb_c, _ = shade_in_rounds(shade(opaque, 50.0), opaque, norm, 1e-4, 8)  # a buffer that held 1e-3
    assert torch.equal(sigma_c, want[0]) and torch.equal(rgb_c, want[1])
