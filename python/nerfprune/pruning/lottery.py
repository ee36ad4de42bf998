"""Lottery-ticket pruning rounds (Frankle & Carbin, ICLR 2019) on a trained NeRF.

A round: rank the live weights (global or layer-wise magnitude, or a random
control, or whole neurons for structured pruning), drop a fraction of them,
reset the survivors to a rewind point, and re-train with the mask held fixed.
Rewind points: "finetune" — the pre-trained weights (what the 2022 study did);
"late" — the weights at iteration k of pre-training (late rewinding, Frankle et
al. 2020); "init" — the initial weights (the original hypothesis). Initial and
early weights are not stored: training is deterministic for a seed, so they are
re-created exactly (a snapshot file is used when the parent run saved one).

Every round writes `round-<r>/` (training checkpoint with masks, log, config)
and `round-<r>/round.json` (sparsity, overlap with the previous round, dead
neurons, validation metrics) — the latter marks the round as finished, so an
interrupted run resumes inside the round it was in. The checkpoint is the one
place masks are saved: a round's masks are a deterministic function of the
previous round's model, so a round interrupted before its first checkpoint
simply recomputes them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nerfprune.config import atomic_write_json, save_config, to_dict
from nerfprune.errors import ConfigError
from nerfprune.evaluation import EvalConfig, evaluate_views
from nerfprune.field.mlp import NerfModel
from nerfprune.pruning.masks import mask_overlap, mask_stats
from nerfprune.pruning.methods import METHODS
from nerfprune.scene.types import Scene
from nerfprune.training import TrainConfig, Trainer, build_model, load_model

log = logging.getLogger(__name__)

REWINDS = {
    "finetune": "the pre-trained weights (what the 2022 study did)",
    "late": "the weights at --rewind-iteration of pre-training (late rewinding)",
    "init": "the initial weights (the original lottery-ticket hypothesis)",
}


@dataclass
class PruneConfig:
    """How to prune and re-train."""

    sparsity: float = 0.95  # target fraction of the prunable weights removed after the last round
    rounds: int = 1  # 1: one-shot; n > 1: each round removes p = 1 - (1 - sparsity)^(1/n) of the remaining weights
    method: str = "global"  # how weights are chosen: "global" | "layerwise" magnitude, "random" (control), "structured" (whole neurons)
    rewind: str = "finetune"  # survivors restart from: "finetune" (pre-trained), "late" (iteration k), "init"
    rewind_iteration: int = 100  # k for late rewinding
    retrain_iterations: int = 0  # re-training iterations per round (0: as many as the pre-training had)
    prune_heads: bool = False  # also prune the output heads (sigma, rgb)
    seed: int = 0  # seed of the random-mask control
    eval_views: int = 2  # validation views evaluated after each round (0: none)

    def validate(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if self.method not in METHODS:
            raise ConfigError(f"unknown pruning method '{self.method}': choose one of {', '.join(METHODS)}")
        if self.rewind not in REWINDS:
            raise ConfigError(f"unknown rewind point '{self.rewind}': choose one of {', '.join(REWINDS)}")
        if self.rewind_iteration < 0 or self.retrain_iterations < 0:
            raise ConfigError("rewind_iteration and retrain_iterations must be >= 0")

    @property
    def fraction_per_round(self) -> float:
        return 1.0 - (1.0 - self.sparsity) ** (1.0 / self.rounds)


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


def next_masks(model: NerfModel, current: dict[str, torch.Tensor] | None, cfg: PruneConfig, round_index: int) -> dict[str, torch.Tensor]:
    """The masks of the next round, pruning `cfg.fraction_per_round` of the live weights."""
    weights = prunable_weights(model, cfg.prune_heads)
    return METHODS[cfg.method].select(model, weights, current, cfg.fraction_per_round, cfg, round_index)


def _rewind_state(parent_dir: Path, parent_cfg: TrainConfig, scene: Scene, cfg: PruneConfig, out_dir: Path, pretrained: dict) -> dict:
    if cfg.rewind == "finetune":
        return pretrained
    if cfg.rewind == "init":
        return build_model(parent_cfg).state_dict()
    snapshot = parent_dir / f"snapshot-{cfg.rewind_iteration}.safetensors"
    if snapshot.exists():
        from safetensors.torch import load_file

        return load_file(str(snapshot))
    # Training is deterministic: re-create the parent's weights at iteration k exactly.
    trainer = Trainer(scene, parent_cfg, out_dir / f"rewind-{cfg.rewind_iteration}")
    return trainer.run(resume=True, until=cfg.rewind_iteration).state_dict()


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
    save_config(cfg, out, "prune_config.json")
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    rewind = _rewind_state(parent_dir, parent_cfg, scene, cfg, out, pretrained)
    retrain_cfg = replace(parent_cfg, iterations=cfg.retrain_iterations or parent_cfg.iterations)
    masks: dict[str, torch.Tensor] | None = None
    rounds = []
    current = model
    for r in range(1, cfg.rounds + 1):
        round_dir = out / f"round-{r}"
        done = round_dir / "round.json"
        if done.exists():
            rounds.append(json.loads(done.read_text()))
            current, _, round_ckpt = load_model(round_dir)
            masks = round_ckpt.masks
            continue
        previous = masks
        # Deterministic from the previous round's model; if this round was interrupted after
        # its first checkpoint, the Trainer resumes with the masks saved there (the same ones).
        masks = next_masks(current, previous, cfg, r)
        init = {k: v.clone() for k, v in rewind.items()}
        trainer = Trainer(scene, retrain_cfg, round_dir, masks=masks, init_state=init, progress=progress,
                          extra={"prune_round": r, "parent": str(parent)})
        current = trainer.run(resume=True)
        stats = mask_stats(masks)
        record = {
            "round": r,
            "sparsity": stats["total"].sparsity,
            "live_weights": stats["total"].live,
            "per_layer_sparsity": {k: v.sparsity for k, v in stats.items() if k != "total"},
            "overlap_with_previous": None if previous is None else mask_overlap(previous, masks)["total"].jaccard,
            "iterations": retrain_cfg.iterations,
        }
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
