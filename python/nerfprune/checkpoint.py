"""Training checkpoints: one safetensors file with model, optimizer state and masks.

Loading runs no code (safetensors, not pickle). The JSON config, the iteration
and the scene fingerprint travel in the file's string metadata. Files are
written atomically (temporary file, fsync, rename): an interrupted write leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from nerfprune.config import atomic_write_bytes
from nerfprune.errors import CheckpointError

FORMAT = "nerfprune-checkpoint-1"


@dataclass
class Checkpoint:
    """What a checkpoint holds."""

    iteration: int  # training iterations completed
    config: dict  # the TrainConfig as a dict
    model: dict[str, torch.Tensor]  # model state_dict
    optimizer: dict[str, torch.Tensor]  # flattened Adam state: "<param>/<key>" -> tensor
    masks: dict[str, torch.Tensor]  # param name -> bool mask (empty when dense)
    scene_fingerprint: str  # fingerprint of the training images, to refuse resuming on other data
    extra: dict  # free-form JSON metadata (e.g. the pruning round)
    grid: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # occupancy grid state (empty: none)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, group in (("model/", ckpt.model), ("optim/", ckpt.optimizer), ("mask/", ckpt.masks), ("grid/", ckpt.grid)):
        for name, t in group.items():
            t = t.detach().cpu().contiguous()
            tensors[prefix + name] = t.to(torch.uint8) if t.dtype == torch.bool else t
    meta = {
        "format": FORMAT,
        "iteration": str(ckpt.iteration),
        "config": json.dumps(ckpt.config, sort_keys=True),
        "scene_fingerprint": ckpt.scene_fingerprint,
        "extra": json.dumps(ckpt.extra, sort_keys=True),
    }
    atomic_write_bytes(path, save(tensors, metadata=meta))


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a nerfprune checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    groups: dict[str, dict[str, torch.Tensor]] = {"model/": {}, "optim/": {}, "mask/": {}, "grid/": {}}
    for key, t in tensors.items():
        for prefix, group in groups.items():
            if key.startswith(prefix):
                group[key[len(prefix):]] = t.bool() if prefix == "mask/" else t
    try:
        return Checkpoint(
            iteration=int(meta["iteration"]), config=json.loads(meta["config"]), model=groups["model/"],
            optimizer=groups["optim/"], masks=groups["mask/"], scene_fingerprint=meta["scene_fingerprint"],
            extra=json.loads(meta.get("extra", "{}")), grid=groups["grid/"],
        )
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({e})") from None


def flatten_adam_state(optimizer: torch.optim.Optimizer, names: dict[torch.nn.Parameter, str]) -> dict[str, torch.Tensor]:
    """Adam state -> {"<param name>/<key>": tensor}; scalars (step) become 0-d tensors."""
    flat = {}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            flat[f"{names[param]}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return flat


def restore_adam_state(optimizer: torch.optim.Optimizer, names: dict[torch.nn.Parameter, str], flat: dict[str, torch.Tensor]) -> None:
    """Put saved Adam state back: moments onto their parameter's device, the step count on the CPU (as Adam keeps it)."""
    by_name = {name: param for param, name in names.items()}
    for key, value in flat.items():
        pname, skey = key.rsplit("/", 1)
        if pname not in by_name:
            raise CheckpointError(f"optimizer state for unknown parameter '{pname}'")
        param = by_name[pname]
        optimizer.state[param][skey] = value.clone() if skey == "step" else value.to(param.device, copy=True)
