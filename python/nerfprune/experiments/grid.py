"""The study's grid: what the 2022 "Pruning NeRFs" table needs, as a DAG of cells.

A cell is one training, pruning, timing or profiling run: the unit of work, of parallelism and
of resumption (`experiments/cells.py` computes one, `experiments/scheduler.py` runs the DAG).
Its `spec` is everything that decides its result; a finished cell is reused only while its spec
is unchanged, so a changed setting can never silently mix old and new numbers.

The grid at pre-training lengths N (the study's 5k / 10k / 20k x `scale`):

- `dense-<L>-s<seed>`: dense training to L iterations, for every L in N, the pruned cells' total
  budgets (N + N: the equal-budget control the 2022 study lacked) and nothing else. The dense
  cells of one seed form a chain: `dense-<L>` continues the checkpoint of the next shorter one.
  The learning rate decays over a fixed 250k steps (the original NeRF's schedule, independent of
  the run length) and training resumes exactly, so that is the same model as a fresh L-iteration
  run, at a fraction of the cost.
- `pruned-<recipe>-<N>-s<seed>`: a pruning recipe applied to `dense-<N>`, survivors fine-tuned N
  iterations in all (split evenly over the recipe's rounds): the 2022 way for "global".
- `sweep-<sparsity>-<N0>-s<seed0>`: global pruning to other sparsities at the smallest N.
- `time-<model cell>`: render time of the model on every inference path (dense, masked, compacted,
  ...) interleaved with its dense parent, on one machine with nothing else running (`exclusive`).
- `profile`: the per-stage render profile of the largest-N models (exclusive too).

Seeds: every seed for the smallest `seeded_points` grid points (the dense N, its pruned cells and
their equal-budget control), the first seed elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from nerfprune.config import check_fields, check_range, nested, to_dict
from nerfprune.errors import ConfigError
from nerfprune.field.config import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import MAX_SEED, TrainConfig

NERF_LR_DECAY_STEPS = 250_000  # the original NeRF's schedule: lr x0.1 over 250k steps
RESERVED_OVERRIDES = ("retrain_iterations", "eval_views", "seed")  # set by the study for every cell


@dataclass
class PruneRecipe:
    """One pruning recipe of the grid: a method of `pruning.methods.METHODS` plus `PruneConfig` overrides."""

    name: str  # the label in cell names and the report, e.g. "global" (the 2022 study's) or "structured"
    method: str = "global"  # pruning method (a key of nerfprune.pruning.methods.METHODS)
    overrides: dict = field(default_factory=dict)  # other PruneConfig fields, e.g. {"rounds": 3, "prune_heads": true, "sparsity": 0.9}

    def prune_config(self, iterations: int, sparsity: float, seed: int):
        """The `PruneConfig` of this recipe after `iterations` of pre-training: as many fine-tuning
        iterations in all, split evenly over the rounds (at least 1 per round)."""
        from nerfprune.pruning.lottery import PruneConfig

        bad = sorted(set(self.overrides) & set(RESERVED_OVERRIDES))
        if bad:
            raise ConfigError(f"recipes[{self.name}].overrides: {', '.join(bad)} are set by the study for every cell")
        known = {f for f in PruneConfig.__dataclass_fields__} - {"method"}
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise ConfigError(f"recipes[{self.name}].overrides: unknown PruneConfig field(s) {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known - set(RESERVED_OVERRIDES)))})")
        cfg = PruneConfig(sparsity=sparsity, method=self.method, seed=seed, eval_views=0)
        cfg = replace(cfg, **self.overrides)
        cfg = replace(cfg, retrain_iterations=max(1, iterations // cfg.rounds))
        with nested(f"recipes[{self.name}]"):
            cfg.validate()
        return cfg


def default_recipes() -> tuple[PruneRecipe, ...]:
    return (PruneRecipe("global", "global"), PruneRecipe("structured", "structured"))


@dataclass
class StudyConfig:
    """The grid of the 2022 study, its controls, and how to measure it."""

    scene: str = "builtin"  # scene folder/file, or "builtin" for the generated scene
    factor: int = 1  # integer image downscale of the scene (mic at 100x100: 8)
    scale: float = 1.0  # fraction of the full schedule: multiplies every iteration count; below 0.05 the resolution drops too
    iterations: tuple[int, ...] = (5000, 10000, 20000)  # pre-training lengths N at scale 1 (the study's grid)
    equal_budget: bool = True  # also train dense models to each pruned cell's total iterations (the control the 2022 study lacked)
    sparsity: float = 0.95  # fraction of prunable weights removed (the study's 95 %; a recipe may override it)
    recipes: tuple[PruneRecipe, ...] = field(default_factory=default_recipes)  # pruning recipes; "global" (global magnitude, one shot) is the 2022 study's
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds of the seeded grid points (mean ± sd reported)
    seeded_points: int = 1  # the smallest grid points run with every seed (the others with the first seed only)
    sweep: tuple[float, ...] = (0.8, 0.9, 0.98)  # other sparsities of global pruning at the smallest grid point (render time vs sparsity)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr_decay_steps=NERF_LR_DECAY_STEPS, val_views=0, model=NerfModelConfig(preset="small"),
        render=RenderConfig(n_coarse=64, n_fine=64),
    ))  # every run's training settings (network, samples, batch, lr, occupancy); iterations, seed and checkpoints follow the grid
    train_views: int = 8  # train views evaluated per cell (first N; 0: all)
    val_views: int = 25  # validation views evaluated per cell (first N, a fixed subset; 0: all)
    timing_repeats: int = 7  # timed renders of one val view per inference path, interleaved (median and IQR reported)
    profile_repeats: int = 5  # renders per per-stage profile (median per stage)
    variants: tuple[str, ...] = ("masked", "compacted")  # inference paths timed per pruned model, beside its dense parent
    image_views: int = 3  # val views shown as rendered | ground truth | error in the report

    def validate(self) -> None:
        """Types, ranges and names of every field; each problem names its field."""
        from nerfprune.pruning.variants import VARIANTS

        check_fields(self)
        check_range("scale", self.scale, 0.0, 1e3, low_open=True)
        check_range("factor", self.factor, 1, 64)
        if not self.iterations:
            raise ConfigError("iterations must be a non-empty list of pre-training lengths")
        for i, k in enumerate(self.iterations):
            check_range(f"iterations[{i}]", k, 1, 10**7)
        check_range("sparsity", self.sparsity, 0.0, 1.0, low_open=True, high_open=True)
        for i, s in enumerate(self.sweep):
            check_range(f"sweep[{i}]", s, 0.0, 1.0, low_open=True, high_open=True)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct seeds, got {list(self.seeds)}")
        for i, s in enumerate(self.seeds):
            check_range(f"seeds[{i}]", s, 0, MAX_SEED)
        check_range("seeded_points", self.seeded_points, 0, len(self.iterations))
        for name in ("train_views", "val_views"):
            check_range(name, getattr(self, name), 0, 10**4)
        for name in ("timing_repeats", "profile_repeats"):
            check_range(name, getattr(self, name), 1, 1000)
        check_range("image_views", self.image_views, 0, 100)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"variants: unknown or none {unknown}; choose from {', '.join(VARIANTS)}")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names) or not all(n and n.replace("_", "").isalnum() and n != "dense" for n in names):
            raise ConfigError(f"recipes: names must be distinct letters/digits/underscores other than 'dense', got {names}")
        glob = next((r for r in self.recipes if r.name == "global"), None)
        if glob is None or glob.method != "global" or glob.overrides:
            raise ConfigError("recipes must include {'name': 'global', 'method': 'global'} without overrides "
                              "(the 2022 study's recipe, which the report compares with its table)")
        if self.train.lr_decay_steps == 0:
            raise ConfigError("train.lr_decay_steps must be fixed (> 0): a schedule that follows each run's length "
                              "would make dense-<L> differ from the checkpoint it continues")
        with nested("train"):
            self.train.validate()
        for r in self.recipes:
            r.prune_config(min(self.grid), self.sparsity, self.seeds[0])  # names a bad method or override

    @property
    def resolution_divisor(self) -> int:
        """Extra integer image downscale for small scales: 1 at scale >= 0.05, 2 down to 0.005, else 4."""
        return 1 if self.scale >= 0.05 else 2 if self.scale >= 0.005 else 4

    @property
    def grid(self) -> tuple[int, ...]:
        """The pre-training lengths N actually run: `iterations` x `scale`, at least 1, without repeats."""
        return tuple(sorted({max(1, round(k * self.scale)) for k in self.iterations}))

    def seeds_at(self, n: int) -> tuple[int, ...]:
        """Seeds of grid point `n`: all of them for the smallest `seeded_points` points, else the first."""
        return self.seeds if n in self.grid[: self.seeded_points] else self.seeds[:1]

    @property
    def checkpoint_every(self) -> int:
        """One checkpoint interval for every cell (a dense cell resumes another's checkpoint: same settings)."""
        return max(1, min(500, min(self.grid) // 4))

    def train_config(self, iterations: int, seed: int) -> TrainConfig:
        return replace(self.train, iterations=iterations, seed=seed, checkpoint_every=self.checkpoint_every)


@dataclass
class Cell:
    """One unit of work of the study."""

    name: str  # also the folder of its outputs and `cells/<name>.json`
    kind: str  # "dense" | "pruned" | "time" | "profile" (a key of cells.COMPUTE)
    spec: dict  # everything that decides the result (JSON); a finished cell is reused only if it is unchanged
    deps: tuple[str, ...] = ()  # cells that must have finished first
    info: dict = field(default_factory=dict)  # what the report groups and labels by (group, seed, iterations, ...)
    exclusive: bool = False  # runs with no other cell in flight, in the driver process (timings)
    work: float = 0.0  # training iterations it runs itself (what the scheduler orders by; not in the spec)


def _scene_spec(cfg: StudyConfig) -> dict:
    return {"scene": cfg.scene, "factor": cfg.factor, "resolution_divisor": cfg.resolution_divisor}


def _eval_spec(cfg: StudyConfig) -> dict:
    return {"train_views": cfg.train_views, "val_views": cfg.val_views}


def spec_digest(spec: dict) -> str:
    """A short hash of a spec (its JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def plan_cells(cfg: StudyConfig) -> dict[str, Cell]:
    """Every cell of the grid, each after the cells it depends on (a topological order)."""
    cfg.validate()
    grid, first = cfg.grid, cfg.seeds[0]
    top = max(grid)
    scene = _scene_spec(cfg)
    pruned: list[tuple[str, PruneRecipe, int, float, int, str]] = []  # (name, recipe, n, sparsity, seed, group)
    for n in grid:
        for recipe in cfg.recipes:
            for seed in cfg.seeds_at(n):
                pruned.append((f"pruned-{recipe.name}-{n}-s{seed}", recipe, n, cfg.sparsity, seed, f"pruned-{recipe.name}-{n}"))
    glob = next(r for r in cfg.recipes if r.name == "global")
    for s in cfg.sweep:
        if abs(s - cfg.sparsity) > 1e-9:
            pruned.append((f"sweep-{s:g}-{grid[0]}-s{first}", glob, grid[0], s, first, f"sweep-{s:g}-{grid[0]}"))

    def total(recipe: PruneRecipe, n: int) -> int:
        p = recipe.prune_config(n, cfg.sparsity, first)
        return n + p.rounds * p.retrain_iterations

    lengths: dict[int, set[int]] = {}  # seed -> dense lengths it needs
    for n in grid:
        for seed in cfg.seeds_at(n):
            lengths.setdefault(seed, set()).add(n)
            if cfg.equal_budget:
                lengths[seed].update(total(r, n) for r in cfg.recipes)
    cells: dict[str, Cell] = {}
    for seed, ls in sorted(lengths.items()):
        previous, previous_length = None, 0
        for length in sorted(ls):
            name = f"dense-{length}-s{seed}"
            cells[name] = Cell(
                name, "dense",
                # The chain (which checkpoint it continues) is not in the spec: the model is the same either way.
                {"kind": "dense", "scene": scene, "train": to_dict(cfg.train_config(length, seed)), "eval": _eval_spec(cfg)},
                deps=(previous,) if previous else (), work=length - previous_length,
                info={"group": f"dense-{length}", "seed": seed, "iterations": length, "total_iterations": length,
                      "sparsity": 0.0, "grid_point": length in grid,
                      "images": cfg.image_views if seed == first and length in (top, 2 * top) else 0})
            previous, previous_length = name, length
    for name, recipe, n, sparsity, seed, group in pruned:
        parent = f"dense-{n}-s{seed}"
        p = recipe.prune_config(n, sparsity, seed)
        cells[name] = Cell(
            name, "pruned",
            {"kind": "pruned", "scene": scene, "parent": parent, "prune": to_dict(p), "eval": _eval_spec(cfg)},
            deps=(parent,), work=p.rounds * p.retrain_iterations,
            info={"group": group, "seed": seed, "iterations": n, "recipe": recipe.name, "method": p.method,
                  "rounds": p.rounds, "total_iterations": n + p.rounds * p.retrain_iterations,
                  "target_sparsity": p.sparsity, "sweep": name.startswith("sweep-"),
                  "images": cfg.image_views if seed == first and n == top and not name.startswith("sweep-") else 0})
    for name in [n for n, c in cells.items() if c.info["seed"] == first]:
        model = cells[name]
        parent = model.spec.get("parent")
        cells[f"time-{name}"] = Cell(
            f"time-{name}", "time",
            {"kind": "time", "model": name, "parent": parent, "repeats": cfg.timing_repeats,
             "variants": ["dense"] if parent is None else list(cfg.variants)},
            deps=(name,) + ((parent,) if parent else ()), info={"group": f"time-{model.info['group']}", "seed": first},
            exclusive=True)
    models = {"dense": f"dense-{top}-s{first}", **{r.name: f"pruned-{r.name}-{top}-s{first}" for r in cfg.recipes}}
    cells["profile"] = Cell("profile", "profile", {"kind": "profile", "models": models, "repeats": cfg.profile_repeats},
                            deps=tuple(models.values()), info={"group": "profile", "seed": first}, exclusive=True)
    for cell in cells.values():  # in dependency order: a cell's inputs are final when it is reached
        if cell.kind != "dense":  # a re-computed parent with other settings invalidates its children
            cell.spec["inputs"] = {d: spec_digest(cells[d].spec) for d in cell.deps}
    return cells
