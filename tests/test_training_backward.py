"""The hand-written MLP backward (`nerfprune.field.training_backward`) against autograd through `NerfMLP.forward`."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.loss import loss_and_backward
from nerfprune.errors import ConfigError
from nerfprune.field import PRESETS, FieldConfig, MLPConfig, NerfMLP, NerfModel
from nerfprune.field.training_backward import forward_rays
from nerfprune.renderer import RenderConfig


def _loss(sigma_raw: torch.Tensor, rgb: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # a loss that uses every output differently, so a swapped or missing gradient shows
    return (torch.sin(sigma_raw[:, 0]) * weights[:, 0]).sum() + (rgb * weights[:, 1:]).sum()


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(1, 4), width=st.sampled_from([2, 6, 16]), skip_seed=st.integers(0, 7),
    rays=st.integers(1, 5), samples=st.integers(1, 6), input_grads=st.booleans(),
)
def test_values_and_gradients_match_autograd(depth, width, skip_seed, rays, samples, input_grads):
    skips = tuple(i for i in range(depth - 1) if (skip_seed >> i) & 1)  # any subset of the layers before the last
    cfg = FieldConfig(depth=depth, width=width, skips=skips, pos_frequencies=2, dir_frequencies=1)
    torch.manual_seed(depth * 100 + rays * 10 + samples)
    net = NerfMLP(cfg).double()
    pos = torch.randn(rays * samples, cfg.pos_features, dtype=torch.float64, requires_grad=input_grads)
    dirs = torch.randn(rays, cfg.dir_features, dtype=torch.float64, requires_grad=input_grads)
    weights = torch.randn(rays * samples, 4, dtype=torch.float64)
    wanted = [pos, dirs, *net.parameters()] if input_grads else list(net.parameters())

    ref_sigma, ref_rgb = net(pos, dirs.repeat_interleave(samples, 0))  # one direction encoding per sample
    ref_grads = torch.autograd.grad(_loss(ref_sigma, ref_rgb, weights), wanted)
    sigma, rgb = forward_rays(net, pos, dirs, samples)
    grads = torch.autograd.grad(_loss(sigma, rgb, weights), wanted)

    torch.testing.assert_close(sigma, ref_sigma, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rgb, ref_rgb, rtol=1e-12, atol=1e-12)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_inputs():
    torch.manual_seed(0)
    cfg = FieldConfig(depth=3, width=4, skips=(0,), pos_frequencies=1, dir_frequencies=1)
    net = NerfMLP(cfg).double()
    pos = torch.randn(6, cfg.pos_features, dtype=torch.float64, requires_grad=True)
    dirs = torch.randn(2, cfg.dir_features, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, d: forward_rays(net, p, d, 3), (pos, dirs))


def test_only_the_rgb_or_only_the_density_may_be_used():
    torch.manual_seed(0)
    net = NerfMLP(PRESETS["tiny"])
    pos, dirs = torch.randn(12, PRESETS["tiny"].pos_features), torch.randn(3, PRESETS["tiny"].dir_features)
    for pick in (0, 1):
        out = forward_rays(net, pos, dirs, 4)[pick]
        grads = torch.autograd.grad(out.sum(), list(net.parameters()), allow_unused=True)
        ref = torch.autograd.grad(net(pos, dirs.repeat_interleave(4, 0))[pick].sum(), list(net.parameters()), allow_unused=True)
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g if g is not None else torch.zeros_like(r), r if r is not None else torch.zeros_like(g))


def test_points_must_be_whole_rays():
    net = NerfMLP(PRESETS["tiny"])
    with pytest.raises(ValueError, match="10 points is not 3 rays x 4 samples"):
        forward_rays(net, torch.zeros(10, PRESETS["tiny"].pos_features), torch.zeros(3, PRESETS["tiny"].dir_features), 4)


@pytest.mark.parametrize("block_points", [0, 7 * 16])
def test_training_gradient_is_the_autograd_one(block_points, monkeypatch):
    """The whole loss (both networks, compositing, blocks): hand-written and autograd MLP backward agree."""
    import nerfprune.field.training_backward as backward_module

    calls = []
    real = backward_module.forward_rays
    monkeypatch.setattr(backward_module, "forward_rays", lambda *a: calls.append(1) or real(*a))
    g = torch.Generator().manual_seed(3)
    origins = torch.randn(40, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    dirs = torch.randn(40, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0])
    target, background = torch.rand(40, 3, generator=g), torch.rand(40, 3, generator=g)
    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"])
    grads = {}
    for mode in ("handwritten", "autograd"):
        calls.clear()
        cfg = RenderConfig(n_coarse=8, n_fine=8, early_stop_eps=0.0)
        model.mlp = MLPConfig(backward=mode)
        model.zero_grad(set_to_none=True)
        result = loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0, cfg, block_points, training=False)
        grads[mode] = (result.loss, {n: p.grad.clone() for n, p in model.named_parameters()})
        assert (len(calls) > 0) == (mode == "handwritten")  # the hand-written path really ran, and only when asked
    assert grads["handwritten"][0] == pytest.approx(grads["autograd"][0], rel=1e-6)
    for name, ref in grads["autograd"][1].items():
        assert ref.abs().max() > 0, name
        torch.testing.assert_close(grads["handwritten"][1][name], ref, rtol=1e-4, atol=1e-7, msg=name)


def test_unknown_mlp_backward_is_refused():
    with pytest.raises(ConfigError, match="unknown MLP backward 'magic'.*handwritten, autograd"):
        MLPConfig(backward="magic").validate()


def test_packed_points_give_the_autograd_values_and_gradients():
    """Packed layout (a ray index per point, any count per ray, rays in any order): same as autograd."""
    torch.manual_seed(4)
    cfg = FieldConfig(depth=3, width=8, skips=(0,), pos_frequencies=2, dir_frequencies=1)
    net = NerfMLP(cfg).double()
    ray_index = torch.tensor([2, 0, 0, 3, 3, 3, 2, 0])  # ray 1 has no point
    pos = torch.randn(8, cfg.pos_features, dtype=torch.float64, requires_grad=True)
    dirs = torch.randn(4, cfg.dir_features, dtype=torch.float64, requires_grad=True)
    sigma, rgb = forward_rays(net, pos, dirs, ray_index)
    ref_sigma, ref_rgb = net(pos, dirs[ray_index])
    torch.testing.assert_close(sigma, ref_sigma)
    torch.testing.assert_close(rgb, ref_rgb)
    params = [pos, dirs, *net.parameters()]
    got = torch.autograd.grad((sigma.sum() + (rgb * torch.arange(3.0, dtype=rgb.dtype)).sum()), params)
    ref = torch.autograd.grad((ref_sigma.sum() + (ref_rgb * torch.arange(3.0, dtype=rgb.dtype)).sum()), params)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
