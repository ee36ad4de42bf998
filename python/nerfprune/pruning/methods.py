"""The registry of pruning methods: how one round chooses which weights to drop.

Each method takes the model, its prunable weights (name -> tensor), the current
masks (None before the first round), the fraction of the live weights to drop,
the `PruneConfig`, the round and the neuron statistics gathered from training rays
(`pruning/importance.py`; None unless `PruneConfig.importance` asks for them), and
returns the new masks (name -> bool, True = kept). The CLI's `--method` choices and
help come from this table.

Adding a method: write its mask function (here or in its own module) and add one
`PruningMethod` to `METHODS`; then a test in tests/test_prune.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from nerfprune.pruning.masks import global_magnitude_masks, layerwise_magnitude_masks, random_masks
from nerfprune.pruning.structured import structured_masks

Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PruningMethod:
    """One way to choose the weights a round removes."""

    name: str  # the value of PruneConfig.method / --method
    help: str  # one line for the CLI and the docs
    select: Callable[..., Masks]  # select(model, weights, current, fraction, cfg, round_index, stats) -> masks


def _global(model, weights, current, fraction, cfg, round_index, stats=None) -> Masks:
    return global_magnitude_masks(weights, current, fraction)


def _layerwise(model, weights, current, fraction, cfg, round_index, stats=None) -> Masks:
    return layerwise_magnitude_masks(weights, current, fraction)


def _random(model, weights, current, fraction, cfg, round_index, stats=None) -> Masks:
    return random_masks(weights, current, fraction, seed=cfg.seed + round_index, per_layer=True)


def _structured(model, weights, current, fraction, cfg, round_index, stats=None) -> Masks:
    """Neurons ranked by `cfg.importance`: weight magnitude, or `stats[cfg.importance]` from training rays."""
    stats = stats or {}
    scores = None if cfg.importance == "magnitude" else stats[cfg.importance]
    return structured_masks(model, weights, current, fraction, scores=scores, activity=stats.get("activation"),
                            min_neurons=cfg.min_neurons, prune_inputs=cfg.prune_inputs)


METHODS: dict[str, PruningMethod] = {m.name: m for m in (
    PruningMethod("global", "smallest magnitudes over all prunable layers together (the 2022 study's)", _global),
    PruningMethod("layerwise", "smallest magnitudes, the same fraction in every layer", _layerwise),
    PruningMethod("random", "a random control with layer-wise fractions (seeded by --seed)", _random),
    PruningMethod("structured", "whole neurons (ranked by --importance), so compaction shrinks the matrices", _structured),
)}
