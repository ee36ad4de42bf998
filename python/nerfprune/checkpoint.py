"""Training checkpoints: one safetensors file with model, optimizer state and masks.

Loading runs no code (safetensors, not pickle). The JSON config, the iteration,
the scene fingerprint and the scene record (`nerfprune.provenance`) travel in the
file's string metadata. Loading checks everything before it is used: metadata
kinds, tensor names, dtypes (float32 weights, 0/1 masks), finiteness, and, against
the network the config describes, shapes (`check_state`). Files are
written atomically (temporary file, fsync, rename): an interrupted write leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from nerfprune.config import atomic_write_bytes, to_dict
from nerfprune.errors import CheckpointError, ConfigError
from nerfprune.provenance import SceneRecord, as_record

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
    scene: SceneRecord | None = None  # the scene trained on (None in checkpoints written before it was recorded)
    grid: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # occupancy grid state (empty: none)


GROUPS = ("model/", "optim/", "mask/", "grid/")  # tensor name prefixes: weights, Adam state, pruning masks, occupancy grid
ADAM_KEYS = {"step": "a 0-d step count", "exp_avg": "the first moment", "exp_avg_sq": "the second moment",
             "max_exp_avg_sq": "the AMSGrad maximum"}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, group in zip(GROUPS, (ckpt.model, ckpt.optimizer, ckpt.masks, ckpt.grid)):
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
    if ckpt.scene is not None:
        meta["scene"] = json.dumps(to_dict(ckpt.scene), sort_keys=True)
    atomic_write_bytes(path, save(tensors, metadata=meta))


def _json_object(path: Path, meta: dict, key: str, default: str | None = None) -> dict | None:
    text = meta.get(key, default)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: metadata '{key}' is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: metadata '{key}' must be a JSON object, got {type(value).__name__}")
    return value


def read_safetensors(path: str | Path, what: str = "checkpoint") -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file; `CheckpointError` naming it if it is none.

    Only regular files are opened (a FIFO would block, a device never end).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: {what} file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} is not a regular file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors {what} ({e})") from None
    return meta, tensors


def check_tensors(path: str | Path, tensors: dict[str, torch.Tensor], kind: str, *, finite: bool = True) -> None:
    """Weights and optimizer state must be finite float32 tensors: int8, bool or float16 weights are
    not this program's, and NaN/Inf ones render NaN images. `CheckpointError` names the tensor."""
    for name, t in tensors.items():
        if t.dtype != torch.float32:
            raise CheckpointError(f"{path}: {kind} tensor '{name}' has dtype {str(t.dtype).removeprefix('torch.')}, expected float32")
        if finite and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: {kind} tensor '{name}' holds NaN or infinite values")


def _masks(path: Path, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    masks = {}
    for name, t in raw.items():
        if t.dtype not in (torch.uint8, torch.bool):
            raise CheckpointError(f"{path}: mask 'mask/{name}' has dtype {str(t.dtype).removeprefix('torch.')}, expected uint8 0/1")
        if t.dtype == torch.uint8 and bool((t > 1).any()):
            raise CheckpointError(f"{path}: mask 'mask/{name}' holds values other than 0 and 1")
        masks[name] = t.bool()
    return masks


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint: format, metadata kinds, tensor names, dtypes and finiteness.

    Whether the tensors fit the network the stored config describes is `check_state`'s job
    (the caller knows the network). Every problem is a `CheckpointError` naming the file.
    """
    path = Path(path)
    meta, tensors = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a nerfprune checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    groups: dict[str, dict[str, torch.Tensor]] = {prefix: {} for prefix in GROUPS}
    for key, t in tensors.items():
        prefix = next((p for p in GROUPS if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f"{path}: unexpected tensor '{key}' (checkpoint tensors are model/, optim/, mask/ or grid/)")
        groups[prefix][key[len(prefix):]] = t
    check_tensors(path, groups["model/"], "weight")
    check_tensors(path, groups["optim/"], "optimizer state")
    iteration = meta.get("iteration", "")
    if not (iteration.isascii() and iteration.isdigit() and len(iteration) <= 12):
        raise CheckpointError(f"{path}: metadata 'iteration' must be a count >= 0, got {iteration[:40]!r}")
    fingerprint = meta.get("scene_fingerprint")
    if not isinstance(fingerprint, str):
        raise CheckpointError(f"{path}: metadata 'scene_fingerprint' is missing")
    config = _json_object(path, meta, "config")
    if config is None:
        raise CheckpointError(f"{path}: metadata 'config' is missing")
    try:
        scene = as_record(_json_object(path, meta, "scene"), f"{path}: scene")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return Checkpoint(
        iteration=int(iteration), config=config, model=groups["model/"], optimizer=groups["optim/"],
        masks=_masks(path, groups["mask/"]), scene_fingerprint=fingerprint,
        extra=_json_object(path, meta, "extra", "{}"), scene=scene, grid=groups["grid/"],
    )


def check_state(path: str | Path, ckpt: Checkpoint, shapes: dict[str, tuple[int, ...]],
                buffers: tuple[str, ...] = ()) -> None:
    """The checkpoint's tensors fit a network whose parameters have `shapes` (name -> shape); the names in
    `buffers` are non-trainable tensors of the model (no optimizer state).

    Missing and extra weights, optimizer state of unknown parameters or of the wrong shape,
    and masks that do not match their weight are each a `CheckpointError` naming the tensor.
    """
    missing = sorted(set(shapes) - set(ckpt.model))
    extra = sorted(set(ckpt.model) - set(shapes))
    if missing or extra:
        parts = ([f"missing tensor(s) {', '.join('model/' + n for n in missing[:4])}"] if missing else []) + \
                ([f"unexpected tensor(s) {', '.join('model/' + n for n in extra[:4])}"] if extra else [])
        raise CheckpointError(f"{path}: weights do not fit the saved network config: {'; '.join(parts)}")
    for name, shape in shapes.items():
        if tuple(ckpt.model[name].shape) != tuple(shape):
            raise CheckpointError(f"{path}: tensor 'model/{name}' has shape {tuple(ckpt.model[name].shape)}, "
                                  f"the saved network config needs {tuple(shape)}")
    state: dict[str, set[str]] = {}
    for key, t in ckpt.optimizer.items():
        pname, _, skey = key.rpartition("/")
        if pname not in shapes or skey not in ADAM_KEYS:
            raise CheckpointError(f"{path}: unexpected optimizer tensor 'optim/{key}'")
        want = () if skey == "step" else tuple(shapes[pname])
        if tuple(t.shape) != want:
            raise CheckpointError(f"{path}: optimizer tensor 'optim/{key}' has shape {tuple(t.shape)}, expected {want}")
        state.setdefault(pname, set()).add(skey)
    if ckpt.iteration > 0:  # every parameter has Adam state after one step: without it, a resume would not be exact
        stateless = sorted(set(shapes) - set(state) - set(buffers))
        if stateless:
            raise CheckpointError(f"{path}: no optimizer state for {', '.join(stateless[:4])} after "
                                  f"{ckpt.iteration} iterations (optim/<param>/exp_avg etc. are missing)")
    for pname, keys in state.items():
        lacking = sorted({"step", "exp_avg", "exp_avg_sq"} - keys)
        if lacking:
            raise CheckpointError(f"{path}: optimizer state of '{pname}' lacks {', '.join('optim/' + pname + '/' + k for k in lacking)}")
    for name, mask in ckpt.masks.items():
        if name not in shapes:
            raise CheckpointError(f"{path}: mask 'mask/{name}' names no parameter of the network")
        if tuple(mask.shape) != tuple(shapes[name]):
            raise CheckpointError(f"{path}: mask 'mask/{name}' has shape {tuple(mask.shape)}, its weight {tuple(shapes[name])}")


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
