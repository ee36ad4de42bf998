"""Structured pruning: drop whole hidden neurons, so compaction can shrink the matrices.

Unstructured masks at 95 % sparsity leave almost every neuron with some live
weight, so compaction removes little and the dense matrix products stay as big
as before. Here each hidden neuron gets an importance score: by default
|incoming weights|_1 x |outgoing weights|_1 (live weights only), or scores
gathered from training rays (`nerfprune.pruning.importance`: mean |activation|,
first-order Taylor). Every hidden layer keeps the same fraction of its live
neurons, chosen by bisection so that the live weights shrink by the requested
fraction. A dropped neuron loses its incoming row and its outgoing columns; its
bias survives as a constant that compaction folds into the next layer, so the
masked and the compacted network compute the same function.

The heads' floor: every hidden layer keeps at least `min_neurons` neurons, and in
a layer an output head reads (the density head reads the last trunk layer, the
colour head `views.0`) the `min_neurons` neurons that contribute most to that
head are always kept, whatever their score: mean |a_k| x |W_head[:, k]|_1 (the
mean size of neuron k's term in the head's input sum) when activations were
gathered, |in_k|_1 x |W_head[:, k]|_1 otherwise. So no sparsity, however high,
cuts a head off from the input.
"""

from __future__ import annotations

import logging
import math

import torch

from nerfprune.field.mlp import NerfModel

log = logging.getLogger(__name__)

POS_KEPT = 3  # with prune_inputs: the leading "pos" features (the raw x, y, z of the encoding) are always kept


def _readers(topology) -> dict[str, list[tuple[str, int, int]]]:
    """layer -> [(consumer layer, column offset, width)] for every hidden layer."""
    readers: dict[str, list[tuple[str, int, int]]] = {}
    for layer in topology.layers:
        col = 0
        for source, width in layer.inputs:
            readers.setdefault(source, []).append((layer.name, col, width))
            col += width
    return readers


def _magnitude_scores(incoming: torch.Tensor, outgoing: torch.Tensor) -> torch.Tensor:
    """|in|_1 x |out|_1 per neuron [out] (float64)."""
    return incoming.double() * outgoing.double()


def structured_masks(
    model: NerfModel, weights: dict[str, torch.Tensor], current: dict[str, torch.Tensor] | None, fraction: float,
    scores: dict[str, torch.Tensor] | None = None, activity: dict[str, torch.Tensor] | None = None,
    min_neurons: int = 2, prune_inputs: bool = False,
) -> dict[str, torch.Tensor]:
    """Masks removing whole neurons so that `fraction` of the live prunable weights go.

    scores: "<net>.<layer>" -> [out] importance of each hidden neuron (None: weight magnitude);
    activity: "<net>.<layer>" -> [out] mean |activation| (None: |in|_1 stands in), for the heads' floor;
    min_neurons: the floor of live neurons per hidden layer, and of head-feeding neurons per head;
    prune_inputs: also drop positional-encoding features (the columns every reader of the "pos" input takes),
    the same kept fraction as the hidden layers, ranked by the l1 norm of their live weights; the raw
    coordinates (the first `POS_KEPT` features) always stay. Compaction then never computes a dropped feature.
    """
    topo = model.topology()
    readers = _readers(topo)
    hidden = [l.name for l in topo.layers if not l.is_output]
    heads = {l.name for l in topo.layers if l.is_output}
    live = {k: (current[k].clone() if current and k in current else torch.ones_like(w, dtype=torch.bool)) for k, w in weights.items()}
    target = math.floor((1.0 - fraction) * sum(int(m.sum()) for m in live.values()))
    nets = sorted({k.split(".", 1)[0] for k in weights})
    params = dict(model.named_parameters())

    def full(net: str, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """weight [out, in] and its current mask (all-live for layers that are not prunable), on the CPU."""
        key = f"{net}.{layer}.weight"
        w = params[key].detach().cpu()
        return w, live[key].cpu() if key in live else torch.ones_like(w, dtype=torch.bool)

    # Importance and ranking of the live neurons of every hidden layer; head-feeding neurons first.
    order: dict[tuple[str, str], torch.Tensor] = {}
    floor: dict[tuple[str, str], int] = {}
    for net in nets:
        for name in hidden:
            w, m = full(net, name)
            incoming = (w.abs() * m).sum(1)  # [out]
            outgoing = torch.zeros_like(incoming)
            to_heads = []  # [out] |W_head[:, k]|_1 for each head reading this layer
            for reader, col, width in readers.get(name, []):
                rw, rm = full(net, reader)
                column_l1 = (rw[:, col:col + width].abs() * rm[:, col:col + width]).sum(0)  # [out]
                outgoing += column_l1
                if reader in heads:
                    to_heads.append(column_l1)
            key = f"{net}.{name}"
            score = _magnitude_scores(incoming, outgoing) if scores is None else _checked(scores, key, incoming).clone()
            alive = m.any(1)
            score[~alive] = -1.0
            ranked = torch.argsort(score, descending=True, stable=True)[: int(alive.sum())]
            size = incoming.double() if activity is None else _checked(activity, key, incoming)
            reserved = _head_feeders(to_heads, size, alive, min_neurons)
            rest = ranked[~torch.isin(ranked, reserved)]
            order[(net, name)] = torch.cat([reserved, rest])
            floor[(net, name)] = max(min_neurons, len(reserved))

    if prune_inputs:  # the "pos" features, a layer of "neurons" with no incoming weights
        for net in nets:
            width = dict(topo.inputs)["pos"]
            outgoing = torch.zeros(width, dtype=torch.float64)
            for reader, col, w_in in readers.get("pos", []):
                rw, rm = full(net, reader)
                outgoing += (rw[:, col:col + w_in].abs() * rm[:, col:col + w_in]).sum(0).double()
            alive = outgoing > 0
            score = outgoing.clone()
            score[~alive] = -1.0
            reserved = torch.arange(min(POS_KEPT, width))
            ranked = torch.argsort(score, descending=True, stable=True)[: int(alive.sum())]
            order[(net, "pos")] = torch.cat([reserved, ranked[~torch.isin(ranked, reserved)]])
            floor[(net, "pos")] = max(min_neurons, len(reserved))

    def masks_keeping(q: float) -> dict[str, torch.Tensor]:
        new = {k: v.clone() for k, v in live.items()}
        for (net, name), ranked in order.items():
            drop = ranked[max(floor[(net, name)], math.ceil(q * len(ranked))):]
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
    masks = masks_keeping(lo)
    kept = sum(int(m.sum()) for m in masks.values())
    if kept > target:
        log.warning("structured pruning: the floor of %d neurons per layer keeps %d weights, more than the %d "
                    "the requested fraction %.4f leaves (lower min_neurons to go further)", min_neurons, kept, target,
                    fraction)
    return masks


def _checked(table: dict[str, torch.Tensor], key: str, like: torch.Tensor) -> torch.Tensor:
    """table[key] as float64 on the CPU, checked to hold one finite value per neuron of `like` [out]."""
    if key not in table:
        raise KeyError(f"structured pruning: no neuron scores for layer {key!r} (scored: {sorted(table)[:4]} ...)")
    value = table[key].detach().to("cpu", torch.float64)
    if value.shape != like.shape or not bool(value.isfinite().all()):
        raise ValueError(f"structured pruning: scores of {key!r} must be {list(like.shape)} finite values, "
                         f"got shape {list(value.shape)}")
    return value


def _head_feeders(to_heads: list[torch.Tensor], size: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the live neurons kept for the heads: per head the `count` largest size_k x |W_head[:, k]|_1."""
    keep: list[int] = []
    for column_l1 in to_heads:
        contribution = size * column_l1.double()  # [out]
        contribution[~alive] = -1.0
        ranked = torch.argsort(contribution, descending=True, stable=True)[: min(count, int(alive.sum()))]
        keep += [int(i) for i in ranked if int(i) not in keep]
    return torch.tensor(keep, dtype=torch.long)
