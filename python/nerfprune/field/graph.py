"""`GraphMLP`: run any `Topology` with given (masked, compacted) weights.

Each layer runs either as a dense `F.linear` (masks baked into the weight: no
per-forward multiply) or as a sparse CSR product (`torch.addmm` with a
`torch.sparse_csr` weight), chosen per layer — by hand (`modes`) or by
measuring both on a sample batch (`tune_modes`). This is the inference side of
pruning: the compacted and the CSR paths run through the same module, so they
can be benchmarked side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfprune.field.mlp import ACTIVATIONS as _ACT
from nerfprune.field.topology import Topology

MODES = ("dense", "csr", "int8")
EXACT_MODES = ("dense", "csr")  # modes that compute the masked function exactly (int8 is lossy)


class GraphMLP(nn.Module):
    """Inference-only MLP over a `Topology`.

    `state` holds `<prefix><layer>.weight` `[out, in]` and `<prefix><layer>.bias`
    `[out]`; `masks` (same keys, bool, optional per entry) are multiplied in once,
    here. `input_index` maps a network input name to the int64 indices of the
    features the layers read (from `compact`), gathered at the start of forward.

    `forward(*inputs)` takes the network inputs in topology order, each `[N, width]`,
    and returns the output layers in order; for `nerf_topology` that is
    `forward(pos_enc [N, 63], dir_enc [N, 27]) -> (sigma_raw [N, 1], rgb [N, 3])`.
    """

    def __init__(
        self,
        topology: Topology,
        state: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None = None,
        *,
        prefix: str = "",
        input_index: Mapping[str, Tensor] | None = None,
        modes: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.topology = topology
        masks = masks or {}
        for i, layer in enumerate(topology.layers):
            params = []
            for kind, shape in (("weight", (layer.out_features, layer.in_features)), ("bias", (layer.out_features,))):
                key = f"{prefix}{layer.name}.{kind}"
                if key not in state:
                    raise KeyError(f"GraphMLP: state has no {key!r} (layer {layer.name!r} of the topology)")
                p = state[key].detach().to(torch.float32)
                if tuple(p.shape) != shape:
                    raise ValueError(f"GraphMLP: {key!r} has shape {tuple(p.shape)}, the topology needs {shape}")
                if key in masks:
                    p = p * masks[key].to(p.device, p.dtype)
                params.append(p.contiguous())
            self.register_buffer(f"weight_{i}", params[0])
            self.register_buffer(f"bias_{i}", params[1])
        for name, idx in (input_index or {}).items():
            self.register_buffer(f"index_{name}", idx.to(torch.int64))
        self._index_names = tuple(input_index or ())
        self.inference_plan_cache: dict = {}  # (dtype, device) -> InferencePlan (nerfprune.field.inference)
        self._csr: dict[int, Tensor] = {}
        self._int8: dict[int, nn.Module] = {}
        self.modes: dict[str, str] = {l.name: "dense" for l in topology.layers}
        # Optional observer called as layer_hook(layer name, seconds) after each layer (the profiler's way in).
        self.layer_hook: Callable[[str, float], None] | None = None
        self.set_modes(modes or {})
        # Last layer that reads each value, so intermediate activations are freed early.
        self._last_use = {}
        for i, layer in enumerate(topology.layers):
            for source, _ in layer.inputs:
                self._last_use[source] = i

    @property
    def input_index(self) -> dict[str, Tensor]:
        """Network input name -> int64 indices [F'] of the features of the full input the layers read (from
        `compact`; inputs not listed are read whole). The inference path encodes only these positional features."""
        return {name: getattr(self, f"index_{name}") for name in self._index_names}

    def inference_weights(self) -> dict[str, tuple[Tensor, Tensor]]:
        """layer name -> (weight [out, in], bias [out]), masks baked in (`nerfprune.field.inference`)."""
        return {layer.name: (getattr(self, f"weight_{i}"), getattr(self, f"bias_{i}"))
                for i, layer in enumerate(self.topology.layers)}

    def set_modes(self, modes: Mapping[str, str]) -> None:
        """Choose "dense", "csr" or "int8" for the named layers (others keep their mode)."""
        self.inference_plan_cache.clear()
        for name, mode in modes.items():
            if mode not in MODES:
                raise ValueError(f"GraphMLP: mode {mode!r} for layer {name!r}; use one of {MODES}")
            index = [l.name for l in self.topology.layers].index(name) if name in self.modes else None
            if index is None:
                raise KeyError(f"GraphMLP: no layer {name!r}; layers: {list(self.modes)}")
            self.modes[name] = mode
            if mode == "csr" and index not in self._csr:
                from nerfprune.pruning.masks import masked_csr

                w = getattr(self, f"weight_{index}")
                self._csr[index] = masked_csr(w, w != 0).to(w.device)
            if mode == "int8" and index not in self._int8:
                self._int8[index] = int8_linear(getattr(self, f"weight_{index}"), getattr(self, f"bias_{index}"))

    def _layer(self, i: int, x: Tensor) -> Tensor:
        layer = self.topology.layers[i]
        bias = getattr(self, f"bias_{i}")
        mode = self.modes[layer.name]
        if mode == "csr":
            y = torch.addmm(bias.unsqueeze(1), self._csr[i], x.t()).t()
        elif mode == "int8":
            y = self._int8[i](x)
        else:
            y = F.linear(x, getattr(self, f"weight_{i}"), bias)
        return _ACT[layer.activation](y)

    @torch.no_grad()
    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.topology.inputs):
            raise ValueError(
                f"GraphMLP: expected {len(self.topology.inputs)} inputs "
                f"{[n for n, _ in self.topology.inputs]}, got {len(inputs)}"
            )
        values: dict[str, Tensor] = {}
        for (name, _), x in zip(self.topology.inputs, inputs):
            if name in self._index_names:
                x = x.index_select(-1, getattr(self, f"index_{name}"))
            values[name] = x
        outputs = set(self.topology.outputs)
        for i, layer in enumerate(self.topology.layers):
            parts = [values[s] for s, _ in layer.inputs]
            x = parts[0] if len(parts) == 1 else torch.cat(parts, -1)
            if self.layer_hook is None:
                values[layer.name] = self._layer(i, x)
            else:
                start = time.perf_counter()
                values[layer.name] = self._layer(i, x)
                self.layer_hook(layer.name, time.perf_counter() - start)
            for s, _ in layer.inputs:
                if self._last_use[s] == i and s not in outputs:
                    del values[s]
        return tuple(values[name] for name in self.topology.outputs)


def tune_modes(model: GraphMLP, batch: int = 4096, repeats: int = 5) -> dict[str, str]:
    """Pick, per layer, the faster of the exact modes (dense, CSR) on a random `[batch, in]` input.

    Times each layer both ways (median of `repeats` after one warm-up), sets the
    winners on `model` and returns them. Speed depends on the machine, so the
    choice is measured, never assumed.
    """
    device = getattr(model, "weight_0").device
    chosen = {}
    for i, layer in enumerate(model.topology.layers):
        x = torch.randn(batch, layer.in_features, device=device)
        timings = {}
        for mode in EXACT_MODES:
            model.set_modes({layer.name: mode})
            samples = []
            with torch.no_grad():
                for _ in range(repeats + 1):
                    start = time.perf_counter()
                    model._layer(i, x)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    samples.append(time.perf_counter() - start)
            timings[mode] = sorted(samples[1:])[len(samples[1:]) // 2]
        chosen[layer.name] = min(timings, key=timings.get)
    model.set_modes(chosen)
    return chosen


def int8_available() -> bool:
    """Whether this torch build still has dynamic int8 Linear layers (deprecated in torch.ao)."""
    try:
        from torch.ao.nn.quantized.dynamic import Linear  # noqa: F401
    except Exception:
        return False
    return bool({"x86", "fbgemm", "qnnpack"} & set(torch.backends.quantized.supported_engines))


def int8_linear(weight: Tensor, bias: Tensor) -> nn.Module:
    """A dynamically quantised int8 Linear (per-tensor symmetric weights, activations quantised per batch).

    Uses `torch.ao.nn.quantized.dynamic.Linear`, which torch has deprecated in
    favour of torchao: when it is gone, this raises a RuntimeError that says so
    and the int8 path is reported as unavailable instead of failing the run.
    """
    if not int8_available():
        raise RuntimeError("int8 dynamic quantisation is not available in this torch build (torch.ao.nn.quantized.dynamic)")
    import warnings

    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.ao quantisation
        q = QLinear(weight.shape[1], weight.shape[0], dtype=torch.qint8)
        scale = float(weight.abs().max().clamp(min=1e-8)) / 127.0
        q.set_weight_bias(torch.quantize_per_tensor(weight.detach().float(), scale, 0, torch.qint8), bias.detach().float())
    return q
