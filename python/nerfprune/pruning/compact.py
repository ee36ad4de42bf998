"""Compaction: turn a pruned MLP into a smaller dense one that computes the same function.

Uses the dead-neuron analysis of the Rust core (`_native.dead_neurons`):
- a hidden neuron with no live input weight (**dead-in**) outputs the constant
  `act(b)`; it is removed and `W[:, j] * act(b_j)` is folded into the biases of
  the layers that read it (in topological order, so constants of constants fold too);
- a hidden neuron that no live weight reads (**dead-out**) is removed;
- network-input features that no live weight reads are dropped, and the kept
  ones are recorded (`input_index`): the network's forward gathers them, the
  inference path (`nerfprune.field.inference`) encodes only those positional features;
- this repeats to a fixed point through skip connections and both heads.
Output neurons are never removed. The result equals the masked dense network up
to float32 rounding (tests check 1e-5); the folding itself is done in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import nerfprune._native as _native
from nerfprune.field.topology import LayerSpec, Topology

_ACT64 = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "none": lambda x: x,
}


@dataclass
class CompactResult:
    """A compacted network: run it with `GraphMLP(r.topology, r.state, input_index=r.input_index)`."""

    topology: Topology  # same layer names and inputs, smaller widths
    state: dict[str, Tensor]  # "<layer>.weight" [out', in'] and "<layer>.bias" [out'] (no net prefix), masks baked in
    input_index: dict[str, Tensor]  # network input name -> int64 indices of the features still read [F']
    kept: dict[str, Tensor]  # layer name -> int64 indices of the neurons kept (into the original layer)
    dead_in: dict[str, int]  # layer name -> neurons removed as constants (folded into consumers)
    dead_out: dict[str, int]  # layer name -> neurons removed because nothing reads them
    sweeps: int  # passes of the fixed-point analysis

    def parameter_count(self) -> int:
        """Weights plus biases of the compacted network (the dense cost of one forward)."""
        return self.topology.parameter_count()


def _prefix(topology: Topology, state: dict[str, Tensor], net: str | None) -> str:
    if net is not None:
        return f"{net}." if net else ""
    first = f"{topology.layers[0].name}.weight"
    if first in state:
        return ""
    nets = sorted({k[: -len(first) - 1] for k in state if k.endswith("." + first)})
    if len(nets) != 1:
        raise ValueError(
            f"compact: cannot tell which net to compact: state has {first!r} under {nets or 'no'} "
            "prefixes; pass net='coarse' (or 'fine', or '' for unprefixed keys)"
        )
    return nets[0] + "."


def compact(
    topology: Topology,
    state: dict[str, Tensor],
    masks: dict[str, Tensor] | None,
    net: str | None = None,
) -> CompactResult:
    """Remove dead neurons and unread input features of one masked MLP.

    `state` / `masks` are keyed `<net>.<layer>.weight|bias` (masks optional per
    key, bool, same shape; missing = dense). `net` picks the prefix (`"coarse"`,
    `"fine"`, `""` for bare keys; inferred when only one net is present).
    """
    prefix = _prefix(topology, state, net)
    masks = masks or {}
    layers = topology.layers
    weights, biases, flat_masks = [], [], []
    for layer in layers:
        w = state[f"{prefix}{layer.name}.weight"].detach().to("cpu", torch.float64).numpy()
        b = state[f"{prefix}{layer.name}.bias"].detach().to("cpu", torch.float64).numpy()
        wm = masks.get(f"{prefix}{layer.name}.weight")
        m = np.ones(w.shape, bool) if wm is None else wm.detach().to("cpu", torch.bool).numpy()
        bm = masks.get(f"{prefix}{layer.name}.bias")
        weights.append(w * m)
        biases.append(b if bm is None else b * bm.detach().to("cpu", torch.bool).numpy())
        flat_masks.append(np.ascontiguousarray(m.reshape(-1)))
    report = _native.dead_neurons(
        list(topology.inputs),
        [(l.name, l.out_features, list(l.inputs), l.is_output) for l in layers],
        flat_masks,
    )
    kept = {l.name: np.flatnonzero(k) for l, k in zip(layers, report["kept"])}
    kept.update({name: np.flatnonzero(r) for (name, _), r in zip(topology.inputs, report["inputs_read"])})
    dead_in = {l.name: d for l, d in zip(layers, report["dead_in"])}
    constants: dict[str, np.ndarray] = {}  # layer -> [out] value of every neuron if it were constant
    new_layers: list[LayerSpec] = []
    new_state: dict[str, Tensor] = {}
    widths = {name: len(kept[name]) for name, _ in topology.inputs}
    for layer, w, b in zip(layers, weights, biases):
        bias = b.copy()
        columns, col = [], 0
        for source, width in layer.inputs:
            block = w[:, col : col + width]
            if source in dead_in:  # a layer: fold its constant neurons
                folded = dead_in[source]
                bias += block[:, folded] @ constants[source][folded]
            columns.append(col + kept[source])
            col += width
        constants[layer.name] = _ACT64[layer.activation](bias)
        rows = kept[layer.name]
        cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        new_state[f"{layer.name}.weight"] = torch.from_numpy(w[np.ix_(rows, cols)]).to(torch.float32)
        new_state[f"{layer.name}.bias"] = torch.from_numpy(bias[rows]).to(torch.float32)
        widths[layer.name] = len(rows)
        segments = tuple((source, widths[source]) for source, _ in layer.inputs)
        new_layers.append(LayerSpec(layer.name, len(rows), segments, layer.activation, layer.is_output))
    return CompactResult(
        topology=Topology(inputs=tuple((n, widths[n]) for n, _ in topology.inputs), layers=tuple(new_layers)),
        state=new_state,
        input_index={n: torch.from_numpy(kept[n]).to(torch.int64) for n, _ in topology.inputs},
        kept={l.name: torch.from_numpy(kept[l.name]).to(torch.int64) for l in layers},
        dead_in={l.name: int(d.sum()) for l, d in zip(layers, report["dead_in"])},
        dead_out={l.name: int(d.sum()) for l, d in zip(layers, report["dead_out"])},
        sweeps=int(report["sweeps"]),
    )
