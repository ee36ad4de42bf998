"""`nerfprune` command line: a thin layer over `nerfprune.api`.

Every subcommand prints where its outputs went. Bad flags, missing paths and
bad input data give one line on stderr and exit code 2 — no stack trace
(set NERFPRUNE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# `nerfprune prune` flags that map one to one onto PruneConfig fields
PRUNE_FLAGS = ("sparsity", "rounds", "method", "rewind", "rewind_iteration", "retrain_iterations", "retrain_lr", "seed",
               "schedule", "importance", "importance_batches", "min_neurons", "distill", "distill_target")
PRUNE_SWITCHES = ("prune_heads", "prune_inputs", "revive_density")  # on/off flags


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line (and exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _choices_help(table: dict) -> str:
    """ "a: what a is; b: ..." from a registry {name: help string or object with .help}."""
    return "; ".join(f"{name}: {getattr(entry, 'help', entry)}" for name, entry in table.items())


def _flag(p: argparse.ArgumentParser, cls: type, name: str, *, default=..., choices: dict | None = None, **kwargs) -> None:
    """--<name> for field `name` of config dataclass `cls`: help from the field's comment, type and default from
    the field (default=None: leave the config's value alone unless given), choices from a registry."""
    import dataclasses

    from nerfprune.config import field_help

    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = spec.default if default is ... else default
    help_text = field_help(cls).get(name, "")
    if choices is not None:
        kwargs["choices"] = list(choices)
        help_text = f"{help_text} ({_choices_help(choices)})" if help_text else _choices_help(choices)
    elif "type" not in kwargs and "action" not in kwargs:
        base = spec.default if spec.default is not dataclasses.MISSING and spec.default is not None else None
        kwargs["type"] = type(base) if isinstance(base, (int, float, str)) and not isinstance(base, bool) else int
    if "action" not in kwargs:
        kwargs["default"] = value
    if value is not None and value is not dataclasses.MISSING and "action" not in kwargs:
        help_text += f" [default: {value}]"
    p.add_argument(f"--{name.replace('_', '-')}", help=help_text.replace("%", "%%"), **kwargs)


def _common(p: argparse.ArgumentParser) -> None:
    from taichi_kernels.runtime import ARCHES

    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch and Taichi (0: all cores)")
    p.add_argument("--ti-arch", default=None, choices=list(ARCHES),
                   help="Taichi backend; the model and its tensors go to the matching torch device "
                        "(default: $NERFPRUNE_TI_ARCH or auto = CUDA if torch sees a GPU, else CPU)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def _scene_args(p: argparse.ArgumentParser, recorded: bool = False) -> None:
    """--scene, --factor, --background; with `recorded` (eval, render, prune) the scene defaults to the
    model's own and --strict refuses another one."""
    from nerfprune.scene.formats import format_help
    from nerfprune.scene.loading import BACKGROUNDS

    formats = "; ".join(f"{name}: {text}" for name, text in format_help())
    default = "the scene the model was trained on" if recorded else "'builtin', the generated scene"
    p.add_argument("--scene", default=None,
                   help=f"scene folder or file, or 'builtin' [default: {default}]. Formats: {formats}".replace("%", "%%"))
    p.add_argument("--factor", type=int, default=None, help="downscale the scene's images by this integer factor [default: 1]")
    p.add_argument("--background", default=None, choices=list(BACKGROUNDS),
                   help="colour composited behind transparent pixels [default: white]")
    if recorded:
        p.add_argument("--strict", action="store_true",
                       help="refuse a --scene whose images are not the ones the model was trained on (default: warn)")


def _variant_arg(p: argparse.ArgumentParser) -> None:
    """--variant of render and eval: how a (pruned) checkpoint's network runs."""
    from nerfprune.pruning.variants import AUTO_VARIANT, RUN_VARIANTS

    p.add_argument("--variant", default=AUTO_VARIANT, choices=list(RUN_VARIANTS),
                   help=f"how the checkpoint's network runs ({_choices_help(RUN_VARIANTS)}) [default: {AUTO_VARIANT}]")


def _render_args(p: argparse.ArgumentParser) -> None:
    from nerfprune.field.config import BACKWARDS, PRECISIONS, MLPConfig
    from nerfprune.renderer import RenderConfig
    from taichi_kernels.backend import BACKENDS

    _flag(p, RenderConfig, "n_coarse", default=None)
    _flag(p, RenderConfig, "n_fine", default=None)
    _flag(p, RenderConfig, "backend", default=None, choices=BACKENDS)
    _flag(p, RenderConfig, "round_samples", default=None)
    p.add_argument("--no-skip-empty", dest="skip_empty", action="store_const", const=False, default=None,
                   help="ignore the model's occupancy grid and sample the whole of [near, far]")
    p.add_argument("--mlp-precision", dest="precision", default=None, choices=list(PRECISIONS),
                   help=f"{_choices_help(PRECISIONS)}")
    p.add_argument("--mlp-backward", dest="backward", default=None, choices=list(BACKWARDS),
                   help=f"training gradient of the MLP ({_choices_help(BACKWARDS)})")


def _study_args(p: argparse.ArgumentParser) -> None:
    """The study's flags: its grid (StudyConfig; unset flags keep --config's or the default value) and how
    its cells run (RunConfig)."""
    from nerfprune.experiments.engines import CLUSTERS, ENGINES, RunConfig
    from nerfprune.experiments.grid import StudyConfig
    from nerfprune.field.config import PRESET_HELP

    _scene_args(p)
    p.add_argument("--config", default=None, help="a study_config.json to start from (e.g. a finished study's); "
                                                   "the flags below override its fields")
    _flag(p, StudyConfig, "scale", default=None, type=float)
    p.add_argument("--iterations", type=int, nargs="+", default=None, help="pre-training lengths N at scale 1 [default: 5000 10000 20000]")
    p.add_argument("--preset", default=None, choices=list(PRESET_HELP), help=f"network preset ({_choices_help(PRESET_HELP)}) [default: small]")
    p.add_argument("--occupancy", action=argparse.BooleanOptionalAction, default=None,
                   help="train every model with an occupancy grid, or without (--no-occupancy) [default: with, on scenes "
                        "with a bounding box; docs/empty-space.md]")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds of the seeded grid points [default: 0 1 2]")
    _flag(p, StudyConfig, "seeded_points", default=None, type=int)
    p.add_argument("--recipe", action="append", default=None, metavar="NAME=METHOD[,FIELD=VALUE...]",
                   help="a pruning recipe: a method and PruneConfig overrides, e.g. structured=structured,rounds=3,prune_heads=true; "
                        "repeatable; the given recipes replace the default ones ('global' is always kept) [default: global, structured]")
    p.add_argument("--sweep", type=float, nargs="*", default=None, help="other sparsities of global pruning at the smallest N [default: 0.8 0.9 0.98]")
    p.add_argument("--no-equal-budget", action="store_true", help="skip the dense equal-budget controls")
    p.add_argument("--views", type=int, default=None, help="train and val views evaluated per cell (sets both)")
    _flag(p, StudyConfig, "val_views", default=None, type=int)
    p.add_argument("--repeats", type=int, default=None, help="timed renders per inference path and per profile [default: 7 and 5]")
    _flag(p, RunConfig, "workers")
    _flag(p, RunConfig, "engine", choices=ENGINES)
    p.add_argument("--cell-threads", type=int, default=0, help=field_help_of(RunConfig, "threads"))
    _flag(p, RunConfig, "cluster", choices=CLUSTERS)
    _flag(p, RunConfig, "partition")
    _flag(p, RunConfig, "timeout_min")
    p.add_argument("--report-only", action="store_true", help="run no cell: assemble the report from the finished ones")
    p.add_argument("--out", default="outputs/study", help="study folder (an interrupted or finished study resumes)")


def field_help_of(cls: type, name: str) -> str:
    from nerfprune.config import field_help

    return field_help(cls).get(name, "").replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    from nerfprune.field.config import DENSITY_ACTIVATIONS, ENCODINGS, PRESET_HELP, NerfModelConfig
    from nerfprune.pruning.importance import IMPORTANCE
    from nerfprune.pruning.lottery import DISTILL_TARGETS, REWINDS, SCHEDULES, PruneConfig
    from nerfprune.pruning.methods import METHODS
    from nerfprune.training import TrainConfig

    parser = _OneLineParser(prog="nerfprune", description="Train NeRFs, prune them the Lottery-Ticket way, render them faster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    sub.required = True

    p = sub.add_parser("train", help="train a NeRF on a scene", description="Train a NeRF (coarse + fine) on a scene's train split.")
    _scene_args(p)
    p.add_argument("--out", default="outputs/train", help="output folder (checkpoint, log.jsonl, config.json); an existing checkpoint there is resumed")
    for name in ("iterations", "batch_size", "lr", "seed", "checkpoint_every", "block_points"):
        _flag(p, TrainConfig, name)
    _flag(p, TrainConfig, "block_workers", type=int, choices={1: "one block at a time", 2: "two blocks side by side"})
    p.add_argument("--preset", default="small", choices=list(PRESET_HELP), help=f"network preset ({_choices_help(PRESET_HELP)})")
    _flag(p, NerfModelConfig, "density_activation", choices=DENSITY_ACTIVATIONS)
    _flag(p, NerfModelConfig, "encoding", choices=ENCODINGS)
    for name in ("grid_levels", "grid_resolution", "grid_features", "grid_scale"):
        _flag(p, NerfModelConfig, name)
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if --out has a checkpoint")
    p.add_argument("--no-occupancy", dest="occupancy", action="store_false",
                   help="train without an occupancy grid (it is on for scenes with a bounding box: Blender, instant-ngp, "
                        "built-in; docs/empty-space.md)")
    p.add_argument("--no-random-background", dest="random_background", action="store_false",
                   help="train RGBA scenes on the scene's background colour, as the 2022 study, instead of a random "
                        "colour per ray (which teaches transparency; the occupancy grid relies on it)")
    _render_args(p)
    _common(p)

    p = sub.add_parser("render", help="render views of a trained model", description="Render a split of the scene or a generated camera path.")
    p.add_argument("--model", required=True, help="training output folder or checkpoint file")
    _scene_args(p, recorded=True)
    p.add_argument("--split", default=None, help="scene split to render (not with --path) [default: test]")
    p.add_argument("--path", choices=["orbit", "spiral"], default=None, help="render a generated camera path instead of a split")
    p.add_argument("--frames", type=int, default=None, help="frames of the generated path (only with --path) [default: 40]")
    p.add_argument("--video", default=None, help="also write the frames as this video file name (.mp4 or .gif)")
    p.add_argument("--out", default="outputs/render", help="output folder")
    _variant_arg(p)
    _render_args(p)
    _common(p)

    p = sub.add_parser("eval", help="evaluate a trained model (PSNR, SSIM, L2, render time)",
                       description="PSNR, SSIM and L2 per view (mean and median) and render time (median of repeats).")
    p.add_argument("--model", required=True, help="training output folder or checkpoint file")
    _scene_args(p, recorded=True)
    p.add_argument("--split", default="test", help="split to evaluate (test falls back to val when absent)")
    p.add_argument("--max-views", type=int, default=0, help="evaluate at most N views (0: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed renders after one warm-up")
    p.add_argument("--out", default="outputs/eval", help="output folder (metrics.json, comparison images)")
    _variant_arg(p)
    _render_args(p)
    _common(p)

    p = sub.add_parser("prune", help="lottery-ticket pruning of a trained model", description="Lottery-ticket pruning rounds with re-training.")
    p.add_argument("--model", required=True, help="training output folder or checkpoint file")
    _scene_args(p, recorded=True)
    choices = {"method": METHODS, "rewind": REWINDS, "schedule": SCHEDULES, "importance": IMPORTANCE,
               "distill_target": DISTILL_TARGETS}
    for name in PRUNE_FLAGS:
        _flag(p, PruneConfig, name, choices=choices.get(name))
    _flag(p, PruneConfig, "prune_heads", action="store_true")
    _flag(p, PruneConfig, "prune_inputs", action="store_true")
    p.add_argument("--no-revive-density", dest="revive_density", action="store_false",
                   help="do not re-open a ReLU density head that pruning closed (PruneConfig.revive_density; docs/pruning.md)")
    p.add_argument("--out", default="outputs/prune", help="output folder (round-<n>/ per round; an interrupted run resumes)")
    _common(p)

    p = sub.add_parser("study", help="the 2022 'Pruning NeRFs' table at its schedule, with controls (docs/study.md)",
                       description="Dense vs pruned grid with equal-budget controls and seeds, as a DAG of resumable cells; "
                                   "report.md + report.html and plots.")
    _study_args(p)
    _common(p)

    p = sub.add_parser("demo", help="the main job on the built-in scene (train, render, evaluate)",
                       description="Generate the built-in scene, train the small network briefly, render test views and an orbit, evaluate.")
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--iterations", type=int, default=None, help="override the demo's training iterations")
    _common(p)
    return parser


def _setup(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads < 0:
        raise _usage(args, "--threads must be >= 0")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["TI_CPU_MAX_NUM_THREADS"] = str(args.threads)
    if args.ti_arch:
        from taichi_kernels.runtime import set_arch

        set_arch(args.ti_arch)


class _UsageError(Exception):
    pass


def _usage(args: argparse.Namespace, message: str) -> _UsageError:
    return _UsageError(f"nerfprune {args.command}: error: {message}")


def _warn(args: argparse.Namespace, message: str) -> None:
    """One line on stderr: an option had no effect, or the scene is not the model's."""
    print(f"nerfprune {args.command}: warning: {message}", file=sys.stderr)


def _check_out(args: argparse.Namespace) -> None:
    """--out must be writable: checked before any work, so a typo does not cost a training run."""
    from nerfprune.config import check_out_dir

    check_out_dir(args.out, "--out")


def _scene_options(args: argparse.Namespace) -> dict:
    from nerfprune.scene.loading import BACKGROUNDS

    if args.factor is not None and not 1 <= args.factor <= 1024:
        raise _usage(args, f"--factor must be an integer in [1, 1024], got {args.factor}")
    options = {}
    if args.factor is not None:
        options["factor"] = args.factor
    if args.background is not None:
        assert args.background in BACKGROUNDS  # argparse choices
        options["background"] = args.background
    return options


def _scene(args: argparse.Namespace):
    """The --scene (default: the built-in one) with --factor and --background; options that the built-in
    scene ignores say so."""
    from nerfprune.api import load_scene

    options = _scene_options(args)
    path = args.scene or "builtin"
    if path == "builtin":
        for flag in options:
            _warn(args, f"--{flag} is ignored with the built-in scene")
        return load_scene("builtin")
    if not Path(path).exists():
        raise _usage(args, f"--scene {path}: no such file or folder")
    return load_scene(path, **options)


def _given_scene(args: argparse.Namespace):
    """The --scene given to eval / render / prune, or None: the API then loads the model's own scene
    (`api.scene_for`) and compares a given one with it."""
    if args.scene is None:
        for flag in _scene_options(args):
            _warn(args, f"--{flag} is ignored without --scene (the model's scene is loaded as it was trained)")
        return None
    return _scene(args)


def _model_path(args: argparse.Namespace) -> Path:
    path = Path(args.model)
    if not path.exists():
        raise _usage(args, f"--model {args.model}: no such file or folder")
    return path


def _apply_render_flags(cfg, args: argparse.Namespace):
    """Set the render and MLP flags that were given on `cfg` (a TrainConfig); the others keep its values."""
    for target, names in ((cfg.render, ("n_coarse", "n_fine", "backend", "round_samples", "skip_empty")), (cfg.mlp, ("precision", "backward"))):
        for name in names:
            value = getattr(args, name, None)
            if value is not None:
                setattr(target, name, value)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    import nerfprune.api as api
    from nerfprune.field.config import NerfModelConfig
    from nerfprune.training import TrainConfig

    cfg = TrainConfig(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      checkpoint_every=args.checkpoint_every, block_points=args.block_points,
                      block_workers=args.block_workers,
                      model=NerfModelConfig(preset=args.preset, density_activation=args.density_activation,
                                            encoding=args.encoding, grid_levels=args.grid_levels,
                                            grid_resolution=args.grid_resolution, grid_features=args.grid_features,
                                            grid_scale=args.grid_scale))
    _apply_render_flags(cfg, args)
    cfg.occupancy.enabled = args.occupancy
    cfg.random_background = args.random_background
    cfg.validate()
    _check_out(args)
    scene = _scene(args)
    api.train(scene, cfg, out_dir=args.out, resume=not args.no_resume, progress=sys.stderr.isatty())
    print(f"trained {cfg.iterations} iterations on {scene.source}: checkpoint {Path(args.out) / 'checkpoint.safetensors'}, "
          f"log {Path(args.out) / 'log.jsonl'}")
    return 0


def _loaded_model(args: argparse.Namespace):
    from nerfprune.pruning.variants import run_variant
    from nerfprune.training import load_model

    model, cfg, ckpt = load_model(_model_path(args))
    try:
        model, variant = run_variant(model, ckpt.masks, args.variant, source=args.model)
    except ValueError as e:
        raise _usage(args, f"--variant: {e}") from None
    model.variant = variant
    model.train_config = cfg
    _apply_render_flags(cfg, args)
    cfg.render.validate()
    cfg.mlp.validate()
    model.mlp = cfg.mlp
    model.checkpoint_path = args.model
    model.scene_record, model.trained_fingerprint = ckpt.scene, ckpt.scene_fingerprint
    return model, cfg


def cmd_render(args: argparse.Namespace) -> int:
    import nerfprune.api as api
    from nerfprune.scene.paths import orbit_path, spiral_path

    if args.path and args.split is not None:
        _warn(args, "--split is ignored with --path (the generated path is rendered)")
    if not args.path and args.frames is not None:
        _warn(args, "--frames is ignored without --path (every view of the split is rendered)")
    frames = 40 if args.frames is None else args.frames
    if args.path and not 1 <= frames <= 10_000:
        raise _usage(args, f"--frames must be in [1, 10000], got {frames}")
    api.check_video(args.video, args.out, "--video")
    _check_out(args)
    model, cfg = _loaded_model(args)
    scene = api.scene_for(model, _given_scene(args), strict=args.strict, caller="render")
    if args.path:
        cams = (orbit_path if args.path == "orbit" else spiral_path)(scene.cameras, frames)
        prefix = args.path
    else:
        prefix = args.split or "test"
        views = scene.split(prefix)
        if not len(views):
            raise _usage(args, f"--split {prefix}: the split of {scene.source} has no views")
        cams = scene.cameras.subset(views)
    api.render(model, cams, cfg.render, out_dir=args.out, video=args.video, background=scene.background, prefix=prefix)
    print(f"rendered {len(cams)} views into {args.out} ({model.variant} network)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import nerfprune.api as api
    from nerfprune.evaluation import EvalConfig

    cfg = EvalConfig(split=args.split, max_views=args.max_views, timing_repeats=args.repeats)
    cfg.validate()
    _check_out(args)
    model, train_cfg = _loaded_model(args)
    result = api.evaluate(model, _given_scene(args), cfg, render_config=train_cfg.render, out_dir=args.out,
                          strict=args.strict)
    rt = result.get("render_time", {})
    print(f"{result['split']}: PSNR {result['psnr']['mean']:.2f} dB (median {result['psnr']['median']:.2f}), "
          f"SSIM {result['ssim']['mean']:.4f}, L2 {result['l2']['mean']:.5f}; "
          f"render {rt.get('median_s', float('nan')):.3f} s/view (median of {rt.get('repeats', 0)}, {model.variant} network); "
          f"metrics in {Path(args.out) / 'metrics.json'}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import nerfprune.api as api
    from nerfprune.pruning.lottery import PruneConfig

    cfg = PruneConfig(**{name: getattr(args, name) for name in (*PRUNE_FLAGS, *PRUNE_SWITCHES)})
    cfg.validate()
    _check_out(args)
    summary = api.prune(_model_path(args), _given_scene(args), cfg, out_dir=args.out, progress=sys.stderr.isatty(),
                        strict=args.strict)
    for r in summary["rounds"]:
        psnr = f", val PSNR {r['val_psnr']:.2f} dB" if "val_psnr" in r else ""
        print(f"round {r['round']}: sparsity {r['sparsity']:.3f} ({r['live_weights']} live weights){psnr}")
    print(f"pruned model: {summary['final']} (use it with 'nerfprune eval --model' / 'render --model')")
    return 0


def _parse_recipe(args: argparse.Namespace, text: str):
    """NAME=METHOD[,FIELD=VALUE...] -> PruneRecipe (values read as JSON: 3, 0.9, true; else as strings)."""
    import json

    from nerfprune.experiments.grid import PruneRecipe

    head, *fields = text.split(",")
    name, sep, method = head.partition("=")
    if not sep or not name or not method:
        raise _usage(args, f"--recipe {text!r}: expected NAME=METHOD[,FIELD=VALUE...]")
    overrides = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _usage(args, f"--recipe {text!r}: {item!r} is not FIELD=VALUE")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return PruneRecipe(name, method, overrides)


def _study_config(args: argparse.Namespace):
    """The StudyConfig of --config (or the default) with the flags given applied."""
    import json
    from dataclasses import replace

    from nerfprune.config import from_dict
    from nerfprune.experiments.grid import PruneRecipe, StudyConfig

    cfg = StudyConfig()
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as e:
            raise _usage(args, f"--config {args.config}: cannot read it ({e})")
        cfg = from_dict(StudyConfig, data, args.config)
    if args.scale is not None and not args.scale > 0:
        raise _usage(args, f"--scale must be > 0, got {args.scale}")
    for flag, low in (("factor", 1), ("views", 1), ("repeats", 1), ("val_views", 0), ("seeded_points", 0)):
        value = getattr(args, flag)
        if value is not None and value < low:
            raise _usage(args, f"--{flag.replace('_', '-')} must be >= {low}, got {value}")
    changes = {k: v for k, v in {"scene": args.scene, "factor": args.factor, "scale": args.scale, "val_views": args.val_views,
                                  "seeded_points": args.seeded_points}.items() if v is not None}
    if args.iterations is not None:
        changes["iterations"] = tuple(args.iterations)
    if args.seeds is not None:
        changes["seeds"] = tuple(args.seeds)
    if args.sweep is not None:
        changes["sweep"] = tuple(args.sweep)
    if args.views is not None:
        changes.update(train_views=args.views, val_views=args.views if args.val_views is None else args.val_views)
    if args.repeats is not None:
        changes.update(timing_repeats=args.repeats, profile_repeats=args.repeats)
    if args.no_equal_budget:
        changes["equal_budget"] = False
    if args.recipe is not None:
        given = [_parse_recipe(args, r) for r in args.recipe]
        changes["recipes"] = tuple(given if any(r.name == "global" for r in given) else [PruneRecipe("global", "global"), *given])
    train = cfg.train
    if args.preset is not None:
        train = replace(train, model=replace(train.model, preset=args.preset))
    if args.occupancy is not None:
        train = replace(train, occupancy=replace(train.occupancy, enabled=args.occupancy))
    return replace(cfg, train=train, **changes)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (`kill`, a scheduler stopping the job) takes Ctrl-C's path: the study stops its worker processes,
    each training cell saves its checkpoint, the report is written. The default would end the driver alone and
    leave its workers training into folders that the next run trains into too."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_study(args: argparse.Namespace) -> int:
    from nerfprune.experiments.engines import RunConfig
    from nerfprune.experiments.study import run_study

    cfg = _study_config(args)
    if cfg.scene != "builtin" and not Path(cfg.scene).exists():
        raise _usage(args, f"--scene {cfg.scene}: no such file or folder")
    if args.background is not None:
        _warn(args, "--background is ignored by the study (it uses each scene's white background)")
    _check_out(args)
    run = RunConfig(workers=args.workers, engine=args.engine, threads=args.cell_threads, cluster=args.cluster,
                    partition=args.partition, timeout_min=args.timeout_min)
    try:
        with sigterm_as_interrupt():
            results = run_study(cfg, args.out, run, report_only=args.report_only)
    except KeyboardInterrupt:
        print(f"nerfprune study: interrupted; the report in {args.out} shows the cells finished so far; "
              f"run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    status = list(results["status"].values())
    ran = len(results["ran_this_time"])
    print(f"study on {results['scene']['source']} (pre-training {results['grid']}): {ran} cells run, "
          f"{status.count('done') - ran} resumed, {len(status) - status.count('done')} pending; "
          f"report {results['report']} (and report.html), numbers {Path(args.out) / 'results.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nerfprune.experiments.demo import DemoConfig, run_demo

    cfg = DemoConfig(out_dir=args.out)
    _check_out(args)
    if args.iterations is not None:
        if args.iterations < 1:
            raise _usage(args, "--iterations must be >= 1")
        cfg.train.iterations = args.iterations
    summary = run_demo(cfg, progress=sys.stderr.isatty())
    print(f"dense vs pruned ({cfg.sparsity:.0%} of the weights removed), one test view rendered {cfg.timing_repeats}x per path:")
    print(Path(summary["pruning_table"]).read_text().rstrip())
    print("demo finished; outputs:")
    for key, value in summary.items():
        print(f"  {key:22s} {value}")
    return 0


COMMANDS = {"train": cmd_train, "render": cmd_render, "eval": cmd_eval, "prune": cmd_prune, "study": cmd_study, "demo": cmd_demo}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error prints one line and exits with code 2
    import warnings

    from nerfprune.errors import NerfpruneError
    from nerfprune.training import TrainingInterrupted
    from taichi_kernels.runtime import BackendError

    debug = bool(os.environ.get("NERFPRUNE_DEBUG"))
    shown = warnings.showwarning
    # Library warnings (e.g. a scene that is not the model's) become one line each.
    warnings.showwarning = lambda message, *rest, **kw: _warn(args, _one_line(message))
    try:
        _setup(args)
        return COMMANDS[args.command](args)
    except _UsageError as e:
        print(_one_line(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NerfpruneError, BackendError, OSError) as e:  # OSError: a file the checks above did not foresee, named by the OS
        if debug:
            raise
        print(f"nerfprune {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingInterrupted as e:
        print(f"nerfprune {args.command}: {e}; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
