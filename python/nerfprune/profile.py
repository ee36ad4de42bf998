"""Per-stage render profile: where the time of one rendered view goes.

`profile_render` renders a view with the real renderer (`render_view`) and
times each stage by wrapping, never by editing the renderer or the kernels:

- the rendering-math functions (`generate_rays`/`view_rays`, `stratified`,
  `importance`, `composite`) are wrapped in the namespace `math_backend` returns;
- the positional encodings are wrapped on the model instance;
- every MLP layer is timed with forward hooks (`nn.Linear` of a `NerfMLP`) or by
  wrapping `GraphMLP._layer` (compacted networks). For layers pruned with
  `torch.nn.utils.prune` (the "masked" variant) the prune forward-pre-hook, which
  recomputes `weight = weight_orig * mask` on every forward, is timed on its own
  ("mask multiply"): one pre-hook is put before it and one after it.

Layer times are summed over the coarse and fine networks and over ray chunks.
"mlp glue" is the network time outside the layers (ReLU, concatenation, input
gathering); "other" is the rest of the render (sample points, reshapes, chunking).
Each stage is the median over `repeats` renders (after one warm-up), in seconds.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import nn

from nerfprune import renderer
from nerfprune.field import NerfModel
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Cameras

MATH_STAGES = {
    "generate_rays": "ray generation", "view_rays": "ray generation",
    "stratified": "sampling (stratified)", "importance": "sampling (importance)", "composite": "compositing",
}
STAGE_ORDER = ("ray generation", "sampling (stratified)", "sampling (importance)", "positional encoding",
               "mask multiply")  # then the layers, "mlp glue", "compositing", "other"


class _Clock:
    """Accumulates seconds per stage during one render."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, stage: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
        return wrapper


def _hook_linear(clock: _Clock, name: str, module: nn.Module) -> list:
    """Hooks timing the mask multiply (prune pre-hook, if any) and the product of one nn.Linear."""
    marks: dict[str, float] = {}
    pruned = hasattr(module, "weight_orig")  # torch.nn.utils.prune renamed the weight and added its pre-hook

    def before_mask(_m, _inputs):
        marks["t0"] = time.perf_counter()

    def after_mask(_m, _inputs):
        marks["t1"] = time.perf_counter()
        if pruned:
            clock.seconds["mask multiply"] += marks["t1"] - marks["t0"]

    def after_forward(_m, _inputs, _output):
        clock.seconds[f"layer {name}"] += time.perf_counter() - marks["t1"]

    return [module.register_forward_pre_hook(before_mask, prepend=True),
            module.register_forward_pre_hook(after_mask), module.register_forward_hook(after_forward)]


def _hook_network(clock: _Clock, net: nn.Module) -> list:
    """Time the whole network (for "mlp glue") and each of its layers."""
    handles = []
    start: dict[str, float] = {}
    handles.append(net.register_forward_pre_hook(lambda _m, _i: start.__setitem__("t", time.perf_counter())))

    def done(_m, _i, _o):
        clock.seconds["mlp total"] += time.perf_counter() - start["t"]

    handles.append(net.register_forward_hook(done))
    if hasattr(net, "topology") and hasattr(net, "_layer"):  # GraphMLP: wrap its per-layer work
        original = net._layer
        names = [layer.name for layer in net.topology.layers]

        def layer(i, x):
            begin = time.perf_counter()
            try:
                return original(i, x)
            finally:
                clock.seconds[f"layer {names[i]}"] += time.perf_counter() - begin

        net._layer = layer
        handles.append(_Restore(net, "_layer"))
    else:
        for name, module in net.named_modules():
            if isinstance(module, nn.Linear):
                handles.extend(_hook_linear(clock, name, module))
    return handles


class _Restore:
    """Handle that removes an instance attribute shadowing a method."""

    def __init__(self, obj, attr: str) -> None:
        self.obj, self.attr = obj, attr

    def remove(self) -> None:
        self.obj.__dict__.pop(self.attr, None)


@contextlib.contextmanager
def _instrumented(model: NerfModel, clock: _Clock) -> Iterator[None]:
    original_backend = renderer.math_backend

    def timed_backend(name: str):
        ns = original_backend(name)
        return type("TimedMath", (), {attr: staticmethod(clock.timed(stage, getattr(ns, attr)))
                                      for attr, stage in MATH_STAGES.items()})

    handles = []
    try:
        renderer.math_backend = timed_backend
        for attr in ("encode_points", "encode_dirs"):
            setattr(model, attr, clock.timed("positional encoding", getattr(model, attr)))
            handles.append(_Restore(model, attr))
        nets = [model.coarse] + ([model.fine] if model.fine is not None else [])
        for net in nets:
            handles.extend(_hook_network(clock, net))
        yield
    finally:
        renderer.math_backend = original_backend
        for h in handles:
            h.remove()


def _one_render(model: NerfModel, cameras: Cameras, index: int, cfg: RenderConfig, background) -> dict[str, float]:
    clock = _Clock()
    with _instrumented(model, clock):
        start = time.perf_counter()
        render_view(model, cameras, index, cfg, background=background)
        total = time.perf_counter() - start
    s = clock.seconds
    layers = sum(v for k, v in s.items() if k.startswith("layer "))
    mlp_total = s.pop("mlp total", 0.0)
    s["mlp glue"] = max(mlp_total - layers - s.get("mask multiply", 0.0), 0.0)
    s["other"] = max(total - sum(s.values()), 0.0)
    s["total"] = total
    return dict(s)


@torch.no_grad()
def profile_render(
    model: NerfModel, cameras: Cameras, index: int, render_cfg: RenderConfig, repeats: int = 5,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> dict[str, float]:
    """Seconds per stage of rendering view `index` (median over `repeats` after one warm-up).

    Keys: "ray generation", "sampling (stratified)", "sampling (importance)",
    "positional encoding", "mask multiply" (masked models only), "layer <name>"
    per MLP layer (e.g. "layer pts.0", coarse + fine), "mlp glue", "compositing",
    "other" and "total" (wall time of the whole render). The stages add up to "total".
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    _one_render(model, cameras, index, render_cfg, background)
    runs = [_one_render(model, cameras, index, render_cfg, background) for _ in range(repeats)]
    stages = sorted({k for r in runs for k in r}, key=stage_sort_key)
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in stages}


LAYER_ORDER = ("pts", "sigma", "feature", "views", "rgb")


def stage_sort_key(stage: str) -> tuple[float, str]:
    """Order stages along the data path: rays, samples, encoding, mask, layers, glue, compositing, other, total."""
    if stage in STAGE_ORDER:
        return STAGE_ORDER.index(stage), ""
    tail = ("mlp glue", "compositing", "other", "total")
    if stage in tail:
        return 10 + tail.index(stage), ""
    name = stage.removeprefix("layer ")
    rank = next((i for i, p in enumerate(LAYER_ORDER) if name.startswith(p)), len(LAYER_ORDER))
    return 5 + rank / 10, name  # layers along the network: pts.*, sigma, feature, views.*, rgb
