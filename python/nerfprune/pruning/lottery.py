"""Lottery-ticket pruning rounds (Frankle & Carbin, ICLR 2019) on a trained NeRF.

A round: rank the live weights (global or layer-wise magnitude, or a random
control, or whole neurons for structured pruning), drop a fraction of them,
reset the survivors to a rewind point, and re-train with the mask held fixed.
Rewind points: "finetune" — the pre-trained weights (what the 2022 study did);
"late" — the weights at iteration k of pre-training (late rewinding, Frankle et
al. 2020); "init" — the initial weights (the original hypothesis); "continue" —
no rewind: each round fine-tunes the previous round's weights (gradual pruning,
Zhu & Gupta 2017, with `schedule="cubic"`). Initial and early weights are not
stored: training is deterministic for a seed, so they are re-created exactly (a
snapshot file is used when the parent run saved one).

Structured rounds can rank neurons by statistics of training rays
(`importance`: "activation", "taylor"); they are gathered from the model the
round prunes (`pruning/importance.py`), on batches that differ from round to round.
With `distill` > 0 the re-training also pulls the pruned model's rendered colours
towards the dense parent's (`nerfprune.loss.Teacher`), as KiloNeRF distils its
tiny networks from a trained NeRF.

Every round writes `round-<r>/` (training checkpoint with masks, log, config)
and `round-<r>/round.json` (sparsity, overlap with the previous round, dead
neurons, validation metrics) — the latter marks the round as finished, so an
interrupted run resumes inside the round it was in. The checkpoint is the one
place masks are saved: a round's masks are a deterministic function of the
previous round's model, so a round interrupted before its first checkpoint
simply recomputes them.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nerfprune.config import atomic_write_json, check_choice, check_fields, check_range, save_config, to_dict
from nerfprune.checkpoint import Checkpoint
from nerfprune.errors import CheckpointError, ConfigError, SceneError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.mlp import NerfModel
from nerfprune.pruning.importance import IMPORTANCE, gather_importance
from nerfprune.loss import Teacher
from nerfprune.pruning.masks import mask_overlap, mask_stats
from nerfprune.pruning.methods import METHODS
from nerfprune.scene.types import Scene
from nerfprune.training import (MAX_ITERATIONS, MAX_SEED, TrainConfig, Trainer, build_model, load_model,
                                parameter_shapes)
from taichi_kernels.reference import positional_encoding

log = logging.getLogger(__name__)

REWINDS = {
    "finetune": "the pre-trained weights (what the 2022 study did)",
    "late": "the weights at --rewind-iteration of pre-training (late rewinding)",
    "init": "the initial weights (the original lottery-ticket hypothesis)",
    "continue": "no rewind: each round fine-tunes the previous round's weights (gradual pruning; round 1 the pre-trained)",
}
SCHEDULES = {
    "geometric": "after round r of n: 1 - (1 - s)^(r/n), every round removes the same share of the live weights",
    "cubic": "after round r of n: s (1 - (1 - r/n)^3) (Zhu & Gupta 2017): much early, little late",
}

DISTILL_TARGETS = {
    "rays": "the dense parent's rendered colours (coarse and fine) of the same training rays, same sample jitter",
}


@dataclass
class PruneConfig:
    """How to prune and re-train."""

    sparsity: float = 0.95  # target fraction of the prunable weights removed after the last round
    rounds: int = 1  # 1: one-shot; n > 1: iterative, the sparsity after each round follows `schedule`
    method: str = "global"  # how weights are chosen: "global" | "layerwise" magnitude, "random" (control), "structured" (whole neurons)
    rewind: str = "finetune"  # survivors restart from: "finetune" (pre-trained), "late" (iteration k), "init", "continue" (the previous round's weights)
    rewind_iteration: int = 100  # k for late rewinding
    retrain_iterations: int = 0  # re-training iterations per round (0: as many as the pre-training had)
    retrain_lr: float = 0.0  # Adam learning rate while re-training, the parent's decay schedule kept (0: the parent's rate)
    prune_heads: bool = False  # also prune the output heads (sigma, rgb)
    seed: int = 0  # seed of the random-mask control
    eval_views: int = 2  # validation views evaluated after each round (0: none)
    importance: str = "magnitude"  # how structured pruning scores a neuron: "magnitude", or from training rays "activation", "taylor"
    importance_batches: int = 4  # training-ray batches (of the parent's batch size) that activation / taylor scores are gathered on, per round
    min_neurons: int = 2  # structured: neurons every hidden layer keeps, and neurons kept for each output head (the heads' floor)
    prune_inputs: bool = False  # structured: also drop positional-encoding features (same kept fraction, by weight magnitude; raw xyz kept), so fewer are computed
    schedule: str = "geometric"  # the target sparsity after each round: "geometric" or "cubic" (gradual pruning)
    distill: float = 0.0  # weight w of distillation from the dense parent while re-training: loss = photometric + w x distillation term (0: off)
    distill_target: str = "rays"  # what the pruned model is pulled towards (DISTILL_TARGETS)
    revive_density: bool = True  # ReLU density: after pruning, raise each density head's bias until it is positive at as many of the parent's occupied-grid points as the parent's was (a head pruning left negative everywhere gets no gradient and never comes back); false: as before

    def validate(self) -> None:
        """Types and ranges of every field (bounds: docs/validation.md)."""
        check_fields(self)
        check_range("sparsity", self.sparsity, 0.0, 1.0, low_open=True, high_open=True)
        check_range("rounds", self.rounds, 1, 100)
        check_choice("method", self.method, METHODS, "pruning method")
        check_choice("rewind", self.rewind, REWINDS, "rewind point")
        check_range("rewind_iteration", self.rewind_iteration, 0, MAX_ITERATIONS)
        check_range("retrain_iterations", self.retrain_iterations, 0, MAX_ITERATIONS)
        check_range("retrain_lr", self.retrain_lr, 0.0, 1e6)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("eval_views", self.eval_views, 0, 10**4)
        check_choice("importance", self.importance, IMPORTANCE, "neuron importance")
        if self.importance != "magnitude" and self.method != "structured":
            raise ConfigError(f"importance: {self.importance!r} scores whole neurons; it needs method 'structured', "
                              f"got method {self.method!r} (or use importance 'magnitude')")
        check_range("importance_batches", self.importance_batches, 1, 1000)
        check_range("min_neurons", self.min_neurons, 1, 4096)
        if self.prune_inputs and self.method != "structured":
            raise ConfigError(f"prune_inputs: drops whole input features; it needs method 'structured', got {self.method!r}")
        check_choice("schedule", self.schedule, SCHEDULES, "sparsity schedule")
        check_range("distill", self.distill, 0.0, 1e4)
        check_choice("distill_target", self.distill_target, DISTILL_TARGETS, "distillation target")

    def sparsity_after(self, r: int) -> float:
        """The schedule's target fraction of the prunable weights removed after round r (0 <= r <= rounds)."""
        t = r / self.rounds
        if self.schedule == "cubic":
            return self.sparsity * (1.0 - (1.0 - t) ** 3)
        return 1.0 - (1.0 - self.sparsity) ** t


def prunable_weights(model: NerfModel, prune_heads: bool = False) -> dict[str, torch.Tensor]:
    """Linear weights subject to pruning, by parameter name (biases are never pruned).

    The output heads (the topology's outputs: density and colour) are left out unless `prune_heads`.
    """
    heads = set(model.topology().outputs)
    out = {}
    for name, param in model.named_parameters():
        if not name.endswith(".weight"):
            continue
        layer = name.split(".", 1)[1].rsplit(".", 1)[0]
        if layer in heads and not prune_heads:
            continue
        out[name] = param.detach()
    return out


def next_masks(
    model: NerfModel, current: dict[str, torch.Tensor] | None, cfg: PruneConfig, round_index: int,
    stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """The masks of round `round_index`: the schedule's `cfg.sparsity_after(round_index)` of the prunable weights gone.

    The share of the live weights to drop is taken from the live count of `current`, not from the
    schedule's previous target, so rounds that overshot (whole neurons come in steps) do not add up.
    `stats`: the neuron statistics `cfg.importance` needs ({"activation": ..., "taylor": ...} from
    `gather_importance`); required unless the importance is "magnitude".
    """
    if cfg.importance != "magnitude" and (stats is None or cfg.importance not in stats):
        raise ConfigError(f"importance {cfg.importance!r}: gather the neuron statistics first (gather_importance)")
    weights = prunable_weights(model, cfg.prune_heads)
    total = sum(w.numel() for w in weights.values())
    live = sum(int(current[k].sum()) if current and k in current else w.numel() for k, w in weights.items())
    fraction = min(max(1.0 - (1.0 - cfg.sparsity_after(round_index)) * total / max(live, 1), 0.0), 1.0)
    return METHODS[cfg.method].select(model, weights, current, fraction, cfg, round_index, stats)


def _teacher(parent: NerfModel, cfg: PruneConfig) -> Teacher | None:
    """The dense parent as the re-training's teacher when `cfg.distill` > 0 (None otherwise: the loss is the
    photometric one alone, computed exactly as without the option). A copy, frozen: the rounds never train it."""
    if cfg.distill <= 0:
        return None
    teacher = copy.deepcopy(parent).eval().requires_grad_(False)
    return Teacher(teacher, cfg.distill)


def _rewind_state(parent_dir: Path, parent_cfg: TrainConfig, scene: Scene, cfg: PruneConfig, out_dir: Path, pretrained: dict) -> dict:
    if cfg.rewind in ("finetune", "continue"):  # "continue": round 1 starts from the pre-trained weights
        return pretrained
    if cfg.rewind == "init":
        return build_model(parent_cfg, scene).state_dict()  # a feature grid keeps the scene's box
    snapshot = parent_dir / f"snapshot-{cfg.rewind_iteration}.safetensors"
    if snapshot.exists():
        return _read_snapshot(snapshot, parent_cfg)
    # Training is deterministic: re-create the parent's weights at iteration k exactly.
    trainer = Trainer(scene, parent_cfg, out_dir / f"rewind-{cfg.rewind_iteration}")
    return trainer.run(resume=True, until=cfg.rewind_iteration).state_dict()


def _read_snapshot(path: Path, parent_cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights of a rewind snapshot, checked like a checkpoint's (names, shapes, float32, finite)."""
    from nerfprune.checkpoint import check_state, check_tensors, read_safetensors

    _, tensors = read_safetensors(path, "rewind snapshot")
    check_tensors(path, tensors, "weight")
    check_state(path, Checkpoint(iteration=0, config={}, model=tensors, optimizer={}, masks={}, scene_fingerprint="",
                                 extra={}), parameter_shapes(parent_cfg))
    return tensors


ROUND_FIELDS = {"round": int, "sparsity": float, "live_weights": int, "per_layer_sparsity": dict, "iterations": int}


def _read_round(path: Path, index: int) -> dict:
    """A finished round's `round.json`, checked: a damaged one is a `CheckpointError` naming it (delete it to
    re-run the round)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not a readable round record ({e}); delete it to re-run round {index}") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: a round record must be a JSON object, got {type(record).__name__}; "
                              f"delete it to re-run round {index}")
    for key, kind in ROUND_FIELDS.items():
        value = record.get(key)
        ok = isinstance(value, kind) and not isinstance(value, bool) or kind is float and type(value) is int
        if not ok:
            raise CheckpointError(f"{path}: '{key}' must be {kind.__name__}, got {value!r:.40}; delete it to re-run round {index}")
    if record["round"] != index:
        raise CheckpointError(f"{path}: records round {record['round']}, but it is round {index}'s folder")
    return record


REVIVE_POINTS = 16384  # points drawn in the parent's occupied cells to match its share of positive raw density
REVIVE_BELOW = 0.5  # a head is revived when fewer than this fraction of the parent's positive points stay positive


@torch.no_grad()
def revive_density_heads(reference: NerfModel, init: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                         seed: int) -> dict[str, float]:
    """Raise the density heads' biases in `init` (the masked state a round re-trains from) where pruning
    closed them; returns the shift per head ({} when nothing was done).

    A ReLU density whose raw output is negative everywhere gives density 0 and gradient 0: fine-tuning
    cannot bring it back (global magnitude pruning to 90 % and more did that to mic, docs/pruning.md).
    At `REVIVE_POINTS` points drawn uniformly in `reference`'s occupied grid cells (seeded), each
    network's raw density with `init` and `masks` is compared with `reference`'s: if pruning closed the
    head (fewer than `REVIVE_BELOW` of the reference's share of points positive), its bias is raised by
    the quantile that makes the shares equal. Nothing happens for another activation, without a grid
    (no points known to hold the scene), or where the head stayed open.
    """
    grid = getattr(reference, "grid", None)
    if reference.field_cfg.density_activation != "relu" or grid is None or grid.warmup:
        return {}
    gen = torch.Generator().manual_seed(int(seed))
    occupied = torch.nonzero(grid.occupied.reshape(-1).cpu())[:, 0]
    if occupied.numel() == 0:
        return {}
    cells = occupied[torch.randint(occupied.numel(), (REVIVE_POINTS,), generator=gen)]
    points = grid.cell_points(cells, torch.rand((REVIVE_POINTS, 3), generator=gen)).to(reference.device)
    pos_enc = reference.encode_points(points, positional_encoding)  # [N, P]
    dir_enc = pos_enc.new_zeros(points.shape[0], reference.field_cfg.dir_features)  # [N, Dd]
    masked = {k: (v * masks[k] if k in masks else v) for k, v in init.items()}
    shifts = {}
    for name, net in reference.networks().items():
        want = (net(pos_enc, dir_enc)[0][:, 0] > 0).double().mean()
        own = {k.removeprefix(f"{name}."): v for k, v in masked.items() if k.startswith(f"{name}.")}
        raw = torch.func.functional_call(net, own, (pos_enc, dir_enc))[0][:, 0]  # [N], the masked start's raw density
        if want == 0 or (raw > 0).double().mean() >= REVIVE_BELOW * want:
            continue
        shift = -float(torch.quantile(raw.double(), 1.0 - float(want)))
        init[f"{name}.sigma.bias"] = init[f"{name}.sigma.bias"] + shift
        shifts[name] = shift
    if shifts:
        log.info("revived the density head(s): sigma bias raised by %s",
                 ", ".join(f"{k} {v:.3f}" for k, v in shifts.items()))
    return shifts


def run_pruning(
    parent: str | Path, scene: Scene, cfg: PruneConfig, out_dir: str | Path, *, progress: bool = False,
) -> dict:
    """Prune the model trained in `parent` (folder or checkpoint) in `cfg.rounds` rounds into `out_dir`.

    Returns a summary dict; the last round's folder holds a normal training
    checkpoint (with its masks) that `evaluate`/`render` accept.
    """
    cfg.validate()
    out = Path(out_dir)
    parent = Path(parent)
    parent_dir = parent if parent.is_dir() else parent.parent
    model, parent_cfg, ckpt = load_model(parent)
    if ckpt.masks:
        raise ConfigError(f"{parent}: is already pruned; prune a dense model (more rounds: --rounds)")
    # Everything that can be refused is checked before prune_config.json is written.
    retrain_cfg = replace(parent_cfg, iterations=cfg.retrain_iterations or parent_cfg.iterations,
                          lr=cfg.retrain_lr or parent_cfg.lr)
    parent_grid = getattr(model, "grid", None)
    if parent_grid is not None and not parent_grid.warmup:
        # The pruned model inherits its parent's carved grid (the scene is the same) and refreshes it from its
        # own field; no warm-up, which would mark every cell occupied again for its first warmup_steps. (A
        # parent still in its warm-up passes on a grid of a young field: the pruned model warms up too.)
        retrain_cfg = replace(retrain_cfg, occupancy=replace(retrain_cfg.occupancy, warmup_steps=0))
    retrain_cfg.validate()
    if cfg.rewind == "late" and cfg.rewind_iteration > parent_cfg.iterations:
        raise ConfigError(f"rewind_iteration must be <= the parent's {parent_cfg.iterations} training iterations, "
                          f"got {cfg.rewind_iteration}")
    if not scene.split("train").size:
        raise SceneError(f"{scene.source}: the train split is empty; nothing to re-train on")
    if cfg.eval_views and not scene.split("val").size:
        raise SceneError(f"{scene.source}: split 'val' has no views to evaluate each round on (set eval_views=0)")
    finished = {r: _read_round(out / f"round-{r}" / "round.json", r) for r in range(1, cfg.rounds + 1)
                if (out / f"round-{r}" / "round.json").exists()}
    snapshot = parent_dir / f"snapshot-{cfg.rewind_iteration}.safetensors"
    if cfg.rewind == "late" and snapshot.exists():
        _read_snapshot(snapshot, parent_cfg)
    save_config(cfg, out, "prune_config.json")
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    rewind = _rewind_state(parent_dir, parent_cfg, scene, cfg, out, pretrained)
    teacher = _teacher(model, cfg)
    masks: dict[str, torch.Tensor] | None = None
    rounds = []
    current = model
    for r in range(1, cfg.rounds + 1):
        round_dir = out / f"round-{r}"
        done = round_dir / "round.json"
        if r in finished:
            rounds.append(finished[r])
            current, _, round_ckpt = load_model(round_dir)
            masks = round_ckpt.masks
            continue
        previous = masks
        # Deterministic from the previous round's model; if this round was interrupted after
        # its first checkpoint, the Trainer resumes with the masks saved there (the same ones).
        neuron_stats = None
        if cfg.importance != "magnitude":
            neuron_stats = gather_importance(current, scene, retrain_cfg, taylor=cfg.importance == "taylor",
                                             batches=cfg.importance_batches, seed=cfg.seed,
                                             first_batch=(r - 1) * cfg.importance_batches)
        masks = next_masks(current, previous, cfg, r, neuron_stats)
        start = current.state_dict() if cfg.rewind == "continue" else rewind
        init = {k: v.clone() for k, v in start.items()}
        if cfg.revive_density:
            revive_density_heads(current, init, masks, seed=cfg.seed + r)
        extra = {"prune_round": r, "parent": str(parent)}
        if teacher is not None:
            extra.update(distill=cfg.distill, distill_target=cfg.distill_target)
        grid = getattr(current, "grid", parent_grid)
        trainer = Trainer(scene, retrain_cfg, round_dir, masks=masks, init_state=init, progress=progress,
                          extra=extra, teacher=teacher, init_grid=None if grid is None else grid.state_dict())
        current = trainer.run(resume=True)
        stats = mask_stats(masks)
        record = {
            "round": r,
            "target_sparsity": cfg.sparsity_after(r),
            "sparsity": stats["total"].sparsity,
            "live_weights": stats["total"].live,
            "per_layer_sparsity": {k: v.sparsity for k, v in stats.items() if k != "total"},
            "overlap_with_previous": None if previous is None else mask_overlap(previous, masks)["total"].jaccard,
            "iterations": retrain_cfg.iterations,
        }
        if teacher is not None:
            record.update(distill=cfg.distill, distill_target=cfg.distill_target)
        if cfg.eval_views:
            metrics = evaluate_views(current, scene, retrain_cfg.render,
                                     EvalConfig(split="val", max_views=cfg.eval_views, timing_repeats=0))
            record["val_psnr"] = metrics["psnr"]["mean"]
        atomic_write_json(done, record)
        rounds.append(record)
        log.info("round %d: sparsity %.3f", r, record["sparsity"])
    summary = {"parent": str(parent), "config": to_dict(cfg), "rounds": rounds, "final": str(out / f"round-{cfg.rounds}")}
    atomic_write_json(out / "summary.json", summary)
    return summary
