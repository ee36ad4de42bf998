"""The study's grid without running it: the cells of the 2022 schedule, their budgets, seeds and specs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nerfprune.errors import ConfigError
from nerfprune.experiments.grid import PruneRecipe, StudyConfig, plan_cells
from nerfprune.experiments.scheduler import topological_order


def training_iterations(cells) -> int:
    """Iterations actually trained: each dense cell from its chain parent on, each pruned cell's fine-tuning."""
    total = 0
    for c in cells.values():
        if c.kind == "dense":
            total += c.info["iterations"] - (cells[c.deps[0]].info["iterations"] if c.deps else 0)
        elif c.kind == "pruned":
            total += c.info["total_iterations"] - c.info["iterations"]
    return total


def test_the_full_schedule():
    cells = plan_cells(StudyConfig())
    dense = {(c.info["iterations"], c.info["seed"]) for c in cells.values() if c.kind == "dense"}
    assert dense == {(5000, 0), (10000, 0), (20000, 0), (40000, 0), (5000, 1), (10000, 1), (5000, 2), (10000, 2)}
    pruned = {(c.info["recipe"], c.info["iterations"], c.info["seed"]) for c in cells.values()
              if c.kind == "pruned" and not c.info["sweep"]}
    assert pruned == {(r, 5000, s) for r in ("global", "structured") for s in (0, 1, 2)} | {
        (r, n, 0) for r in ("global", "structured") for n in (10000, 20000)}
    assert all(c.info["total_iterations"] == 2 * c.info["iterations"] for c in cells.values() if c.kind == "pruned")
    assert training_iterations(cells) == 165_000  # the figure docs/study.md's cost estimate uses
    assert cells["dense-40000-s0"].deps == ("dense-20000-s0",) and cells["dense-5000-s1"].deps == ()
    prune = cells["pruned-global-20000-s0"].spec["prune"]  # the 2022 way: one shot, fine-tuned from the trained weights
    assert {k: prune[k] for k in ("sparsity", "method", "rounds", "retrain_iterations", "rewind")} == {
        "sparsity": 0.95, "method": "global", "rounds": 1, "retrain_iterations": 20000, "rewind": "finetune"}
    timed = {c.spec["model"] for c in cells.values() if c.kind == "time"}
    assert timed == {n for n, c in cells.items() if c.kind in ("dense", "pruned") and c.info["seed"] == 0}
    assert all(c.exclusive == (c.kind in ("time", "profile")) for c in cells.values())
    topological_order(cells)  # a DAG over known cells


def test_scale_and_multi_round_recipes():
    cfg = StudyConfig(scale=0.1, seeds=(3,), recipes=(PruneRecipe("global"), PruneRecipe("iter", "global", {"rounds": 3})),
                      sweep=())
    cells = plan_cells(cfg)
    assert cfg.grid == (500, 1000, 2000)
    it = cells["pruned-iter-1000-s3"]
    assert it.spec["prune"]["retrain_iterations"] == 333 and it.info["total_iterations"] == 1999
    assert "dense-1999-s3" in cells  # its equal-budget control
    assert cells["dense-2000-s3"].deps == ("dense-1999-s3",)


def test_a_changed_parent_changes_its_childrens_specs():
    base = plan_cells(StudyConfig(sweep=()))
    lr = plan_cells(StudyConfig(sweep=(), train=replace(StudyConfig().train, lr=1e-3)))
    assert base["dense-5000-s0"].spec != lr["dense-5000-s0"].spec
    for name in ("pruned-global-5000-s0", "time-pruned-global-5000-s0", "profile"):
        assert base[name].spec["inputs"] != lr[name].spec["inputs"], name
    more = plan_cells(StudyConfig(sweep=(), seeds=(0, 1, 2, 3)))  # a new seed adds cells, keeps the others
    assert all(more[n].spec == c.spec for n, c in base.items())


@pytest.mark.parametrize("changes, message", [
    ({"recipes": (PruneRecipe("structured", "structured"),)}, "recipes must include"),
    ({"recipes": (PruneRecipe("global"), PruneRecipe("x", "nonsense"))}, r"recipes\[x\].method: unknown pruning method"),
    ({"recipes": (PruneRecipe("global"), PruneRecipe("x", "global", {"seed": 3}))}, "seed are set by the study"),
    ({"recipes": (PruneRecipe("global"), PruneRecipe("x", "global", {"round": 3}))}, r"unknown PruneConfig field\(s\) round"),
    ({"recipes": (PruneRecipe("global"), PruneRecipe("dense", "global"))}, "other than 'dense'"),
    ({"seeds": (1, 1)}, "distinct seeds"),
    ({"train": replace(StudyConfig().train, lr_decay_steps=0)}, "lr_decay_steps must be fixed"),
    ({"val_views": -1}, r"val_views must be in \[0, 10000\]"),
    ({"variants": ("masked", "fast")}, r"variants: unknown or none \['fast'\]"),
])
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        plan_cells(StudyConfig(**changes))
