"""Neuron importance gathered from data: activation statistics and first-order Taylor scores.

Why: the weight-magnitude score of structured pruning (|in|_1 x |out|_1) cannot tell a neuron the
field really uses from one that is large but silent. A ReLU neuron that is never positive at the
points where the network is evaluated has large weights and no effect; a neuron the density head
relies on may have small weights. Scores from data see that:

- "activation": mean |a_k| over the sample points (Hu et al. 2016's activation statistics;
  a neuron that is 0 everywhere scores 0);
- "taylor": mean over points of |a_k dL/da_k|, the first-order estimate of how the photometric
  loss changes if the neuron's output is set to 0 (Molchanov et al. 2017). An MLP has no spatial
  positions to sum over, so each sample point is one of the paper's examples: the absolute value
  is taken per point, then averaged. (The absolute value of the *sum* over all points would tend
  to 0 for every neuron of a converged network: it is the derivative of the loss with respect to a
  scale on the neuron's output, which vanishes at a minimum.)

The points are the renderer's own: training rays of the scene (a `RayBatcher`, seeded), stratified
coarse samples with jitter and importance-sampled fine points, each network evaluated at its own
samples. The networks' forward hooks record the statistics (`NeuronRecorder`); the training hot path
is not touched (scoring runs the module's own forward with autograd, as the original NeRF code does).

Scores are keyed "<net>.<layer>" ("coarse.pts.0", "fine.views.0", ...), one value per neuron [out],
float64, for every hidden layer of the topology (the heads are never scored: they are never removed).
"""

from __future__ import annotations

import torch

from nerfprune.field.config import MLPConfig
from nerfprune.field.mlp import ACTIVATIONS, NerfMLP, NerfModel
from nerfprune.scene.types import Scene

IMPORTANCE = {
    "magnitude": "|incoming|_1 x |outgoing|_1 of the live weights (no data needed)",
    "activation": "mean |activation| at the sample points of training rays",
    "taylor": "mean |activation x dLoss/dactivation| over training rays (first-order Taylor, Molchanov et al. 2017)",
}
TAYLOR_ACTIVATIONS = ("relu", "none")  # where a dL/da = z dL/dz per point, so the Linear's output suffices


class NeuronRecorder:
    """Forward hooks on the hidden layers of dense networks that accumulate per-neuron statistics.

    with NeuronRecorder({"coarse": net}, taylor=True) as rec: run forward (and backward) passes;
    then rec.scores("activation") / rec.scores("taylor") -> {"coarse.pts.0": [out] float64, ...}.

    The hook sees a layer's pre-activation z [M, out] and applies the layer's activation to get a.
    For the Taylor score a tensor hook on z receives dL/dz in the backward pass: for ReLU and
    identity layers a * dL/da = z * dL/dz point by point (where z <= 0, both a and dL/dz are 0),
    so no hook on the activation itself is needed.
    """

    def __init__(self, networks: dict[str, torch.nn.Module], taylor: bool = False):
        self.taylor = taylor
        self.layers: dict[str, tuple[torch.nn.Module, str]] = {}  # "<net>.<layer>" -> (nn.Linear, activation)
        for net_name, net in networks.items():
            if not isinstance(net, NerfMLP):
                raise TypeError(f"importance scores need dense NerfMLP networks; network {net_name!r} is a "
                                f"{type(net).__name__} (score the model before compaction)")
            for spec in net.topology.layers:
                if spec.is_output:
                    continue
                if taylor and spec.activation not in TAYLOR_ACTIVATIONS:
                    raise ValueError(f"taylor scores: hidden layer {spec.name!r} has activation {spec.activation!r}; "
                                     f"supported: {TAYLOR_ACTIVATIONS}")
                self.layers[f"{net_name}.{spec.name}"] = (net.layer(spec.name), spec.activation)
        self.abs_sum: dict[str, torch.Tensor] = {}  # key -> [out] float64: sum over points of |a|
        self.taylor_sum: dict[str, torch.Tensor] = {}  # key -> [out] float64: sum over points of |a dL/da|
        self.points: dict[str, int] = {}  # key -> points seen in forward passes
        self._handles: list = []

    def __enter__(self) -> "NeuronRecorder":
        for key, (linear, activation) in self.layers.items():
            self._handles.append(linear.register_forward_hook(self._hook(key, ACTIVATIONS[activation])))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, key: str, act):
        def forward_hook(module, inputs, z):  # z [M, out]: the Linear's output, before the activation
            value = z.detach()
            flat = value.reshape(-1, value.shape[-1])
            total = act(flat).abs().sum(0, dtype=torch.float64)  # [out]
            self.abs_sum[key] = total if key not in self.abs_sum else self.abs_sum[key].add_(total)
            self.points[key] = self.points.get(key, 0) + flat.shape[0]
            if self.taylor and z.requires_grad:
                z.register_hook(lambda grad: self._add_taylor(key, value, grad))

        return forward_hook

    def _add_taylor(self, key: str, z: torch.Tensor, grad: torch.Tensor) -> None:
        total = (z * grad).reshape(-1, z.shape[-1]).abs().sum(0, dtype=torch.float64)  # [out]
        self.taylor_sum[key] = total if key not in self.taylor_sum else self.taylor_sum[key].add_(total)

    def scores(self, kind: str) -> dict[str, torch.Tensor]:
        """Mean per point of the statistic `kind` ("activation" or "taylor") of every recorded layer, on the CPU."""
        sums = {"activation": self.abs_sum, "taylor": self.taylor_sum}[kind]
        missing = [k for k in self.layers if k not in sums]
        if missing:
            raise RuntimeError(f"no {kind} statistics recorded for {missing[:3]}: run a forward"
                               f"{' and backward' if kind == 'taylor' else ''} pass inside the recorder first")
        return {k: (sums[k] / max(self.points[k], 1)).cpu() for k in self.layers}


def gather_importance(
    model: NerfModel, scene: Scene, train_cfg, *, taylor: bool, batches: int, seed: int, first_batch: int = 0,
) -> dict[str, dict[str, torch.Tensor]]:
    """Statistics of every hidden neuron of both networks from training rays: {"activation": scores,
    "taylor": scores (only when `taylor`)}, each "<net>.<layer>" -> [out] float64 (see the module docstring).

    Batches `first_batch` ... `first_batch + batches - 1` of a `RayBatcher` over the train split
    (`train_cfg.batch_size` rays, seeded by `seed`, no centre crop) are rendered with the training
    sampling of `train_cfg.render` (jittered, sample jitter seeded per batch); with `taylor` the
    training loss (MSE of coarse and fine, `nerfprune.loss`) also runs backward. The same arguments
    give the same scores. The model's weights are not changed; the gradients it accumulates are dropped.
    """
    from nerfprune.loss import loss_and_backward
    from nerfprune.renderer import render_rays
    from nerfprune.scene.batching import RayBatcher
    from nerfprune.training import camera_tensors

    device = model.device
    math = train_cfg.render.math()
    batcher = RayBatcher(scene, split="train", batch_size=train_cfg.batch_size, seed=seed)
    cams = camera_tensors(scene, device)
    near, far = scene.cameras.near, scene.cameras.far
    saved_mlp, saved_grads = model.mlp, {n: p.grad for n, p in model.named_parameters()}
    # the modules' own forward, with and without gradient, so the hooks see every layer
    model.mlp = MLPConfig(backward="autograd", inference="reference")
    try:
        with NeuronRecorder(model.networks(), taylor=taylor) as recorder:
            for i in range(first_batch, first_batch + batches):
                batch = batcher.batch(i).to_torch(device)
                gen = torch.Generator().manual_seed(seed * 1_000_003 + i)  # CPU generator, as the trainer's
                origins, dirs = math.generate_rays(cams["c2w"], cams["intrinsics"], batch.view, batch.row, batch.col,
                                                   cams["distortion"])
                if taylor:
                    loss_and_backward(model, origins, dirs, batch.rgb, batch.background, near, far, train_cfg.render,
                                      train_cfg.points_per_block(), training=True, generator=gen, workers=1, math=math)
                else:
                    with torch.no_grad():
                        render_rays(model, origins, dirs, batch.background, near, far, train_cfg.render,
                                    training=True, generator=gen, math=math)
        return {kind: recorder.scores(kind) for kind in ("activation", "taylor")[:1 + taylor]}
    finally:
        model.mlp = saved_mlp
        for name, param in model.named_parameters():
            param.grad = saved_grads[name]
