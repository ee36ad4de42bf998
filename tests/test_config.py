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
