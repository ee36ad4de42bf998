"""Inference variants of a pruned NeRF, so pruning can be timed honestly.

- "masked": the 2022 study's way (torch.nn.utils.prune): every forward
  multiplies each weight by its mask, then runs the full dense product. The
  mask multiply is pure overhead and the product costs as much as the dense one.
- "baked": masks multiplied into the weights once; a plain dense network. No
  overhead, but no saving either: zeros cost as much as any other number.
- "compacted": dead neurons removed and constant ones folded into the next
  layer (`prune.compact`): smaller dense matrices, and positional-encoding
  features that no live weight reads are never computed. Pays off when whole
  neurons die, i.e. after structured pruning.
- "sparse": compacted, then per layer the faster of dense and CSR products,
  chosen by measurement on this machine (`prune.graph.tune_modes`).
- "int8": compacted, then dynamic int8 quantisation of every layer
  (`torch.ao.quantization.quantize_dynamic`; unavailable -> variant skipped).

Every variant is a `NerfModel` whose networks map (pos_enc, dir_enc) to
(sigma_raw, rgb), so the renderer is the same for all of them; rendering runs
each through the same inference plan (`nerfprune.field.inference`: direction
term once per ray, buffers reused), so pruned and dense are timed on one path. `VARIANTS` is the
registry (name -> help and builder) the study, the demo and the benchmarks use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nerfprune.field.graph import GraphMLP, tune_modes
from nerfprune.field.mlp import NerfModel
from nerfprune.pruning.compact import compact


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
    device = torch.device("cpu") if int8 else model.device  # torch's dynamic int8 layers run on the CPU only
    for net in model.networks():
        result = compact(topo, state, masks, net=net)
        graph = GraphMLP(result.topology, result.state, input_index=result.input_index).to(device)
        if tune:
            tune_modes(graph)
        if int8:
            # Layers compacted to nothing (no inputs or no outputs left) stay dense: there is nothing to quantise.
            graph.set_modes({l.name: "int8" for l in result.topology.layers if l.in_features and l.out_features})
        setattr(out, net, graph)
    return out.eval()


@dataclass(frozen=True)
class InferenceVariant:
    """One way to run a pruned model."""

    name: str  # registry name
    help: str  # one line for tables and docs
    build: Callable[[NerfModel, dict[str, torch.Tensor]], NerfModel]  # build(model, masks) -> model to render


VARIANTS: dict[str, InferenceVariant] = {v.name: v for v in (
    InferenceVariant("masked", "mask multiplied on every forward (torch.nn.utils.prune, the 2022 way)", masked_variant),
    InferenceVariant("baked", "masks multiplied into the weights once; dense products", baked_variant),
    InferenceVariant("compacted", "dead neurons removed, constants folded: smaller dense products", compacted_variant),
    InferenceVariant("sparse", "compacted, then per layer the faster of dense and CSR (measured)",
                     lambda model, masks: compacted_variant(model, masks, tune=True)),
    InferenceVariant("int8", "compacted, then dynamic int8 quantisation of every layer",
                     lambda model, masks: compacted_variant(model, masks, int8=True)),
)}


def build_variant(model: NerfModel, masks: dict[str, torch.Tensor], variant: str) -> NerfModel:
    """Variant `variant` (a key of VARIANTS) of a pruned `model` with `masks`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown inference variant '{variant}': choose one of {', '.join(VARIANTS)}")
    masks = {key: mask.to(model.device) for key, mask in masks.items()}  # checkpoint masks load on the CPU
    return VARIANTS[variant].build(model, masks)


# What `nerfprune render` / `eval` (and `api.render` / `api.evaluate` given a checkpoint path) run.
AUTO_VARIANT = "auto"
STORED_VARIANT = "stored"
RUN_VARIANTS = {
    AUTO_VARIANT: "compacted for a pruned checkpoint (it has masks), the network as stored otherwise",
    STORED_VARIANT: "the network as stored (a pruned one: its zeros multiplied like any weight)",
    **{name: v.help for name, v in VARIANTS.items()},
}


def run_variant(model: NerfModel, masks: dict[str, torch.Tensor], variant: str = AUTO_VARIANT,
                source: str = "model") -> tuple[NerfModel, str]:
    """(the model to render, the variant's name) for a loaded checkpoint with `masks` (empty: not pruned).

    `source` names the checkpoint in the error for a variant that needs masks it does not have.
    """
    if variant not in RUN_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(RUN_VARIANTS)}")
    if variant == AUTO_VARIANT:
        variant = "compacted" if masks else STORED_VARIANT
    if variant == STORED_VARIANT:
        return model, variant
    if not masks:
        raise ValueError(f"{source}: variant {variant!r} needs a pruned checkpoint, and this one has no masks "
                         f"(use '{AUTO_VARIANT}' or '{STORED_VARIANT}')")
    return build_variant(model, masks, variant), variant
