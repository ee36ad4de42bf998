"""Per-stage render profile: where the time of one rendered view goes.

`profile_render` renders a view with the real renderer (`render_view`) and
times each stage through public seams, never by editing or patching modules:

- the renderer is handed a `TimedMath`: the configured `RenderMath` object with
  every method (`generate_rays`/`view_rays`, `stratified`, `importance`,
  `composite`, `positional_encoding`) timed;
- every MLP layer is timed by the inference path itself (`nerfprune.field.inference.observing`; a
  layer's per-ray part is "layer <name> (per ray)"; a network run whole as one Rust kernel is the one
  stage "layer network + encoding (fused)", a first layer fused with the encoding "layer <name> + encoding"), or, on the reference path (`MLPConfig.inference`),
  with forward hooks (`nn.Linear` of a `NerfMLP`) or through `GraphMLP.layer_hook` (compacted networks). For layers pruned with
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

from nerfprune.field.config import MLPConfig
from nerfprune.field.inference import observing
from nerfprune.field.mlp import NerfModel
from nerfprune.field.topology import nerf_topology
from nerfprune.renderer import RenderConfig, render_view
from nerfprune.scene.types import Cameras
from taichi_kernels.backend import RenderMath

MATH_STAGES = {  # every method of RenderMath -> the stage it is counted in
    "generate_rays": "ray generation", "view_rays": "ray generation",
    "stratified": "sampling (stratified)", "importance": "sampling (importance)", "composite": "compositing",
    "composite_packed": "compositing",
    "positional_encoding": "positional encoding", "positional_encoding_at": "positional encoding",
}
STAGE_ORDER = ("ray generation", "sampling (stratified)", "sampling (importance)", "positional encoding",
               "grid encoding", "mask multiply")  # then the layers, "mlp glue", "compositing", "other"


class StageClock:
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


class TimedMath:
    """A `RenderMath` that times each call of the wrapped one into a `StageClock`."""

    def __init__(self, math: RenderMath, clock: StageClock) -> None:
        self.name = math.name
        for method, stage in MATH_STAGES.items():
            setattr(self, method, clock.timed(stage, getattr(math, method)))


def _hook_linear(clock: StageClock, name: str, module: nn.Module) -> list:
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


def _hook_network(clock: StageClock, net: nn.Module) -> list:
    """Time the whole network (for "mlp glue") and each of its layers."""
    handles = []
    start: dict[str, float] = {}
    handles.append(net.register_forward_pre_hook(lambda _m, _i: start.__setitem__("t", time.perf_counter())))

    def done(_m, _i, _o):
        clock.seconds["mlp total"] += time.perf_counter() - start["t"]

    handles.append(net.register_forward_hook(done))
    if hasattr(net, "layer_hook"):  # GraphMLP: it reports each layer's time itself
        def observe(name: str, seconds: float) -> None:
            clock.seconds[f"layer {name}"] += seconds

        net.layer_hook = observe
        handles.append(_Unhook(net))
    else:
        for name, module in net.named_modules():
            if isinstance(module, nn.Linear):
                handles.extend(_hook_linear(clock, name, module))
    return handles


class _Unhook:
    """Handle that clears a `GraphMLP.layer_hook`."""

    def __init__(self, net) -> None:
        self.net = net

    def remove(self) -> None:
        self.net.layer_hook = None


class _InferenceTimes:
    """`nerfprune.field.inference.Observer` writing into a `StageClock` (the fast inference path's layers)."""

    def __init__(self, clock: StageClock) -> None:
        self.clock = clock

    def layer(self, name: str, seconds: float) -> None:
        self.clock.seconds[f"layer {name}"] += seconds

    def network(self, seconds: float) -> None:
        self.clock.seconds["mlp total"] += seconds

    def stage(self, name: str, seconds: float) -> None:
        self.clock.seconds[name] += seconds


@contextlib.contextmanager
def _hooked(model: NerfModel, clock: StageClock) -> Iterator[None]:
    handles = []
    features = getattr(model, "features", None)  # a feature grid's lookups (encoding "grid"): their own stage
    try:
        for net in model.networks().values():
            handles.extend(_hook_network(clock, net))
        if features is not None:
            for name in ("encode_at", "kernel_encode_at"):
                setattr(features, name, clock.timed("grid encoding", getattr(features, name)))
        with observing(_InferenceTimes(clock)):
            yield
    finally:
        for h in handles:
            h.remove()
        if features is not None:
            for name in ("encode_at", "kernel_encode_at"):
                features.__dict__.pop(name, None)


def _one_render(model: NerfModel, cameras: Cameras, index: int, cfg: RenderConfig, background,
                mlp: MLPConfig | None) -> dict[str, float]:
    clock = StageClock()
    with _hooked(model, clock):
        start = time.perf_counter()
        render_view(model, cameras, index, cfg, background=background, math=TimedMath(cfg.math(), clock), mlp=mlp)
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
    background: tuple[float, float, float] = (1.0, 1.0, 1.0), mlp: MLPConfig | None = None,
) -> dict[str, float]:
    """Seconds per stage of rendering view `index` (median over `repeats` after one warm-up); `mlp` as `render_view`'s.

    Keys: "ray generation", "sampling (stratified)", "sampling (importance)",
    "positional encoding", "grid encoding" (feature-grid models), "mask multiply" (masked models only),
    "layer <name>" per MLP layer (e.g. "layer pts.0", coarse + fine; "layer network + encoding (fused)" for a network run as
    one kernel), "mlp glue", "compositing",
    "other" and "total" (wall time of the whole render). The stages add up to "total".
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    _one_render(model, cameras, index, render_cfg, background, mlp)
    runs = [_one_render(model, cameras, index, render_cfg, background, mlp) for _ in range(repeats)]
    stages = sorted({k for r in runs for k in r}, key=stage_sort_key)
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in stages}


LAYER_ORDER = tuple(dict.fromkeys(name.split(".")[0] for name in nerf_topology().names))  # pts, sigma, feature, views, rgb


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
