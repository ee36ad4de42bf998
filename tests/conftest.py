"""Shared fixtures: the built-in scene at test size, paths to the real datasets; the kernel tests on a device."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]


# CI replays the same examples on every run (a red CI then means a change broke something, not a new draw);
# local runs keep exploring new examples and replay stored failures from .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def datasets_dir() -> Path:
    """`../shared/datasets` beside the repository (override with NERFPRUNE_DATASETS)."""
    return Path(os.environ.get("NERFPRUNE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def tiny_scene():
    from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene

    return make_builtin_scene(BuiltinSceneConfig(width=24, height=24, n_views=12, n_test=2))


@pytest.fixture
def python_exe() -> str:
    return sys.executable


# The kernel property tests on a GPU (scripts/gpu_check.py runs them with NERFPRUNE_TI_ARCH=cuda and
# NERFPRUNE_TEST_DEVICE=cuda). The tests make their inputs on the CPU, with CPU generators, and compare
# with the torch references there. Taichi would accept those CPU tensors on CUDA by copying every
# argument to the GPU and back around each launch, but `taichi_kernels.runtime.launch` refuses tensors
# on the wrong device, as the renderer must never pay for that copy. So with NERFPRUNE_TEST_DEVICE set,
# each kernel entry point below is called with its tensor arguments moved to that device and its results
# brought back: the kernels read and write device memory, as in training, and the tests run unchanged
# (gradients flow through the moves). Tests that look at buffer addresses skip on another device.
KERNEL_DEVICE = os.environ.get("NERFPRUNE_TEST_DEVICE")
KERNEL_ENTRY_POINTS = {  # module of taichi_kernels -> functions the tests and the backend call
    "rays": ("generate_rays", "view_rays"),
    "sampling": ("stratified", "_fine_samples"),  # `importance` calls `_fine_samples`
    "compositing": ("composite",),
    "encoding": ("positional_encoding",),
}


def _on_device(fn, device: str):
    """`fn` with its tensor arguments moved to `device` and its tensor results moved to the CPU."""
    import torch

    def move(x, where):
        return x.to(where) if torch.is_tensor(x) else x

    @functools.wraps(fn)
    def call(*args, **kwargs):
        args = tuple(move(a, device) for a in args)
        kwargs = {k: move(v, device) for k, v in kwargs.items()}
        if fn.__name__ == "stratified":
            kwargs["device"] = device  # it takes no tensor: its output goes where it is told
        out = fn(*args, **kwargs)
        return tuple(move(o, "cpu") for o in out) if isinstance(out, tuple) else move(out, "cpu")

    return call


if not KERNEL_DEVICE:
    # Everywhere else the tests run on the CPU, as in CI: on a GPU machine Taichi's "auto" would pick CUDA
    # while the tests make CPU tensors, which the kernels refuse.
    os.environ.setdefault("NERFPRUNE_TI_ARCH", "cpu")
else:  # before the test modules import the kernels (some bind them by name)
    for _module, _names in KERNEL_ENTRY_POINTS.items():
        _mod = importlib.import_module(f"taichi_kernels.{_module}")
        for _name in _names:
            setattr(_mod, _name, _on_device(getattr(_mod, _name), KERNEL_DEVICE))


def toward_the_origin(n: int, seed: int):
    """n rays from about (0, 0, 4) looking down -z, slightly spread: origins [n, 3], dirs [n, 3]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    dirs = torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0])
    return origins, dirs


def dense_net(cfg, seed: int):
    """A NerfMLP (FieldConfig `cfg`) with weights large enough that every layer matters (outputs far from constant)."""
    import torch

    from nerfprune.field.mlp import NerfMLP

    torch.manual_seed(seed)
    net = NerfMLP(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.6 if p.dim() == 1 else 1.5 / p.shape[1] ** 0.5)
    return net
