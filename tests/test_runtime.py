"""Taichi's backend and torch's device go together: the device that matches, refusals that name the problem."""

from __future__ import annotations

import pytest
import torch

from taichi_kernels import runtime
from taichi_kernels.backend import TAICHI
from taichi_kernels.runtime import BackendError


def test_auto_device_follows_the_backend_taichi_runs_on():
    arch = runtime.ensure_initialized()
    assert runtime.torch_device("auto").type == ("cuda" if arch == "cuda" else "cpu")
    assert runtime.torch_device("cpu") == torch.device("cpu")
    with pytest.raises(BackendError, match="unknown device 'tpu'.*auto, cpu, cuda"):
        runtime.torch_device("tpu")


def test_a_tensor_on_another_device_is_refused_not_copied():
    arch = runtime.ensure_initialized()
    stray = torch.zeros(5, 3, device="meta" if arch != "cuda" else "cpu")
    with pytest.raises(BackendError, match=f"tensor argument is on '{stray.device}' but Taichi runs on '{arch}'"):
        TAICHI.positional_encoding(stray, 2)
    runtime.check_devices(TAICHI.positional_encoding, (3, 0.5, True, None))  # plain arguments are not tensors


def test_small_launches_run_serially_on_the_cpu_only():
    arch = runtime.ensure_initialized()
    assert runtime.serial_launch(10) == (arch in runtime.CPU_ARCHES)
    assert not runtime.serial_launch(runtime.SERIAL_BELOW)


def test_cuda_without_a_gpu_is_refused_at_once():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the refusal is for machines without one")
    with pytest.raises(BackendError, match="Taichi backend 'cuda' was asked for, but torch sees no CUDA GPU"):
        runtime.set_arch("cuda")
    with pytest.raises(BackendError, match="torch device 'cuda' was asked for"):
        runtime.torch_device("cuda")
