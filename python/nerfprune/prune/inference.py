"""Inference variants of a pruned NeRF, so pruning can be timed honestly.

- "masked": the 2022 study's way (torch.nn.utils.prune): every forward
  multiplies each weight by its mask, then runs the full dense product. The
  mask multiply is pure overhead and the product costs as much as the dense one.
- "baked": masks multiplied into the weights once; a plain dense network. No
  overhead, but no saving either: zeros cost as much as any other number.
- "compacted": dead neurons removed and constant ones folded into the next
  layer (`prune.compact`): smaller dense matrices. Pays off when whole neurons
  die, i.e. after structured pruning.
- "sparse": compacted, then per layer the faster of dense and CSR products,
  chosen by measurement on this machine (`prune.graph.tune_modes`).
- "int8": compacted, then dynamic int8 quantisation of every layer
  (`torch.ao.quantization.quantize_dynamic`; unavailable -> variant skipped).

Every variant is a `NerfModel` whose networks map (pos_enc, dir_enc) to
(sigma_raw, rgb), so the renderer is the same for all of them.
"""

from __future__ import annotations

import copy

import torch
from nerfprune.field import NerfModel
from nerfprune.prune.compact import compact
from nerfprune.prune.graph import GraphMLP, tune_modes

VARIANTS = ("masked", "baked", "compacted", "sparse", "int8")


def _nets(model: NerfModel) -> list[str]:
    return ["coarse"] + (["fine"] if model.fine is not None else [])


def masked_variant(model: NerfModel, masks: dict[str, torch.Tensor]) -> NerfModel:
    """Weights re-multiplied by their masks on every forward (torch.nn.utils.prune)."""
    from torch.nn.utils import prune as torch_prune

    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for key, mask in masks.items():
        module_name, param = key.rsplit(".", 1)
        torch_prune.custom_from_mask(modules[module_name], param, mask)
    return out.eval()


def baked_variant(model: NerfModel, masks: dict[str, torch.Tensor]) -> NerfModel:
    """Masks multiplied into the weights once; a plain dense model."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for key, mask in masks.items():
            params[key].mul_(mask)
    return out.eval()


def compacted_variant(model: NerfModel, masks: dict[str, torch.Tensor], tune: bool = False, int8: bool = False) -> NerfModel:
    """Dead neurons removed; optionally CSR where measured faster, or int8 layers."""
    topo = model.topology()
    state = model.state_dict()
    out = copy.deepcopy(model)
    for net in _nets(model):
        result = compact(topo, state, masks, net=net)
        graph = GraphMLP(result.topology, result.state, input_index=result.input_index)
        if tune:
            tune_modes(graph)
        if int8:
            # Layers compacted to nothing (no inputs or no outputs left) stay dense: there is nothing to quantise.
            graph.set_modes({l.name: "int8" for l in result.topology.layers if l.in_features and l.out_features})
        setattr(out, net, graph)
    return out.eval()


def build_variant(model: NerfModel, masks: dict[str, torch.Tensor], variant: str) -> NerfModel:
    """One of VARIANTS of a pruned `model` with `masks`."""
    if variant == "masked":
        return masked_variant(model, masks)
    if variant == "baked":
        return baked_variant(model, masks)
    if variant == "compacted":
        return compacted_variant(model, masks)
    if variant == "sparse":
        return compacted_variant(model, masks, tune=True)
    if variant == "int8":
        return compacted_variant(model, masks, int8=True)
    raise ValueError(f"unknown inference variant '{variant}': choose one of {', '.join(VARIANTS)}")
