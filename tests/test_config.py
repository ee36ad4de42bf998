"""Dataclass configs round-trip through JSON; unknown fields are refused; writes are atomic."""

import json
import os

import pytest

from nerfprune.config import atomic_write_bytes, from_dict, to_dict
from nerfprune.errors import ConfigError
from nerfprune.field import NerfModelConfig
from nerfprune.renderer import RenderConfig
from nerfprune.training import TrainConfig


def test_train_config_round_trips_through_json():
    cfg = TrainConfig(iterations=7, model=NerfModelConfig(preset="tiny", width=16), render=RenderConfig(n_fine=0))
    again = from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match=r"config.render: unknown field\(s\) n_samples"):
        from_dict(TrainConfig, {"render": {"n_samples": 3}})


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.listdir(target.parent) == ["f.bin"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


# -- types: one checker for JSON (from_dict) and Python-built configs (validate) ---------------

@pytest.mark.parametrize("data, message", [
    ({"model": {"width": "abc"}}, "config.model.width: expected int, got str 'abc'"),
    ({"model": {"width": 32.5}}, "config.model.width: expected int, got float 32.5"),
    ({"model": {"width": 1e7}}, "config.model.width: expected int, got float 10000000.0"),
    ({"model": {"fine": "yes"}}, "config.model.fine: expected bool"),
    ({"model": {"fine": 1}}, "config.model.fine: expected bool"),
    ({"batch_size": True}, "config.batch_size: expected int, got bool True"),
    ({"lr": float("nan")}, "config.lr: expected a finite float, got float nan"),
    ({"lr": float("inf")}, "config.lr: expected a finite float"),
    ({"lr": "0.1"}, "config.lr: expected float, got str"),
    ({"model": []}, r"config.model: expected an object \(NerfModelConfig\), got list \[\]"),
    ({"render": None}, r"config.render: expected an object \(RenderConfig\), got null"),
    ({"render": {"backend": 3}}, "config.render.backend: expected str, got int 3"),
    ({"block_points": "many"}, "config.block_points: expected int, got str 'many'"),
    ({"iterations": 10**400}, "config.iterations: integer out of range"),
])
def test_from_dict_names_the_field_and_the_wrong_kind(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data)


def test_from_dict_converts_json_kinds_to_the_annotated_ones():
    from nerfprune.experiments.study import StudyConfig

    cfg = from_dict(StudyConfig, {"iterations": [3, 6], "sweep": [0.5, 1], "train": {"lr": 1, "block_points": None}})
    assert cfg.iterations == (3, 6) and cfg.sweep == (0.5, 1.0) and isinstance(cfg.sweep[1], float)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.block_points is None
    with pytest.raises(ConfigError, match=r"config.iterations\[1\]: expected int, got str 'x'"):
        from_dict(StudyConfig, {"iterations": [3, "x"]})


@pytest.mark.parametrize("make, message", [
    (lambda: TrainConfig(iterations="5"), "iterations: expected int, got str '5'"),
    (lambda: TrainConfig(model=NerfModelConfig(width=32.5)), "model.width: expected int"),
    (lambda: TrainConfig(render=RenderConfig(lindisp="no")), "render.lindisp: expected bool"),
    (lambda: TrainConfig(render=None), r"render: expected an object \(RenderConfig\), got null"),
])
def test_validate_checks_types_of_configs_built_in_python(make, message):
    with pytest.raises(ConfigError, match=message):
        make().validate()


# -- ranges and sizes: no config asks for absurd memory or time ---------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"iterations": 10**9}, r"iterations must be in \[0, 100000000\]"),
    ({"iterations": -1}, "iterations must be in"),
    ({"batch_size": 2**21}, r"batch_size must be in \[1, 2\^20\]"),
    ({"lr": 0.0}, r"lr must be in \(0, 1e\+06\]"),
    ({"lr_decay": 0.0}, "lr_decay must be in"),
    ({"seed": -1}, "seed must be in"),
    ({"seed": 2**40}, "seed must be in"),
    ({"precrop_frac": 1.5}, "precrop_frac must be in"),
    ({"block_points": 2**40}, "block_points must be in"),
    ({"render": RenderConfig(n_coarse=10**9)}, r"render.n_coarse must be in \[1, 4096\], got 1000000000"),
    ({"render": RenderConfig(n_fine=-1)}, "render.n_fine must be in"),
    ({"render": RenderConfig(chunk=2**30)}, "render.chunk must be in"),
    ({"render": RenderConfig(ray_chunk=2**20, n_coarse=4096, n_fine=4096)}, r"render.ray_chunk x \(n_coarse \+ n_fine\)"),
    ({"render": RenderConfig(early_stop_eps=1.0)}, r"render.early_stop_eps must be in \[0, 1\)"),
    ({"render": RenderConfig(early_stop_eps=-1e-3)}, "render.early_stop_eps must be in"),
    ({"render": RenderConfig(last_delta=0.0)}, r"render.last_delta must be in \(0, 1e\+30\]"),
    ({"model": NerfModelConfig(width=10**6)}, r"model.width must be in \[2, 4096\]"),
    ({"model": NerfModelConfig(depth=10**4)}, r"model.depth must be in \[1, 64\]"),
    ({"model": NerfModelConfig(depth=64, width=4096)}, r"model.depth x width\^2 must be <= 2\^27"),
    ({"model": NerfModelConfig(preset="huge")}, "model.preset: unknown network preset 'huge'"),
    ({"batch_size": 2**20, "render": RenderConfig(n_coarse=4096, n_fine=4096)}, r"batch_size x \(n_coarse \+ n_fine\)"),
])
def test_every_bound_is_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes).validate()


def test_the_defaults_and_presets_are_inside_the_bounds():
    from nerfprune.evaluation import EvalConfig
    from nerfprune.experiments.study import StudyConfig
    from nerfprune.field import PRESETS
    from nerfprune.pruning.lottery import PruneConfig

    for preset in PRESETS:
        TrainConfig(model=NerfModelConfig(preset=preset)).validate()
    PruneConfig().validate()
    EvalConfig().validate()
    StudyConfig().validate()


# -- files: readable like open()'s, output folders checked before any work ----------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with open(tmp_path / "b.bin", "wb"):
            pass
    finally:
        os.umask(old)
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "b.bin") == 0o666 & ~umask


def test_current_umask_does_not_change_it():
    from nerfprune.config import current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and current_umask() == 0o027
    finally:
        os.umask(old)


def test_output_folders_that_cannot_be_written_are_named(tmp_path):
    from nerfprune.config import check_out_dir, make_dir

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=f"--out {a_file}: is a file, not a folder"):
        check_out_dir(a_file, "--out")
    with pytest.raises(ConfigError, match=f"lies under {a_file}, which is a file"):
        check_out_dir(a_file / "sub" / "deeper", "--out")
    with pytest.raises(ConfigError, match=f"{a_file}: is not a folder"):
        make_dir(a_file)
    with pytest.raises(ConfigError, match=f"output folder {a_file}: is not a folder"):
        atomic_write_bytes(a_file / "x.json", b"{}")
    check_out_dir(tmp_path / "new" / "folder")
    assert not (tmp_path / "new").exists(), "checking creates nothing"


def test_a_read_only_output_folder_is_named(tmp_path):
    from nerfprune.config import check_out_dir

    if os.geteuid() == 0:  # root writes anywhere on disk; /sys refuses even root
        target = "/sys/kernel/nerfprune-out"
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys: no folder refuses writes")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "out")
    with pytest.raises(ConfigError, match="cannot write into"):
        check_out_dir(target, "--out")
