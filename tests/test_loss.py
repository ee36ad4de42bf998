"""Block-wise forward+backward gives the gradient of the whole batch."""

import pytest
import torch

from nerfprune.loss import loss_and_backward, rays_per_block
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


def test_default_block_size_follows_the_width():
    from nerfprune.loss import auto_block_points
    from nerfprune.field import NerfModelConfig
    from nerfprune.training import TrainConfig

    assert auto_block_points(256) == 8192 and auto_block_points(128) == 32768
    assert TrainConfig(model=NerfModelConfig(preset="nerf")).points_per_block() == 8192
    assert TrainConfig(model=NerfModelConfig(preset="small")).points_per_block() == 32768
    assert TrainConfig(model=NerfModelConfig(preset="small", width=64)).points_per_block() == 131072
    assert TrainConfig(block_points=0).points_per_block() == 0  # explicit values win, 0 included


@pytest.mark.parametrize("backend, mlp_backward", [("taichi", "handwritten"), ("torch", "autograd")])
def test_two_block_workers_give_the_one_worker_gradient(backend, mlp_backward):
    from nerfprune.field import MLPConfig

    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"], mlp=MLPConfig(backward=mlp_backward))
    origins, dirs, target, background = rays(50)
    cfg = RenderConfig(n_coarse=8, n_fine=8, backend=backend)
    results, threads = {}, torch.get_num_threads()
    for workers in (1, 2, 2):
        model.zero_grad(set_to_none=True)
        gen = torch.Generator().manual_seed(7)  # training: jittered samples, drawn per block
        loss = loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0, cfg, 7 * 16, training=True,
                                 generator=gen, workers=workers)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        if workers in results:  # the second two-worker run repeats the first exactly
            assert loss == results[workers][0]
            assert all(torch.equal(g, results[workers][1][n]) for n, g in grads.items())
        results[workers] = (loss, grads)
    (loss1, g1), (loss2, g2) = results[1], results[2]
    # same jitter (it does not depend on the thread running a block), so the same loss up to rounding
    assert loss2.loss == pytest.approx(loss1.loss, rel=1e-5) and loss2.mse_fine == pytest.approx(loss1.mse_fine, rel=1e-5)
    for name, g in g1.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g2[name], g, rtol=1e-4, atol=1e-7, msg=name)
    assert torch.get_num_threads() == threads  # the caller's thread count is restored


def test_block_jitter_depends_on_the_generator():
    from nerfprune.loss import block_generators

    a = [g.initial_seed() for g in block_generators(torch.Generator().manual_seed(1), 4)]
    b = [g.initial_seed() for g in block_generators(torch.Generator().manual_seed(1), 4)]
    c = [g.initial_seed() for g in block_generators(torch.Generator().manual_seed(2), 4)]
    assert a == b and a != c and len(set(a)) == 4
    assert block_generators(None, 3) == [None, None, None]


def test_block_workers_must_be_one_or_two():
    from nerfprune.errors import ConfigError
    from nerfprune.training import TrainConfig

    with pytest.raises(ConfigError, match="block_workers must be 1 or 2, got 3"):
        TrainConfig(block_workers=3).validate()


def test_an_error_in_one_block_worker_stops_the_other_and_is_raised(monkeypatch):
    import nerfprune.loss as backprop

    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"])
    origins, dirs, target, background = rays(48)
    cfg = RenderConfig(n_coarse=8, n_fine=8, early_stop_eps=0.0)
    real, calls = backprop.render_rays, []

    def failing(model, origins, *args, **kwargs):
        calls.append(origins.shape[0])
        if len(calls) == 2:
            raise ValueError("block went wrong")
        return real(model, origins, *args, **kwargs)

    monkeypatch.setattr(backprop, "render_rays", failing)
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="block went wrong"):
        loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0, cfg, 16, training=False, workers=2)
    assert len(calls) < 10  # 48 one-ray blocks: the healthy thread stopped early
    assert all(p.grad is None for p in model.parameters())  # nothing half-summed was written
