"""Block-wise forward+backward gives the gradient of the whole batch."""

import pytest
import torch

from nerfprune.backprop import loss_and_backward, rays_per_block
from nerfprune.field import NerfModel, PRESETS
from nerfprune.renderer import RenderConfig


def rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    dirs = torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0])
    target = torch.rand(n, 3, generator=g)
    background = torch.rand(n, 3, generator=g)
    return origins, dirs, target, background


def gradients(model: NerfModel, cfg: RenderConfig, block_points: int, background_per_ray: bool = True):
    origins, dirs, target, background = rays(50)
    if not background_per_ray:
        background = background[0]
    model.zero_grad(set_to_none=True)
    result = loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0, cfg, block_points, training=False)
    return result, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("backend", ["taichi", "torch"])
@pytest.mark.parametrize("background_per_ray", [True, False])
def test_blocks_give_the_whole_batch_gradient(backend, background_per_ray):
    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"])
    cfg = RenderConfig(n_coarse=8, n_fine=8, backend=backend, early_stop_eps=0.0)  # deterministic samples, no early stop
    whole, g_whole = gradients(model, cfg, 0, background_per_ray)
    blocked, g_blocked = gradients(model, cfg, 7 * 16, background_per_ray)  # 7 rays per block: 8 blocks, the last one short
    assert blocked.loss == pytest.approx(whole.loss, rel=1e-5)
    assert blocked.mse_fine == pytest.approx(whole.mse_fine, rel=1e-5)
    assert whole.mse_fine < whole.loss  # the coarse MSE is included in the loss
    for name, g in g_whole.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g_blocked[name], g, rtol=1e-4, atol=1e-7, msg=name)


def test_coarse_only_model_counts_the_coarse_pass_once():
    torch.manual_seed(1)
    model = NerfModel(PRESETS["tiny"], fine=False)
    cfg = RenderConfig(n_coarse=8, n_fine=0, early_stop_eps=0.0)
    whole, _ = gradients(model, cfg, 0)
    blocked, _ = gradients(model, cfg, 8 * 5)
    assert whole.loss == pytest.approx(whole.mse_fine) and blocked.loss == pytest.approx(whole.loss, rel=1e-5)


def test_rays_per_block():
    assert rays_per_block(0, 128, 1024) == 1024  # 0: the whole batch
    assert rays_per_block(8192, 128, 1024) == 64
    assert rays_per_block(100, 128, 1024) == 1  # never zero rays
