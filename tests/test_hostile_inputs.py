"""A hostile-input corpus: damaged checkpoints, configs of every wrong kind, bad API calls and CLI flags.

Every case is generated here, from one tiny model trained once for the module (preset tiny,
2 iterations on the 24x24 built-in scene); nothing large is committed. Each case asserts the
error class AND that the message names the file, the field or the argument. Scenes on disk
(formats, cameras at load, paths, truncated images) have their own corpus beside the scene code.

Categories (ids start with the category): ckpt-bytes, ckpt-tensor, ckpt-meta, ckpt-config,
config-json, config-range, round-json, snapshot, api, cli; plus `accepted-*` cases: inputs
that are deliberately accepted (docs/validation.md says why), asserted to load.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import typing

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

import nerfprune
from nerfprune.checkpoint import load_checkpoint
from nerfprune.cli import main
from nerfprune.config import from_dict
from nerfprune.errors import CheckpointError, ConfigError, NerfpruneError, SceneError
from nerfprune.evaluation import EvalConfig
from nerfprune.field import MLPConfig, NerfModelConfig
from nerfprune.pruning.lottery import PruneConfig, run_pruning
from nerfprune.renderer import RenderConfig
from nerfprune.scene.builtin import BuiltinSceneConfig, make_builtin_scene
from nerfprune.training import CHECKPOINT_NAME, TrainConfig, load_model

TINY = TrainConfig(iterations=2, batch_size=32, checkpoint_every=2, model=NerfModelConfig(preset="tiny"),
                   render=RenderConfig(n_coarse=8, n_fine=8))


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_scene):
    """The folder of a tiny trained model, with a rewind snapshot at iteration 1."""
    from nerfprune.training import Trainer

    out = tmp_path_factory.mktemp("base")
    Trainer(tiny_scene, dataclasses.replace(TINY), out, snapshots=(1,)).run()
    return out


@pytest.fixture(scope="module")
def parts(base):
    """(metadata, tensors, file bytes) of the base checkpoint."""
    path = base / CHECKPOINT_NAME
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    return meta, load_file(str(path)), path.read_bytes()


@pytest.fixture(scope="module")
def other_scene():
    return make_builtin_scene(BuiltinSceneConfig(width=24, height=24, n_views=12, n_test=2, seed=5))


def write(path, meta, tensors):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def raises(kind, fn, *needles):
    """`fn()` raises `kind` (a NerfpruneError) whose one-line message holds every needle."""
    with pytest.raises(kind) as info:
        fn()
    message = str(info.value)
    assert isinstance(info.value, NerfpruneError)
    assert "\n" not in message and all(str(n) in message for n in needles), message
    return message


# -- ckpt-bytes: truncated files and flipped header bytes --------------------------------------------

TRUNCATIONS = {"empty": 0, "1-byte": 1, "7-bytes": 7, "length-only": 8, "9-bytes": 9, "mid-header": 60,
               "half": 0.5, "last-byte-missing": -1}


@pytest.mark.parametrize("name", TRUNCATIONS, ids=[f"ckpt-bytes-truncated-{n}" for n in TRUNCATIONS])
def test_truncated_checkpoint(name, parts, tmp_path):
    data = parts[2]
    cut = TRUNCATIONS[name]
    cut = int(len(data) * cut) if isinstance(cut, float) else cut % len(data) if cut < 0 else cut
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(data[:cut])
    raises(CheckpointError, lambda: load_model(path), str(path))


# (what, bytes to find in the header, same-length replacement, message needle)
HEADER_FLIPS = [
    ("length-huge", None, None, "not a readable safetensors"),
    ("length-zero", None, None, "not a readable safetensors"),
    ("open-brace", b"{", b"[", "not a readable safetensors"),
    ("dtype-unknown", b'"F32"', b'"X32"', "not a readable safetensors"),
    ("dtype-int32", b'"F32"', b'"I32"', "has dtype int32, expected float32"),
    ("offsets", b'"data_offsets":[0,', b'"data_offsets":[4,', "not a readable safetensors"),
    ("format", b"nerfprune-checkpoint-1", b"nerfprune-checkpoint-9", "not a nerfprune checkpoint"),
    ("config-key", b"batch_size", b"batch_sizf", "config: unknown field(s) batch_sizf"),
    ("config-json", b'"config":"{', b'"config":"[', "metadata 'config' is not JSON"),
    ("iteration", b'"iteration":"2"', b'"iteration":"x"', "metadata 'iteration' must be a count"),
]


@pytest.mark.parametrize("what, find, replace, needle", HEADER_FLIPS, ids=[f"ckpt-bytes-flip-{c[0]}" for c in HEADER_FLIPS])
def test_flipped_header(what, find, replace, needle, parts, tmp_path):
    data = bytearray(parts[2])
    n = int.from_bytes(data[:8], "little")
    if what == "length-huge":
        data[7] ^= 0x40
    elif what == "length-zero":
        data[:8] = bytes(8)
    else:
        at = data.index(find, 8, 8 + n)
        data[at:at + len(find)] = replace
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(bytes(data))
    raises(CheckpointError, lambda: load_model(path), str(path), needle)


# -- ckpt-tensor: names, shapes, dtypes, finiteness ------------------------------------------------------

W, B = "model/coarse.pts.0.weight", "model/fine.rgb.bias"


def _poison(value):
    def change(t):
        t[W] = t[W].clone()
        t[W].view(-1)[3] = value
    return change


def _set(name, fn):
    def change(t):
        t[name] = fn(t[name])
    return change


TENSOR_CASES = {
    "nan-weight": (_poison(float("nan")), "coarse.pts.0.weight' holds NaN or infinite"),
    "inf-weight": (_poison(float("inf")), "coarse.pts.0.weight' holds NaN or infinite"),
    "neg-inf-weight": (_poison(float("-inf")), "coarse.pts.0.weight' holds NaN or infinite"),
    "int8-weight": (_set(W, lambda x: x.to(torch.int8)), "'coarse.pts.0.weight' has dtype int8, expected float32"),
    "bool-weight": (_set(W, lambda x: x > 0), "has dtype bool, expected float32"),
    "float16-weight": (_set(W, lambda x: x.half()), "has dtype float16, expected float32"),
    "bfloat16-weight": (_set(W, lambda x: x.bfloat16()), "has dtype bfloat16, expected float32"),
    "float64-weight": (_set(W, lambda x: x.double()), "has dtype float64, expected float32"),
    "int64-bias": (_set(B, lambda x: x.long()), "'fine.rgb.bias' has dtype int64"),
    "missing-weight": (lambda t: t.pop(W), "missing tensor(s) model/coarse.pts.0.weight"),
    "missing-bias": (lambda t: t.pop(B), "missing tensor(s) model/fine.rgb.bias"),
    "extra-model-tensor": (lambda t: t.update({"model/coarse.pts.9.weight": torch.zeros(2, 2)}),
                           "unexpected tensor(s) model/coarse.pts.9.weight"),
    "extra-foreign-tensor": (lambda t: t.update({"junk": torch.zeros(1)}), "unexpected tensor 'junk'"),
    "transposed-weight": (_set(W, lambda x: x.t()), "'model/coarse.pts.0.weight' has shape (39, 32)"),
    "scalar-bias": (_set(B, lambda x: x[0]), "'model/fine.rgb.bias' has shape ()"),
    "nan-exp-avg": (_set("optim/coarse.rgb.bias/exp_avg", lambda x: x * float("nan")),
                    "optimizer state tensor 'coarse.rgb.bias/exp_avg' holds NaN"),
    "inf-exp-avg-sq": (_set("optim/coarse.rgb.bias/exp_avg_sq", lambda x: x + float("inf")),
                       "'coarse.rgb.bias/exp_avg_sq' holds NaN"),
    "nan-step": (_set("optim/fine.rgb.weight/step", lambda x: x * float("nan")), "'fine.rgb.weight/step' holds NaN"),
    "int64-step": (_set("optim/fine.rgb.weight/step", lambda x: x.long()), "'fine.rgb.weight/step' has dtype int64"),
    "optim-unknown-param": (lambda t: t.update({"optim/coarse.zz.weight/exp_avg": torch.zeros(1)}),
                            "unexpected optimizer tensor 'optim/coarse.zz.weight/exp_avg'"),
    "optim-unknown-key": (lambda t: t.update({"optim/coarse.rgb.bias/momentum": torch.zeros(3)}),
                          "unexpected optimizer tensor 'optim/coarse.rgb.bias/momentum'"),
    "optim-wrong-shape": (_set("optim/coarse.rgb.bias/exp_avg", lambda x: torch.zeros(4)),
                          "'optim/coarse.rgb.bias/exp_avg' has shape (4,), expected (3,)"),
    "optim-missing-moment": (lambda t: t.pop("optim/coarse.rgb.bias/exp_avg_sq"),
                             "optimizer state of 'coarse.rgb.bias' lacks optim/coarse.rgb.bias/exp_avg_sq"),
    "optim-missing-param": (lambda t: [t.pop(k) for k in list(t) if k.startswith("optim/coarse.rgb.bias/")],
                            "no optimizer state for coarse.rgb.bias after 2 iterations"),
    "mask-wrong-shape": (lambda t: t.update({"mask/" + W[6:]: torch.ones(3, 3, dtype=torch.uint8)}),
                         "mask 'mask/coarse.pts.0.weight' has shape (3, 3), its weight (32, 39)"),
    "mask-float": (lambda t: t.update({"mask/" + W[6:]: torch.ones(32, 39)}),
                   "mask 'mask/coarse.pts.0.weight' has dtype float32, expected uint8 0/1"),
    "mask-value-2": (lambda t: t.update({"mask/" + W[6:]: torch.full((32, 39), 2, dtype=torch.uint8)}),
                     "mask 'mask/coarse.pts.0.weight' holds values other than 0 and 1"),
    "mask-unknown-param": (lambda t: t.update({"mask/coarse.zz.weight": torch.ones(2, dtype=torch.uint8)}),
                           "mask 'mask/coarse.zz.weight' names no parameter"),
}


@pytest.mark.parametrize("case", TENSOR_CASES, ids=[f"ckpt-tensor-{c}" for c in TENSOR_CASES])
def test_damaged_tensors(case, parts, tmp_path):
    change, needle = TENSOR_CASES[case]
    tensors = {k: v.clone() for k, v in parts[1].items()}
    change(tensors)
    path = write(tmp_path / CHECKPOINT_NAME, parts[0], tensors)
    raises(CheckpointError, lambda: load_model(path), str(path), needle)


# -- ckpt-meta: the string metadata ----------------------------------------------------------------

META_CASES = {
    "no-format": (lambda m: m.pop("format"), "not a nerfprune checkpoint (format None"),
    "other-format": (lambda m: m.update(format="torch"), "not a nerfprune checkpoint (format 'torch'"),
    "iteration-negative": (lambda m: m.update(iteration="-1"), "metadata 'iteration' must be a count >= 0, got '-1'"),
    "iteration-text": (lambda m: m.update(iteration="two"), "metadata 'iteration' must be a count"),
    "iteration-float": (lambda m: m.update(iteration="1e3"), "metadata 'iteration' must be a count"),
    "iteration-empty": (lambda m: m.update(iteration=""), "metadata 'iteration' must be a count"),
    "iteration-400-digits": (lambda m: m.update(iteration="9" * 400), "metadata 'iteration' must be a count"),
    "iteration-missing": (lambda m: m.pop("iteration"), "metadata 'iteration' must be a count"),
    "config-not-json": (lambda m: m.update(config="{oops"), "metadata 'config' is not JSON"),
    "config-list": (lambda m: m.update(config="[1, 2]"), "metadata 'config' must be a JSON object, got list"),
    "config-missing": (lambda m: m.pop("config"), "metadata 'config' is missing"),
    "config-deep": (lambda m: m.update(config="[" * 100_000 + "]" * 100_000), "metadata 'config' is not JSON"),
    "extra-not-json": (lambda m: m.update(extra="nope"), "metadata 'extra' is not JSON"),
    "extra-list": (lambda m: m.update(extra="[]"), "metadata 'extra' must be a JSON object, got list"),
    "fingerprint-missing": (lambda m: m.pop("scene_fingerprint"), "metadata 'scene_fingerprint' is missing"),
    "scene-list": (lambda m: m.update(scene="[1, 2]"), "metadata 'scene' must be a JSON object, got list"),
    "scene-missing-fields": (lambda m: m.update(scene='{"path": "x"}'), "scene: missing field(s) abs_path"),
    "scene-factor-text": (lambda m: m.update(scene=json.dumps({**json.loads(m["scene"]), "factor": "8"})),
                          "scene.factor: expected int, got str '8'"),
    "scene-background": (lambda m: m.update(scene=json.dumps({**json.loads(m["scene"]), "background": "plaid"})),
                         "scene.background: unknown background 'plaid'"),
}


@pytest.mark.parametrize("case", META_CASES, ids=[f"ckpt-meta-{c}" for c in META_CASES])
def test_damaged_metadata(case, parts, tmp_path):
    change, needle = META_CASES[case]
    meta = dict(parts[0])
    change(meta)
    path = write(tmp_path / CHECKPOINT_NAME, meta, parts[1])
    raises(CheckpointError, lambda: load_model(path), str(path), needle)


# -- ckpt-config: the stored TrainConfig, validated as from the CLI or the API ----------------------------

def _field(path: str, value):
    def change(cfg: dict):
        node = cfg
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return change


CONFIG_CASES = {
    "width-text": (_field("model.width", "abc"), "config.model.width: expected int, got str 'abc'"),
    "width-fraction": (_field("model.width", 32.5), "config.model.width: expected int, got float 32.5"),
    "width-1e7": (_field("model.width", 1e7), "config.model.width: expected int, got float 10000000.0"),
    "width-huge-int": (_field("model.width", 10**7), "config.model.width must be in [2, 4096], got 10000000"),
    "depth-huge": (_field("model.depth", 10**5), "config.model.depth must be in [1, 64]"),
    "n-coarse-1e9": (_field("render.n_coarse", 10**9), "config.render.n_coarse must be in [1, 4096], got 1000000000"),
    "chunk-zero": (_field("render.chunk", 0), "config.render.chunk must be in"),
    "model-list": (_field("model", []), "config.model: expected an object (NerfModelConfig), got list []"),
    "render-null": (_field("render", None), "config.render: expected an object (RenderConfig), got null"),
    "mlp-text": (_field("mlp", "fast"), "config.mlp: expected an object (MLPConfig), got str 'fast'"),
    "batch-zero": (_field("batch_size", 0), "config.batch_size must be in [1, 2^20], got 0"),
    "iterations-negative": (_field("iterations", -5), "config.iterations must be in [0, 100000000], got -5"),
    "early-stop-negative": (_field("render.early_stop_eps", -1.0), "config.render.early_stop_eps must be in [0, 1)"),
    "lr-nan": (_field("lr", float("nan")), "config.lr: expected a finite float, got float nan"),
    "lr-zero": (_field("lr", 0.0), "config.lr must be in (0, 1e+06]"),
    "fine-yes": (_field("model.fine", "yes"), "config.model.fine: expected bool (true/false), got str 'yes'"),
    "unknown-field": (_field("momentum", 0.9), "config: unknown field(s) momentum"),
    "backend": (_field("render.backend", "cuda-magic"), "config.render.backend: unknown render backend 'cuda-magic'"),
    "precision": (_field("mlp.precision", "fp8"), "config.mlp.precision: unknown MLP precision 'fp8'"),
    "seed-negative": (_field("seed", -1), "config.seed must be in [0, 4294967295], got -1"),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[f"ckpt-config-{c}" for c in CONFIG_CASES])
def test_stored_config(case, parts, tmp_path):
    change, needle = CONFIG_CASES[case]
    config = json.loads(parts[0]["config"])
    change(config)
    path = write(tmp_path / CHECKPOINT_NAME, {**parts[0], "config": json.dumps(config)}, parts[1])
    raises(CheckpointError, lambda: load_model(path), str(path), needle)


def test_ckpt_config_evaluate_with_1e9_samples_fails_fast(parts, tmp_path, tiny_scene):
    config = json.loads(parts[0]["config"])
    config["render"]["n_coarse"] = 10**9
    path = write(tmp_path / CHECKPOINT_NAME, {**parts[0], "config": json.dumps(config)}, parts[1])
    raises(CheckpointError, lambda: nerfprune.evaluate(path, tiny_scene), str(path), "config.render.n_coarse")
    raises(CheckpointError, lambda: nerfprune.evaluate(path), str(path), "config.render.n_coarse")


# -- config-json: every wrong kind for every field class, through from_dict --------------------------------

WRONG = {  # annotation -> values of other kinds
    int: ["abc", 2.5, True, None, [1]],
    float: ["abc", True, None, float("nan"), float("inf"), [0.1]],
    bool: ["yes", 1, None, 0.0],
    str: [3, None, True, ["a"]],
    int | None: ["abc", 2.5, False, [1]],
    "config": [[], None, "x", 3],
}


def _leaves(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield cls, f"{prefix}{f.name}", "config"
            yield from _leaves(hint, f"{prefix}{f.name}.")
        elif hint in WRONG:
            yield cls, f"{prefix}{f.name}", hint


def _json_cases():
    cases = []
    for root in (TrainConfig, PruneConfig, EvalConfig):
        for _, path, kind in _leaves(root):
            for value in WRONG[kind]:
                cases.append(pytest.param(root, path, value, id=f"config-json-{root.__name__}.{path}={value!r}"))
    return cases


@pytest.mark.parametrize("root, path, value", _json_cases())
def test_config_json_wrong_kind(root, path, value):
    data: dict = {}
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    raises(ConfigError, lambda: from_dict(root, json.loads(json.dumps(data))), f"config.{path}: expected")


# -- config-range: values of the right kind, out of range or absurdly large (configs built in Python) -------

RANGE_CASES = [
    (TrainConfig, {"iterations": 10**12}, "iterations must be in"),
    (TrainConfig, {"batch_size": 2**30}, "batch_size must be in [1, 2^20]"),
    (TrainConfig, {"lr": -1.0}, "lr must be in"),
    (TrainConfig, {"lr": 1e300}, "lr must be in"),
    (TrainConfig, {"lr_decay": 2.0}, "lr_decay must be in (0, 1]"),
    (TrainConfig, {"lr_decay_steps": -1}, "lr_decay_steps must be in"),
    (TrainConfig, {"seed": 2**64}, "seed: integer out of range"),
    (TrainConfig, {"precrop_iters": -1}, "precrop_iters must be in"),
    (TrainConfig, {"precrop_frac": 0.0}, "precrop_frac must be in (0, 1]"),
    (TrainConfig, {"log_every": 0}, "log_every must be in"),
    (TrainConfig, {"checkpoint_every": 0}, "checkpoint_every must be in"),
    (TrainConfig, {"val_views": 10**9}, "val_views must be in"),
    (TrainConfig, {"block_points": -1}, "block_points must be in"),
    (TrainConfig, {"block_workers": 3}, "block_workers must be 1 or 2, got 3"),
    (TrainConfig, {"render": RenderConfig(n_fine=10**6)}, "render.n_fine must be in [0, 4096]"),
    (TrainConfig, {"render": RenderConfig(chunk=2**40)}, "render.chunk must be in"),
    (TrainConfig, {"render": RenderConfig(ray_chunk=2**30)}, "render.ray_chunk must be in"),
    (TrainConfig, {"render": RenderConfig(last_delta=1e300)}, "render.last_delta must be in"),
    (TrainConfig, {"render": RenderConfig(early_stop_eps=1.0)}, "render.early_stop_eps must be in [0, 1)"),
    (TrainConfig, {"render": RenderConfig(backend="cuda")}, "render.backend: unknown render backend 'cuda'"),
    (TrainConfig, {"model": NerfModelConfig(width=1)}, "model.width must be in [2, 4096], got 1"),
    (TrainConfig, {"model": NerfModelConfig(depth=0)}, "model.depth must be in [1, 64], got 0"),
    (TrainConfig, {"model": NerfModelConfig(depth=32, width=4096)}, "model.depth x width^2 must be <= 2^27"),
    (TrainConfig, {"mlp": MLPConfig(backward="magic")}, "mlp.backward: unknown MLP backward 'magic'"),
    (PruneConfig, {"sparsity": 0.0}, "sparsity must be in (0, 1), got 0.0"),
    (PruneConfig, {"sparsity": 1.0}, "sparsity must be in (0, 1), got 1.0"),
    (PruneConfig, {"rounds": 1000}, "rounds must be in [1, 100]"),
    (PruneConfig, {"rewind_iteration": -1}, "rewind_iteration must be in"),
    (PruneConfig, {"retrain_iterations": 10**9}, "retrain_iterations must be in"),
    (PruneConfig, {"retrain_lr": -1e-3}, "retrain_lr must be in"),
    (PruneConfig, {"retrain_lr": float("inf")}, "retrain_lr"),
    (PruneConfig, {"eval_views": -1}, "eval_views must be in"),
    (PruneConfig, {"method": "magic"}, "method: unknown pruning method 'magic'"),
    (PruneConfig, {"rewind": "yesterday"}, "rewind: unknown rewind point 'yesterday'"),
    (EvalConfig, {"max_views": -1}, "max_views must be in"),
    (EvalConfig, {"timing_repeats": 10**6}, "timing_repeats must be in"),
    (EvalConfig, {"timing_warmup": -1}, "timing_warmup must be in"),
    (EvalConfig, {"split": ""}, "split must name a split"),
]


@pytest.mark.parametrize("cls, changes, needle", RANGE_CASES,
                         ids=[f"config-range-{c[0].__name__}-{next(iter(c[1]))}-{i}" for i, c in enumerate(RANGE_CASES)])
def test_config_range(cls, changes, needle):
    raises(ConfigError, lambda: cls(**changes).validate(), needle)


# -- round-json: a damaged record of a finished round while resuming a pruning run -------------------------

GOOD_ROUND = {"round": 1, "sparsity": 0.5, "live_weights": 10, "per_layer_sparsity": {}, "iterations": 1}
ROUND_CASES = {
    "not-json": (b"{round", "not a readable round record"),
    "empty": (b"", "not a readable round record"),
    "binary": (b"\xff\xfe\x00junk", "not a readable round record"),
    "list": (b"[1, 2]", "a round record must be a JSON object, got list"),
    "null": (b"null", "a round record must be a JSON object, got NoneType"),
    "string": (b'"done"', "a round record must be a JSON object, got str"),
    "round-text": (json.dumps({**GOOD_ROUND, "round": "1"}).encode(), "'round' must be int, got '1'"),
    "sparsity-missing": (json.dumps({k: v for k, v in GOOD_ROUND.items() if k != "sparsity"}).encode(),
                         "'sparsity' must be float, got None"),
    "live-bool": (json.dumps({**GOOD_ROUND, "live_weights": True}).encode(), "'live_weights' must be int, got True"),
    "other-round": (json.dumps({**GOOD_ROUND, "round": 2}).encode(), "records round 2, but it is round 1's folder"),
}


@pytest.mark.parametrize("case", ROUND_CASES, ids=[f"round-json-{c}" for c in ROUND_CASES])
def test_damaged_round_record(case, base, tiny_scene, tmp_path):
    content, needle = ROUND_CASES[case]
    record = tmp_path / "round-1" / "round.json"
    record.parent.mkdir()
    record.write_bytes(content)
    cfg = PruneConfig(sparsity=0.5, retrain_iterations=1, eval_views=0)
    raises(CheckpointError, lambda: run_pruning(base, tiny_scene, cfg, tmp_path), str(record), needle)
    assert not (tmp_path / "prune_config.json").exists(), "nothing is written before the record is found damaged"


# -- snapshot: a damaged rewind snapshot ---------------------------------------------------------------

def _snapshot_bytes(tensors: dict) -> bytes:
    return save({k: v.contiguous() for k, v in tensors.items()})


SNAPSHOT_CASES = {
    "not-safetensors": (lambda w: b"PK\x03\x04 not a snapshot", "not a readable safetensors rewind snapshot"),
    "truncated": (lambda w: _snapshot_bytes(w)[:-10], "not a readable safetensors rewind snapshot"),
    "missing-tensor": (lambda w: _snapshot_bytes({k: v for k, v in w.items() if k != "coarse.rgb.bias"}),
                       "missing tensor(s) model/coarse.rgb.bias"),
    "extra-tensor": (lambda w: _snapshot_bytes({**w, "coarse.extra": torch.zeros(1)}), "unexpected tensor(s) model/coarse.extra"),
    "nan-weight": (lambda w: _snapshot_bytes({**w, "coarse.rgb.bias": torch.full((3,), float("nan"))}),
                   "weight tensor 'coarse.rgb.bias' holds NaN"),
    "int8-weight": (lambda w: _snapshot_bytes({**w, "coarse.rgb.bias": torch.zeros(3, dtype=torch.int8)}),
                    "'coarse.rgb.bias' has dtype int8"),
    "wrong-shape": (lambda w: _snapshot_bytes({**w, "coarse.rgb.bias": torch.zeros(5)}), "'model/coarse.rgb.bias' has shape (5,)"),
    "a-folder": (None, "rewind snapshot is not a regular file"),
}


@pytest.mark.parametrize("case", SNAPSHOT_CASES, ids=[f"snapshot-{c}" for c in SNAPSHOT_CASES])
def test_damaged_rewind_snapshot(case, base, tiny_scene, tmp_path):
    make, needle = SNAPSHOT_CASES[case]
    parent = tmp_path / "parent"
    parent.mkdir()
    shutil.copy(base / CHECKPOINT_NAME, parent / CHECKPOINT_NAME)
    snapshot = parent / "snapshot-1.safetensors"
    if make is None:
        snapshot.mkdir()
    else:
        snapshot.write_bytes(make(load_file(str(base / "snapshot-1.safetensors"))))
    cfg = PruneConfig(sparsity=0.5, rewind="late", rewind_iteration=1, retrain_iterations=1, eval_views=0)
    raises(CheckpointError, lambda: run_pruning(parent, tiny_scene, cfg, tmp_path / "out"), str(snapshot), needle)
    assert not (tmp_path / "out").exists()


# -- api: wrong types, shapes and values to train / render / evaluate / prune ---------------------------------

def _cams(scene, **changes):
    cams = scene.cameras.subset([0])
    for name, value in changes.items():
        if name == "c2w":
            cams.c2w = cams.c2w.copy()
            cams.c2w[0, 0, 0] = value
        elif name in ("near", "far"):
            setattr(cams, name, value)
        else:
            setattr(cams, name, np.full(1, value, np.float32))
    return cams


API_CASES = {
    "train-scene-int": (lambda m, s, t: nerfprune.train(3, TINY, out_dir=t), ConfigError, "train: scene must be a Scene"),
    "train-config-str": (lambda m, s, t: nerfprune.train(s, "fast", out_dir=t), ConfigError,
                         "train: config must be a TrainConfig, got str"),
    "train-config-dict": (lambda m, s, t: nerfprune.train(s, {"iterations": 2}, out_dir=t), ConfigError,
                          "config must be a TrainConfig, got dict"),
    "train-iterations-str": (lambda m, s, t: nerfprune.train(s, dataclasses.replace(TINY, iterations="2"), out_dir=t),
                             ConfigError, "config.iterations: expected int, got str '2'"),
    "train-batch-zero": (lambda m, s, t: nerfprune.train(s, dataclasses.replace(TINY, batch_size=0), out_dir=t),
                         ConfigError, "config.batch_size must be in"),
    "train-out-is-file": (lambda m, s, t: nerfprune.train(s, TINY, out_dir=_file(t)), ConfigError,
                          "output folder", "is a file"),
    "train-missing-scene": (lambda m, s, t: nerfprune.train(str(t / "nowhere"), TINY, out_dir=t / "o"), SceneError,
                            "nowhere"),
    "render-cameras-str": (lambda m, s, t: nerfprune.render(m, "orbit"), ConfigError,
                           "render: cameras must be a nerfprune.Cameras, got str"),
    "render-nan-pose": (lambda m, s, t: nerfprune.render(m, _cams(s, c2w=float("nan"))), SceneError,
                        "render: cameras: view 0: camera field 'c2w' is NaN or infinite"),
    "render-fx-zero": (lambda m, s, t: nerfprune.render(m, _cams(s, fx=0.0)), SceneError,
                       "render: cameras: view 0: focal length"),
    "render-fx-nan": (lambda m, s, t: nerfprune.render(m, _cams(s, fx=float("nan"))), SceneError, "'fx' is NaN"),
    "render-far-inf": (lambda m, s, t: nerfprune.render(m, _cams(s, far=float("inf"))), SceneError,
                       "render: cameras: need 0 < near < far", "far=inf"),
    "render-near-after-far": (lambda m, s, t: nerfprune.render(m, _cams(s, near=7.0)), SceneError,
                              "render: cameras: need 0 < near < far", "got near=7.0, far=6.0"),
    "render-background-short": (lambda m, s, t: nerfprune.render(m, _cams(s), background=(1, 1)), SceneError,
                                "render: background must be 3 finite numbers in [0, 1], got [1.0, 1.0]"),
    "render-background-nan": (lambda m, s, t: nerfprune.render(m, _cams(s), background=(math.nan, 0, 0)), SceneError,
                              "render: background must be 3 finite numbers"),
    "render-background-name": (lambda m, s, t: nerfprune.render(m, _cams(s), background="white"), SceneError,
                               "render: background must be 3 numbers in [0, 1], got 'white'"),
    "render-video-avi": (lambda m, s, t: nerfprune.render(m, _cams(s), out_dir=t, video="x.avi"), ConfigError,
                         "render: video must be a file name ending in .mp4 or .gif, got 'x.avi'"),
    "render-video-path": (lambda m, s, t: nerfprune.render(m, _cams(s), out_dir=t, video="../x.mp4"), ConfigError,
                          "video must be a file name"),
    "render-video-no-out": (lambda m, s, t: nerfprune.render(m, _cams(s), video="x.mp4"), ConfigError,
                            "video='x.mp4' needs out_dir"),
    "render-prefix-path": (lambda m, s, t: nerfprune.render(m, _cams(s), out_dir=t, prefix="a/b"), ConfigError,
                           "render: prefix must be a plain file-name prefix, got 'a/b'"),
    "render-config-str": (lambda m, s, t: nerfprune.render(m, _cams(s), "fast"), ConfigError,
                          "render_config must be a RenderConfig, got str"),
    "render-config-range": (lambda m, s, t: nerfprune.render(m, _cams(s), RenderConfig(n_coarse=0)), ConfigError,
                            "render_config.n_coarse must be in"),
    "render-model-int": (lambda m, s, t: nerfprune.render(3, _cams(s)), ConfigError,
                         "render: model must be a NerfModel or a checkpoint / training folder path, got int"),
    "render-model-missing": (lambda m, s, t: nerfprune.render(t / "nothing", _cams(s)), CheckpointError,
                             "nothing", "checkpoint file not found"),
    "render-out-under-file": (lambda m, s, t: nerfprune.render(m, _cams(s), out_dir=_file(t) / "x"), ConfigError,
                              "lies under", "which is a file"),
    "evaluate-model-list": (lambda m, s, t: nerfprune.evaluate([m], s), ConfigError, "evaluate: model must be"),
    "evaluate-scene-int": (lambda m, s, t: nerfprune.evaluate(m, 3), ConfigError, "evaluate: scene must be a Scene"),
    "evaluate-config-str": (lambda m, s, t: nerfprune.evaluate(m, s, "test"), ConfigError,
                            "evaluate: config must be a EvalConfig, got str"),
    "evaluate-max-views": (lambda m, s, t: nerfprune.evaluate(m, s, EvalConfig(max_views=-1)), ConfigError,
                           "config.max_views must be in"),
    "evaluate-render-config": (lambda m, s, t: nerfprune.evaluate(m, s, render_config=RenderConfig(chunk=0)), ConfigError,
                               "render_config.chunk must be in"),
    "evaluate-empty-split": (lambda m, s, t: nerfprune.evaluate(m, _without(s, "test"), out_dir=t / "e"), SceneError,
                             "split 'test' has no views"),
    "evaluate-unknown-split": (lambda m, s, t: nerfprune.evaluate(m, s, EvalConfig(split="holdout")), SceneError,
                               "no split 'holdout'"),
    "evaluate-strict-other-scene": (lambda m, s, t: nerfprune.evaluate(m, OTHER[0], strict=True), SceneError,
                                    "was trained on the built-in scene (24x24", "their images differ"),
    "prune-model-module": (lambda m, s, t: nerfprune.prune(load_model(m)[0], s), ConfigError,
                           "prune: model must be the training output folder or checkpoint path, got NerfModel"),
    "prune-config-str": (lambda m, s, t: nerfprune.prune(m, s, "95%", out_dir=t), ConfigError,
                         "prune: config must be a PruneConfig, got str"),
    "prune-sparsity": (lambda m, s, t: nerfprune.prune(m, s, PruneConfig(sparsity=1.0), out_dir=t), ConfigError,
                       "config.sparsity must be in (0, 1)"),
    "prune-late-beyond-parent": (lambda m, s, t: nerfprune.prune(m, s, PruneConfig(rewind="late", rewind_iteration=50),
                                                                 out_dir=t / "p"), ConfigError,
                                 "rewind_iteration must be <= the parent's 2 training iterations, got 50"),
    "prune-no-val-split": (lambda m, s, t: nerfprune.prune(m, _without(s, "val"), PruneConfig(eval_views=1), out_dir=t / "p"),
                           SceneError, "split 'val' has no views"),
    "prune-scene-int": (lambda m, s, t: nerfprune.prune(m, 3.5, out_dir=t / "p"), ConfigError, "prune: scene must be a Scene"),
}
OTHER: list = []


def _file(t):
    f = t / "a-file"
    f.write_text("x")
    return f


def _without(scene, split):
    from nerfprune.scene.types import Scene

    return Scene(**{**vars(scene), "splits": {**scene.splits, split: scene.splits[split][:0]}})


@pytest.mark.parametrize("case", API_CASES, ids=[f"api-{c}" for c in API_CASES])
def test_api_call(case, base, tiny_scene, other_scene, tmp_path):
    OTHER[:] = [other_scene]
    call, kind, *needles = API_CASES[case]
    raises(kind, lambda: call(base, tiny_scene, tmp_path), *needles)
    assert not (tmp_path / "p").exists() and not (tmp_path / "e").exists(), "a refused call writes nothing"


# -- cli: flags, in process (one line on stderr, exit 2, nothing written) -----------------------------

CLI_CASES = {
    "factor-zero": (["train", "--factor", "0"], "--factor must be an integer in [1, 1024], got 0"),
    "factor-negative": (["train", "--factor", "-3"], "--factor must be an integer"),
    "factor-huge": (["train", "--scene", "S", "--factor", "5000"], "--factor must be an integer in [1, 1024], got 5000"),
    "seed-negative": (["train", "--seed", "-1"], "seed must be in [0, 4294967295], got -1"),
    "seed-huge": (["train", "--seed", str(2**40)], "seed must be in"),
    "iterations-negative": (["train", "--iterations", "-1"], "iterations must be in [0, 100000000], got -1"),
    "iterations-huge": (["train", "--iterations", str(10**9)], "iterations must be in"),
    "batch-zero": (["train", "--batch-size", "0"], "batch_size must be in [1, 2^20], got 0"),
    "lr-zero": (["train", "--lr", "0"], "lr must be in (0, 1e+06], got 0.0"),
    "lr-inf": (["train", "--lr", "inf"], "lr: expected a finite float, got float inf"),
    "lr-nan": (["train", "--lr", "nan"], "lr: expected a finite float, got float nan"),
    "n-coarse-zero": (["train", "--n-coarse", "0"], "render.n_coarse must be in [1, 4096], got 0"),
    "n-fine-huge": (["train", "--n-fine", "1000000"], "render.n_fine must be in [0, 4096]"),
    "block-points-negative": (["train", "--block-points", "-5"], "block_points must be in"),
    "checkpoint-every-zero": (["train", "--checkpoint-every", "0"], "checkpoint_every must be in"),
    "threads-negative": (["train", "--threads", "-1"], "--threads must be >= 0"),
    "out-is-file": (["train", "--out", "F"], "--out", "is a file, not a folder"),
    "scene-missing": (["train", "--scene", "/nonexistent/scene"], "--scene /nonexistent/scene: no such file or folder"),
    "render-frames-zero": (["render", "--model", "M", "--path", "orbit", "--frames", "0"], "--frames must be in [1, 10000], got 0"),
    "render-frames-huge": (["render", "--model", "M", "--path", "spiral", "--frames", "100000000"], "--frames must be in"),
    "render-video-avi": (["render", "--model", "M", "--video", "x.avi"], "--video: video must be a file name ending in .mp4"),
    "render-video-no-suffix": (["render", "--model", "M", "--video", "movie"], "--video: video must be a file name"),
    "render-model-missing": (["render", "--model", "/nonexistent/model"], "--model /nonexistent/model: no such file or folder"),
    "render-n-coarse": (["render", "--model", "M", "--n-coarse", "0"], "n_coarse must be in [1, 4096], got 0"),
    "eval-max-views": (["eval", "--model", "M", "--max-views", "-1"], "max_views must be in"),
    "eval-repeats": (["eval", "--model", "M", "--repeats", "-1"], "timing_repeats must be in"),
    "eval-split-missing": (["eval", "--model", "M", "--split", "holdout"], "no split 'holdout'"),
    "eval-model-not-checkpoint": (["eval", "--model", "F"], "not a readable safetensors checkpoint"),
    "prune-sparsity-one": (["prune", "--model", "M", "--sparsity", "1.5"], "sparsity must be in (0, 1), got 1.5"),
    "prune-sparsity-nan": (["prune", "--model", "M", "--sparsity", "nan"], "sparsity: expected a finite float"),
    "prune-rounds-zero": (["prune", "--model", "M", "--rounds", "0"], "rounds must be in [1, 100], got 0"),
    "prune-rewind-negative": (["prune", "--model", "M", "--rewind-iteration", "-1"], "rewind_iteration must be in"),
    "prune-retrain-negative": (["prune", "--model", "M", "--retrain-iterations", "-1"], "retrain_iterations must be in"),
    "prune-retrain-lr-nan": (["prune", "--model", "M", "--retrain-lr", "nan"], "retrain_lr: expected a finite float"),
    "study-scale-zero": (["study", "--scale", "0"], "--scale must be > 0"),
}
TINY_FLAGS = ["--preset", "tiny", "--iterations", "1", "--batch-size", "32", "--n-coarse", "8", "--n-fine", "8"]


@pytest.mark.parametrize("case", CLI_CASES, ids=[f"cli-{c}" for c in CLI_CASES])
def test_cli_flag(case, base, tmp_path, capsys):
    argv, *needles = CLI_CASES[case]
    a_file = _file(tmp_path)
    fill = {"M": str(base), "F": str(a_file), "S": str(base)}
    argv = [fill.get(a, a) for a in argv]
    tiny = TINY_FLAGS if argv[0] == "train" else []
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    assert main([argv[0], *tiny, *argv[1:]]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if ": warning: " not in line]
    assert len(err) == 1 and err[0].startswith(f"nerfprune {argv[0]}: error: "), err
    assert all(n in err[0] for n in needles), err[0]
    assert not (tmp_path / "out").exists(), "a refused command writes nothing"


# -- accepted: inputs deliberately let through (docs/validation.md) ---------------------------------------

def test_accepted_old_checkpoint_without_scene_record(parts, tmp_path):
    meta = {k: v for k, v in parts[0].items() if k != "scene"}
    model, _, ckpt = load_model(write(tmp_path / CHECKPOINT_NAME, meta, parts[1]))
    assert ckpt.scene is None


def test_accepted_unknown_metadata_keys_and_free_form_extra(parts, tmp_path):
    meta = {**parts[0], "written_by": "another tool", "extra": json.dumps({"note": [1, None, "x"]})}
    _, _, ckpt = load_model(write(tmp_path / CHECKPOINT_NAME, meta, parts[1]))
    assert ckpt.extra == {"note": [1, None, "x"]}


def test_accepted_json_int_for_a_float_and_list_for_a_tuple():
    cfg = from_dict(TrainConfig, {"lr": 1, "precrop_frac": 1})
    assert isinstance(cfg.lr, float) and cfg.lr == 1.0
    from nerfprune.experiments.study import StudyConfig

    assert from_dict(StudyConfig, {"iterations": [1, 2]}).iterations == (1, 2)


def test_accepted_bool_masks_and_uint8_masks(parts, tmp_path):
    mask_name = W[len("model/"):]
    for mask in (torch.ones(32, 39, dtype=torch.bool), torch.ones(32, 39, dtype=torch.uint8)):
        tensors = {**parts[1], "mask/" + mask_name: mask}
        _, _, ckpt = load_model(write(tmp_path / CHECKPOINT_NAME, parts[0], tensors))
        assert ckpt.masks[mask_name].dtype == torch.bool and bool(ckpt.masks[mask_name].all())
