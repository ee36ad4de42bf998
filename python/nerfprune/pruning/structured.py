"""Structured pruning: drop whole hidden neurons, so compaction can shrink the matrices.

Unstructured masks at 95 % sparsity leave almost every neuron with some live
weight, so compaction removes little and the dense matrix products stay as big
as before. Here a neuron's importance is |incoming weights|_1 x |outgoing
weights|_1 (live weights only); every hidden layer keeps the same fraction of
its live neurons, chosen by bisection so that the live weights shrink by the
requested fraction. A dropped neuron loses its incoming row and its outgoing
columns; its bias survives as a constant that compaction folds into the next
layer, so the masked and the compacted network compute the same function.
"""

from __future__ import annotations

import math

import torch

from nerfprune.field.mlp import NerfModel


def _readers(topology) -> dict[str, list[tuple[str, int, int]]]:
    """layer -> [(consumer layer, column offset, width)] for every hidden layer."""
    readers: dict[str, list[tuple[str, int, int]]] = {}
    for layer in topology.layers:
        col = 0
        for source, width in layer.inputs:
            readers.setdefault(source, []).append((layer.name, col, width))
            col += width
    return readers


def structured_masks(
    model: NerfModel, weights: dict[str, torch.Tensor], current: dict[str, torch.Tensor] | None, fraction: float,
) -> dict[str, torch.Tensor]:
    """Masks removing whole neurons so that `fraction` of the live prunable weights go."""
    topo = model.topology()
    readers = _readers(topo)
    hidden = [l.name for l in topo.layers if not l.is_output]
    live = {k: (current[k].clone() if current and k in current else torch.ones_like(w, dtype=torch.bool)) for k, w in weights.items()}
    target = math.floor((1.0 - fraction) * sum(int(m.sum()) for m in live.values()))
    nets = sorted({k.split(".", 1)[0] for k in weights})

    def full(net: str, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """weight [out, in] and its current mask (all-live for layers that are not prunable)."""
        key = f"{net}.{layer}.weight"
        w = dict(model.named_parameters())[key].detach()
        return w, live.get(key, torch.ones_like(w, dtype=torch.bool))

    # Importance and ranking of the live neurons of every hidden layer.
    order: dict[tuple[str, str], torch.Tensor] = {}
    for net in nets:
        for name in hidden:
            w, m = full(net, name)
            incoming = (w.abs() * m).sum(1)  # [out]
            outgoing = torch.zeros_like(incoming)
            for reader, col, width in readers.get(name, []):
                rw, rm = full(net, reader)
                outgoing += (rw[:, col:col + width].abs() * rm[:, col:col + width]).sum(0)
            score = incoming * outgoing
            alive = m.any(1)
            score[~alive] = -1.0
            order[(net, name)] = torch.argsort(score, descending=True, stable=True)[: int(alive.sum())]

    def masks_keeping(q: float) -> dict[str, torch.Tensor]:
        new = {k: v.clone() for k, v in live.items()}
        for (net, name), ranked in order.items():
            drop = ranked[max(1, math.ceil(q * len(ranked))):] if len(ranked) else ranked
            key = f"{net}.{name}.weight"
            if key in new:
                new[key][drop, :] = False
            for reader, col, _ in readers.get(name, []):
                rkey = f"{net}.{reader}.weight"
                if rkey in new:
                    new[rkey][:, col + drop] = False
        return new

    lo, hi = 0.0, 1.0
    for _ in range(30):  # bisection on the kept-neuron fraction
        mid = 0.5 * (lo + hi)
        if sum(int(m.sum()) for m in masks_keeping(mid).values()) > target:
            hi = mid
        else:
            lo = mid
    return masks_keeping(lo)
