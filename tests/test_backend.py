"""The rendering-math interface: both backends implement every method and render the same rays."""

from __future__ import annotations

import inspect

import pytest
import torch

from taichi_kernels.backend import BACKENDS, TAICHI, TORCH, RenderMath, render_math


def _protocol_methods() -> list[str]:
    return [n for n, v in vars(RenderMath).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_implements_the_interface(name):
    math = render_math(name)
    assert isinstance(math, RenderMath) and math.name == name
    assert set(_protocol_methods()) == {"generate_rays", "view_rays", "stratified", "importance", "composite",
                                        "composite_packed", "positional_encoding", "positional_encoding_at"}
    for method in _protocol_methods():
        assert callable(getattr(math, method)), method


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown rendering-math backend 'cuda-magic'.*taichi, torch"):
        render_math("cuda-magic")


def test_both_backends_render_the_same_rays():
    from nerfprune.field import PRESETS, NerfModel
    from nerfprune.renderer import RenderConfig, render_rays

    torch.manual_seed(0)
    model = NerfModel(PRESETS["tiny"]).eval()
    g = torch.Generator().manual_seed(1)
    origins = torch.randn(64, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    dirs = torch.randn(64, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0])
    cfg = RenderConfig(n_coarse=16, n_fine=16, early_stop_eps=0.0)
    with torch.no_grad():
        out = {m.name: render_rays(model, origins, dirs, torch.ones(3), 2.0, 6.0, cfg, math=m) for m in (TAICHI, TORCH)}
    for key in ("rgb", "depth", "opacity", "rgb_coarse"):
        torch.testing.assert_close(out["taichi"][key], out["torch"][key], rtol=1e-4, atol=1e-4, msg=key)
