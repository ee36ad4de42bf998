"""The training loop: Adam on MSE(coarse) + MSE(fine), seeded, resumable, interruptible.

Determinism: the model is initialised from `seed`; ray batches are a pure
function of (seed, iteration) (`RayBatcher`); sample jitter uses a generator
seeded from (seed, iteration). A resumed run therefore repeats exactly what an
uninterrupted run would have done, given the same thread count.

Device: the model and every tensor of a step live on `Trainer(device=...)`, by default the
one that matches Taichi's backend (`taichi_kernels.runtime.torch_device`: CUDA on a GPU
machine, else the CPU). The weights are initialised on the CPU and the jitter generators stay
there, so a GPU run starts from the same weights and draws the same numbers as a CPU run.
Checkpoints are written from CPU copies and load on any device.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nerfprune.checkpoint import (Checkpoint, check_state, check_tensors, flatten_adam_state, load_checkpoint,
                                  restore_adam_state, save_checkpoint)
from nerfprune.config import (atomic_write_bytes, check_fields, check_range, from_dict, make_dir, nested, save_config,
                              to_dict)
from nerfprune.errors import CheckpointError, ConfigError, MaskError, SceneError, TrainingDiverged
from nerfprune.field.config import MLPConfig, NerfModelConfig, level_resolutions
from nerfprune.field.mlp import NerfModel, field_topology
from nerfprune.loss import Teacher, auto_block_points, loss_and_backward
from nerfprune.provenance import record_scene, scene_fingerprint
from nerfprune.renderer import RenderConfig
from nerfprune.scene.batching import RayBatcher
from nerfprune.scene.types import Scene
from taichi_kernels.runtime import torch_device

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.safetensors"
MAX_ITERATIONS = 10**8  # training steps (5e4 took 7 hours on a GPU in the original NeRF)
MAX_SEED = 2**32 - 1  # seeds are combined with the iteration into one 64-bit generator seed
# RenderConfig fields that only decide how whole images are rendered (rays per step, marching rounds): the image
# is the same whatever they are, so a run may resume with other values (their defaults changed once)
RENDER_ONLY = ("ray_chunk", "round_samples")


@dataclass
class OccupancyConfig:
    """Empty-space skipping while training: an occupancy grid over the scene, refreshed from the field."""

    enabled: bool = True  # train with an occupancy grid where the scene has a bounding box (Blender, instant-ngp, built-in; not LLFF)
    resolution: int = 64  # cells per axis of the grid (64: a 128^3 warm-up update took ~20 s on 2 CPU cores)
    update_every: int = 16  # iterations between grid updates (nerfacc's default)
    warmup_steps: int = 256  # until this iteration every cell stays occupied and each update evaluates all of them (then a quarter + the occupied)
    threshold: float = 0.01  # a cell is empty below this opacity over one cell edge (nerfacc's occ_thre)
    decay: float = 0.95  # EMA decay of a cell's density per update (nerfacc, instant-ngp): how fast emptied space is carved
    dilate: int = 1  # cells of margin kept occupied around every occupied cell (0: none; 1 closed the PSNR gap on mic, see docs/empty-space.md)

    def validate(self) -> None:
        check_fields(self)
        check_range("resolution", self.resolution, 1, 512)  # 512^3 float32 densities: 512 MB
        check_range("update_every", self.update_every, 1, MAX_ITERATIONS)
        check_range("warmup_steps", self.warmup_steps, 0, MAX_ITERATIONS)
        check_range("threshold", self.threshold, 0.0, 1.0, high_open=True)
        check_range("decay", self.decay, 0.0, 1.0, low_open=True)
        check_range("dilate", self.dilate, 0, 8)


@dataclass
class TrainConfig:
    """Everything that decides a training run."""

    iterations: int = 2000  # optimisation steps in total (a resumed run continues up to this)
    batch_size: int = 1024  # rays per step
    lr: float = 5e-4  # Adam learning rate at step 0
    lr_decay: float = 0.1  # learning-rate factor reached after `lr_decay_steps` (exponential decay)
    lr_decay_steps: int = 0  # steps to reach lr * lr_decay (0: the run's `iterations`)
    seed: int = 0  # seeds the initial weights, the ray batches and the sample jitter
    precrop_iters: int = 0  # first iterations draw rays from the image centre only
    precrop_frac: float = 0.5  # side of that centre crop, as a fraction of the image
    log_every: int = 50  # write a JSONL log line every N steps
    checkpoint_every: int = 500  # write a checkpoint every N steps (and always at the end)
    val_views: int = 2  # validation views whose PSNR is logged at the end (0: none)
    block_points: int | None = None  # sample points per forward+backward block (None: 2^29 / width^2, i.e. 8192 for 8x256 and 32768 for 2x128; 0: whole batch at once, as the original NeRF code)
    block_workers: int = 2  # threads running blocks side by side, each with half of torch's threads (1: one block at a time)
    model: NerfModelConfig = field(default_factory=NerfModelConfig)  # network sizes
    mlp: MLPConfig = field(default_factory=MLPConfig)  # how the MLP runs: precision, training backward
    render: RenderConfig = field(default_factory=RenderConfig)  # sampling and compositing
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)  # empty-space skipping (on for bounded scenes)
    random_background: bool = True  # RGBA scenes: composite each training ray on a random colour, so transparency is learnt (white fog on a white background would cost nothing, and the grid could not skip it)

    def validate(self) -> None:
        """Types, ranges and sizes of every field, nested configs included (bounds: docs/validation.md)."""
        check_fields(self)
        check_range("iterations", self.iterations, 0, MAX_ITERATIONS)
        check_range("batch_size", self.batch_size, 1, 2**20)
        check_range("lr", self.lr, 0.0, 1e6, low_open=True)
        check_range("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True)
        check_range("lr_decay_steps", self.lr_decay_steps, 0, 10**9)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("precrop_iters", self.precrop_iters, 0, MAX_ITERATIONS)
        check_range("precrop_frac", self.precrop_frac, 0.0, 1.0, low_open=True)
        check_range("log_every", self.log_every, 1, MAX_ITERATIONS)
        check_range("checkpoint_every", self.checkpoint_every, 1, MAX_ITERATIONS)
        check_range("val_views", self.val_views, 0, 10**4)
        if self.block_workers not in (1, 2):
            raise ConfigError(f"block_workers must be 1 or 2, got {self.block_workers}")
        if self.block_points is not None:
            check_range("block_points", self.block_points, 0, 2**27)
        for name in ("model", "mlp", "render", "occupancy"):
            with nested(name):
                getattr(self, name).validate()
        samples = self.render.n_coarse + self.render.n_fine
        if self.batch_size * samples > 2**27:
            raise ConfigError(f"batch_size x (n_coarse + n_fine) must be <= 2^27 sample points per step, got "
                              f"{self.batch_size} x {samples}")

    def points_per_block(self) -> int:
        """`block_points`, or when it is None the default for the network's width (`auto_block_points`)."""
        if self.block_points is not None:
            return self.block_points
        return auto_block_points(self.model.field_config().width)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; a checkpoint was saved first (`checkpoint` holds its path)."""

    def __init__(self, iteration: int, checkpoint: Path):
        super().__init__(f"interrupted at iteration {iteration}; checkpoint saved to {checkpoint}")
        self.iteration = iteration
        self.checkpoint = checkpoint


def uses_grid(cfg: TrainConfig, scene: Scene) -> bool:
    """Whether training builds an occupancy grid: enabled, and the scene has a bounding box (`Scene.aabb`).

    Blender (the synthetic scenes' [-1.5, 1.5]^3), instant-ngp (its `aabb_scale` cube) and the built-in
    scene have one; LLFF's forward-facing captures have none and keep sampling all of [near, far].
    """
    return cfg.occupancy.enabled and scene.aabb is not None


def training_scene(scene: Scene, cfg: TrainConfig) -> Scene:
    """`scene` as the ray batcher sees it: with random backgrounds for RGBA images when `cfg.random_background`."""
    from dataclasses import replace

    if cfg.random_background and scene.images.shape[-1] == 4 and not scene.random_background:
        return replace(scene, random_background=True)
    return scene


GRID_BUFFERS = ("features.lo", "features.hi")  # the feature grid's box: saved with the weights, not trained


def build_model(cfg: TrainConfig, scene: Scene | None = None) -> NerfModel:
    """The untrained model of `cfg` (seeded); a feature grid spans `scene`'s box (a checkpoint's box otherwise)."""
    torch.manual_seed(cfg.seed)
    model = NerfModel(cfg.model.field_config(), fine=cfg.model.fine and cfg.render.n_fine > 0, mlp=cfg.mlp)
    if model.features is not None and scene is not None:
        if scene.aabb is None:
            raise ConfigError(f"model.encoding 'grid' needs a bounded scene; {scene.source} has no bounding box "
                              f"(forward-facing / unbounded): use encoding 'frequency'")
        model.features.set_bounds(scene.aabb[0], scene.aabb[1])
    return model


def parameter_shapes(cfg: TrainConfig) -> dict[str, tuple[int, ...]]:
    """{parameter name: shape} of the model `build_model(cfg)` would build, without building it
    (a checkpoint is checked against these before any memory is allocated for the network)."""
    nets = ("coarse", "fine") if cfg.model.fine and cfg.render.n_fine > 0 else ("coarse",)
    shapes = {}
    field = cfg.model.field_config()
    if field.encoding == "grid":
        for name in GRID_BUFFERS:
            shapes[name] = (3,)
        for level, r in enumerate(level_resolutions(field.grid_levels, field.grid_resolution)):
            shapes[f"features.tables.{level}"] = (1, field.grid_features, r, r, r)
    for net in nets:
        for layer in field_topology(cfg.model.field_config()).layers:
            shapes[f"{net}.{layer.name}.weight"] = (layer.out_features, layer.in_features)
            shapes[f"{net}.{layer.name}.bias"] = (layer.out_features,)
    return shapes


def checkpoint_config(path: str | Path, ckpt: Checkpoint) -> TrainConfig:
    """The checkpoint's TrainConfig, type-checked and validated like one from the CLI or the API, and
    its tensors checked against the network that config describes; `CheckpointError` naming file and field."""
    try:
        cfg = from_dict(TrainConfig, upgrade_config(ckpt.config), f"{path}: config")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    with nested(f"{path}: config", CheckpointError):
        cfg.validate()
    check_state(path, ckpt, parameter_shapes(cfg), buffers=GRID_BUFFERS)
    _check_grid(path, ckpt, cfg)
    if cfg.model.encoding == "grid" and not bool((ckpt.model["features.hi"] > ckpt.model["features.lo"]).all()):
        raise CheckpointError(f"{path}: the feature grid's box is empty (model/features.hi must exceed "
                              f"model/features.lo on every axis)")
    return cfg


def _check_grid(path: str | Path, ckpt: Checkpoint, cfg: TrainConfig) -> None:
    """A stored occupancy grid fits the config (its resolution, before a grid of that size is built) and
    holds finite densities; `OccupancyGrid.load_state_dict` checks the rest of its shapes and dtypes."""
    if not ckpt.grid:
        return
    if not cfg.occupancy.enabled:
        raise CheckpointError(f"{path}: holds an occupancy grid, but its config has occupancy.enabled = false")
    res = ckpt.grid.get("resolution")
    if res is None or res.dtype != torch.int64 or res.dim() != 0 or int(res) != cfg.occupancy.resolution:
        raise CheckpointError(f"{path}: tensor 'grid/resolution' must be the config's occupancy.resolution "
                              f"({cfg.occupancy.resolution}) as a 0-d int64, got {res!r:.60}")
    density = ckpt.grid.get("density")
    if density is not None:
        check_tensors(path, {"grid/density": density}, "occupancy grid")


@contextlib.contextmanager
def _grid_errors(path: str | Path):
    """`OccupancyGrid.load_state_dict`'s complaints as a `CheckpointError` naming the file."""
    try:
        yield
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the occupancy grid is damaged ({e})") from None


def upgrade_config(data: dict) -> dict:
    """A saved TrainConfig dict in today's layout.

    Checkpoints written before `MLPConfig` existed kept the MLP's precision and
    backward in the render config (`render.mlp_precision`, `render.mlp_backward`
    = "fused"); they move to `mlp` here, so old checkpoints still load.
    """
    if not isinstance(data, dict) or not isinstance(data.get("render"), dict):
        return data
    render = dict(data["render"])
    moved = {"precision": render.pop("mlp_precision", None), "backward": render.pop("mlp_backward", None)}
    moved = {k: v for k, v in moved.items() if v is not None}
    if not moved:
        return data
    if moved.get("backward") == "fused":
        moved["backward"] = "handwritten"
    mlp = data.get("mlp") if isinstance(data.get("mlp"), dict) else {}
    return {**data, "render": render, "mlp": {**moved, **mlp}}


def camera_tensors(scene: Scene, device: torch.device | str = "cpu") -> dict[str, torch.Tensor | None]:
    """The scene's cameras as float32 tensors on `device` (what `RenderMath.generate_rays` takes)."""
    cams = scene.cameras
    tensors = {
        "c2w": torch.from_numpy(np.ascontiguousarray(cams.c2w, dtype=np.float32)),  # [N, 3, 4]
        "intrinsics": torch.from_numpy(np.stack([cams.fx, cams.fy, cams.cx, cams.cy], 1).astype(np.float32)),  # [N, 4]
        "distortion": None if cams.distortion is None else torch.from_numpy(cams.distortion.astype(np.float32)),
    }
    return {k: None if v is None else v.to(device) for k, v in tensors.items()}


def psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


class Trainer:
    """Runs (or resumes) one training run into `out_dir`.

    `masks` (param name -> bool tensor) keeps pruned weights at exactly zero:
    gradients are masked before and weights re-masked after every Adam step.
    `init_state` starts from given weights (lottery-ticket rewinding) instead of `seed`.
    `device` ("auto", "cpu", "cuda") is where the model and each step's tensors live.
    `teacher` adds a distillation term to the loss (`nerfprune.loss.Teacher`; pruning's `distill`).
    `init_grid` (an `OccupancyGrid.state_dict()`) starts the occupancy grid from it instead of empty.
    """

    def __init__(
        self, scene: Scene, cfg: TrainConfig, out_dir: str | Path, *,
        masks: dict[str, torch.Tensor] | None = None, init_state: dict[str, torch.Tensor] | None = None,
        progress: bool = False, extra: dict | None = None, snapshots: tuple[int, ...] = (), device: str = "auto",
        teacher: Teacher | None = None, init_grid: dict[str, torch.Tensor] | None = None,
    ):
        cfg.validate()
        self.scene, self.cfg, self.out_dir = scene, cfg, Path(out_dir)
        if not scene.split("train").size:  # before anything is written
            raise SceneError(f"{scene.source}: the train split is empty; nothing to train on")
        self.device = torch_device(device)
        self.masks = {k: v.bool().to(self.device) for k, v in (masks or {}).items()}
        self.progress, self.extra = progress, dict(extra or {})
        self.snapshots = set(snapshots)  # iterations whose weights are saved as snapshot-<it>.safetensors
        self.model = build_model(cfg, scene).to(self.device)
        self.teacher = None if teacher is None else Teacher(teacher.model.to(self.device).eval(), teacher.weight)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.names = {p: n for n, p in self.model.named_parameters()}
        params = dict(self.model.named_parameters())
        unknown = set(self.masks) - set(params)
        if unknown:
            raise ConfigError(f"masks name unknown parameters: {', '.join(sorted(unknown))}")
        for name, mask in self.masks.items():
            if mask.shape != params[name].shape:
                raise MaskError(f"mask {name!r} has shape {tuple(mask.shape)}, weight has {tuple(params[name].shape)}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-7)
        self.iteration = 0
        self.fingerprint = scene_fingerprint(scene)
        self.scene_record = record_scene(scene, self.fingerprint)  # stored in every checkpoint
        self.math = cfg.render.math()  # the rendering-math backend every step runs on
        self.train_scene = training_scene(scene, cfg)  # the scene the ray batches come from
        if uses_grid(cfg, scene):
            from nerfprune.occupancy import OccupancyGrid

            self.model.grid = OccupancyGrid(scene.aabb[0], scene.aabb[1], cfg.occupancy.resolution, seed=cfg.seed,
                                            device=self.device)
            if init_grid:  # a pruned model starts from its parent's grid and refreshes it from its own field
                with _grid_errors("the parent's occupancy grid"):
                    self.model.grid.load_state_dict(init_grid)
        elif cfg.occupancy.enabled:
            log.info("no occupancy grid: %s has no bounding box (forward-facing / unbounded); sampling all of [near, far]",
                     scene.source)
        self._apply_masks()

    def batcher(self) -> RayBatcher:
        """The training ray batches of this run (random backgrounds, precrop, seed as configured)."""
        cfg = self.cfg
        return RayBatcher(self.train_scene, split="train", batch_size=cfg.batch_size, seed=cfg.seed,
                          precrop_iters=cfg.precrop_iters, precrop_frac=cfg.precrop_frac)

    # -- bookkeeping -------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def _apply_masks(self) -> None:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if name in self.masks:
                    param.mul_(self.masks[name])

    def save(self) -> Path:
        save_checkpoint(self.checkpoint_path, Checkpoint(
            iteration=self.iteration, config=to_dict(self.cfg), model=self.model.state_dict(),
            optimizer=flatten_adam_state(self.optimizer, self.names), masks=self.masks,
            scene_fingerprint=self.fingerprint, extra=self.extra, scene=self.scene_record,
            grid={} if getattr(self.model, "grid", None) is None else self.model.grid.state_dict(),
        ))
        return self.checkpoint_path

    def try_resume(self) -> bool:
        """Load `out_dir`'s checkpoint if there is one; refuse one from other data or settings."""
        if not self.checkpoint_path.exists():
            return False
        ckpt = load_checkpoint(self.checkpoint_path)
        if ckpt.scene_fingerprint != self.fingerprint:
            raise CheckpointError(f"{self.checkpoint_path}: was trained on different scene images; use another --out")
        saved = checkpoint_config(self.checkpoint_path, ckpt)
        mine = to_dict(self.cfg)
        theirs = to_dict(saved)
        mine.pop("iterations"), theirs.pop("iterations")
        for key in RENDER_ONLY:  # how whole images are rendered changes no trained number: the run's own value holds
            mine["render"].pop(key, None), theirs.get("render", {}).pop(key, None)
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise CheckpointError(f"{self.checkpoint_path}: was written with different settings ({', '.join(diff)}); use another --out")
        self.model.load_state_dict(ckpt.model)
        restore_adam_state(self.optimizer, self.names, ckpt.optimizer)
        if getattr(self.model, "grid", None) is not None:
            if not ckpt.grid:
                raise CheckpointError(f"{self.checkpoint_path}: has no occupancy grid, but the config asks for one")
            with _grid_errors(self.checkpoint_path):
                self.model.grid.load_state_dict(ckpt.grid)
        self.masks = {k: v.to(self.device) for k, v in ckpt.masks.items()}
        self.iteration = ckpt.iteration
        log.info("resuming %s at iteration %d", self.checkpoint_path, self.iteration)
        return True

    def _lr(self, step: int) -> float:
        steps = self.cfg.lr_decay_steps or max(self.cfg.iterations, 1)
        return self.cfg.lr * self.cfg.lr_decay ** (step / steps)

    # -- the loop ----------------------------------------------------------
    def step(self, batcher: RayBatcher, cams: dict) -> tuple[float, float]:
        """One optimisation step at `self.iteration`; returns (loss, PSNR of the fine pass)."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.iteration)  # on the CPU on every device (see above)
        batch = batcher.batch(self.iteration).to_torch(self.device)
        grid = getattr(self.model, "grid", None)
        if grid is not None and self.iteration % cfg.occupancy.update_every == 0:
            grid.update(lambda p: self.model.density(p, self.math.positional_encoding), self.iteration,
                        warmup_steps=cfg.occupancy.warmup_steps, threshold=cfg.occupancy.threshold,
                        decay=cfg.occupancy.decay, dilate=cfg.occupancy.dilate)
        origins, dirs = self.math.generate_rays(cams["c2w"], cams["intrinsics"], batch.view, batch.row, batch.col, cams["distortion"])
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.iteration)
        self.optimizer.zero_grad(set_to_none=True)
        result = loss_and_backward(self.model, origins, dirs, batch.rgb, batch.background, self.scene.cameras.near,
                                   self.scene.cameras.far, cfg.render, cfg.points_per_block(), training=True, generator=gen,
                                   workers=cfg.block_workers, math=self.math, teacher=self.teacher)
        self._check_finite(result.loss)  # before the step: a NaN never reaches the weights or a checkpoint
        if self.masks:
            for name, param in self.model.named_parameters():
                if name in self.masks and param.grad is not None:
                    param.grad.mul_(self.masks[name])
        self.optimizer.step()
        self._apply_masks()
        self.iteration += 1
        return result.loss, psnr_from_mse(result.mse_fine)

    def _check_finite(self, loss: float) -> None:
        """`TrainingDiverged` if the loss or a gradient is NaN or infinite (checked before Adam's step)."""
        problem = None if math.isfinite(loss) else f"the loss is {loss}"
        grads = {name: p.grad for name, p in self.model.named_parameters() if p.grad is not None}
        # one reduction and one host sync for all gradients; the offending one is looked for only on failure
        if problem is None and grads and not bool(torch.stack([g.isfinite().all() for g in grads.values()]).all()):
            bad = next(name for name, g in grads.items() if not bool(g.isfinite().all()))
            problem = f"the gradient of {bad} is NaN or infinite"
        if problem is None:
            return
        it = self.iteration + 1
        kept = (f"the last checkpoint {self.checkpoint_path} holds the last good weights"
                if self.checkpoint_path.exists() else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged at iteration {it}: {problem}; {kept}; "
                               f"try a lower --lr (now {self.cfg.lr:g})", it)

    def run(self, resume: bool = True, until: int | None = None) -> NerfModel:
        """Train up to `cfg.iterations` (or only up to `until`, keeping the schedule of the full run).

        Everything that can be refused (the scene's train split, a checkpoint to resume) is
        checked before the output folder and its config.json are written.
        """
        cfg = self.cfg
        stop = cfg.iterations if until is None else min(until, cfg.iterations)
        batcher = self.batcher()
        cams = camera_tensors(self.scene, self.device)
        if resume:
            self.try_resume()
        make_dir(self.out_dir)
        save_config(cfg, self.out_dir)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=stop, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True)
        log_path = self.out_dir / "log.jsonl"
        t_last, it_last = time.perf_counter(), self.iteration
        try:
            with open(log_path, "a") as log_file:
                while self.iteration < stop:
                    loss, psnr = self.step(batcher, cams)
                    if self.iteration in self.snapshots:
                        self._save_snapshot()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{psnr:.2f}")
                    if self.iteration % cfg.log_every == 0 or self.iteration == stop:
                        now = time.perf_counter()
                        rate = (self.iteration - it_last) / max(now - t_last, 1e-9)
                        t_last, it_last = now, self.iteration
                        log_file.write(json.dumps({"iteration": self.iteration, "loss": loss, "psnr": psnr,
                                                   "lr": self._lr(self.iteration - 1), "it_per_s": rate}) + "\n")
                        log_file.flush()
                    if self.iteration % cfg.checkpoint_every == 0:
                        self.save()
        except KeyboardInterrupt:
            path = self.save()
            raise TrainingInterrupted(self.iteration, path) from None
        finally:
            if bar is not None:
                bar.close()
        self.save()
        return self.model

    def _save_snapshot(self) -> None:
        from safetensors.torch import save

        atomic_write_bytes(self.out_dir / f"snapshot-{self.iteration}.safetensors",
                           save({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}))


def load_model(path: str | Path, device: str = "auto") -> tuple[NerfModel, TrainConfig, Checkpoint]:
    """Load a trained model from a checkpoint file or a training output folder, onto `device` (see `Trainer`).

    The stored config is validated and the tensors checked against it before the network is built.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(path, ckpt)
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the saved network config ({str(e).splitlines()[0]})") from None
    target = torch_device(device)
    model.to(target)
    if ckpt.grid:
        from nerfprune.occupancy import OccupancyGrid

        with _grid_errors(path):
            model.grid = OccupancyGrid.from_state_dict(ckpt.grid, device=target)
    model.eval()
    return model, cfg, ckpt
