"""The command line: help for every subcommand, one-line errors with exit code 2."""

import json
import os
import subprocess
import sys

import pytest

from nerfprune.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerfprune", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"nerfprune {command}" in out and "--threads" in out


def test_bad_flag_is_one_line_and_exit_2():
    result = run_cli("train", "--no-such-flag")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments: --no-such-flag" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_model_path_is_one_line_and_exit_2(tmp_path):
    result = run_cli("eval", "--model", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"nerfprune eval: error: --model {tmp_path / 'missing'}: no such file or folder"


def test_missing_scene_path_is_one_line_and_exit_2(tmp_path):
    result = run_cli("train", "--scene", str(tmp_path / "nowhere"), "--iterations", "1")
    assert result.returncode == 2
    assert "--scene" in result.stderr and "no such file or folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_value_is_exit_2(capsys):
    assert main(["train", "--iterations", "5", "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_unknown_preset_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:  # the choices come from the preset registry
        main(["train", "--iterations", "5", "--preset", "huge"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'huge'" in err and "'small'" in err and len(err.strip().splitlines()) == 1


def test_console_script_and_module_agree():
    from pathlib import Path

    script = Path(sys.executable).with_name("nerfprune")
    assert script.exists(), "the console script is installed beside the interpreter"
    a = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    b = run_cli("--help")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_cuda_backend_without_a_gpu_is_one_line_and_exit_2(how, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the error is for machines without one")
    args = ["train", "--iterations", "1", "--out", str(tmp_path)]
    if how == "flag":
        result = run_cli(*args, "--ti-arch", "cuda")
    else:
        import os

        result = subprocess.run([sys.executable, "-m", "nerfprune", *args], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "NERFPRUNE_TI_ARCH": "cuda"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("nerfprune train: error: Taichi backend 'cuda'") and "no CUDA GPU" in lines[0]
    assert not (tmp_path / "checkpoint.safetensors").exists()


# -- "one line, exit 2" for every bad input; ignored options say so ----------------------------------

TINY = ["--preset", "tiny", "--iterations", "1", "--batch-size", "32", "--n-coarse", "8", "--n-fine", "8"]


def one_error_line(capsys, *needles: str) -> str:
    """The one error line on stderr (one-line warnings may come before it), holding every needle."""
    err = [line for line in capsys.readouterr().err.strip().splitlines() if ": warning: " not in line]
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and all(n in err[0] for n in needles), err[0]
    return err[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_scene):
    import nerfprune
    from nerfprune.field import NerfModelConfig
    from nerfprune.renderer import RenderConfig
    from nerfprune.training import TrainConfig

    out = tmp_path_factory.mktemp("model")
    nerfprune.train(tiny_scene, TrainConfig(iterations=2, batch_size=32, model=NerfModelConfig(preset="tiny"),
                                            render=RenderConfig(n_coarse=8, n_fine=8)), out_dir=out)
    return out


def write_npz_scene(path, n_views: int, size: int = 8):
    """An npz scene (tiny-NeRF layout) of `n_views` views of the built-in cameras."""
    import numpy as np

    from nerfprune.scene.builtin import look_at

    eyes = [np.array([4.0 * np.cos(a), 4.0 * np.sin(a), 1.0]) for a in np.linspace(0, 6, n_views)]
    poses = np.stack([np.vstack([look_at(e), [0, 0, 0, 1]]) for e in eyes]).astype(np.float32)
    images = np.full((n_views, size, size, 3), 0.5, np.float32)
    np.savez(path, images=images, poses=poses, focal=np.float32(size))
    return path


def write_ngp_scene(folder, test_views: list[int], n_views: int = 3, size: int = 8):
    """An instant-ngp scene whose transforms.json lists `test_views` (possibly none) as its test split."""
    import imageio.v3 as iio
    import numpy as np

    from nerfprune.scene.builtin import look_at

    folder.mkdir()
    frames = []
    for i in range(n_views):
        iio.imwrite(folder / f"{i}.png", np.full((size, size, 3), 40 * i, np.uint8))
        eye = np.array([4.0 * np.cos(i), 4.0 * np.sin(i), 1.0])
        frames.append({"file_path": f"{i}.png", "transform_matrix": np.vstack([look_at(eye), [0, 0, 0, 1]]).tolist()})
    doc = {"fl_x": float(size), "w": size, "h": size, "frames": frames,
           "train_filenames": [f"{i}.png" for i in range(n_views) if i not in test_views],
           "test_filenames": [f"{i}.png" for i in test_views]}
    (folder / "transforms.json").write_text(json.dumps(doc))
    return folder


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["train", *TINY, "--out", str(target)]) == 2
    one_error_line(capsys, f"--out {target}: is a file")
    assert main(["train", *TINY, "--out", str(target / "sub")]) == 2
    one_error_line(capsys, f"--out {target / 'sub'}: lies under {target}, which is a file")


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere on disk; /sys refuses even root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys: no folder refuses writes")
        target = "/sys/kernel/nerfprune-out"
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        target = str(tmp_path / "locked" / "out")
    assert main(["train", *TINY, "--out", target]) == 2
    one_error_line(capsys, f"--out {target}: cannot write into")


@pytest.mark.parametrize("argv, needles", [
    (["train", "--factor", "0"], ["--factor must be an integer in [1, 1024], got 0"]),
    (["train", "--seed", "-1"], ["seed must be in [0, 4294967295], got -1"]),
    (["train", "--lr", "nan"], ["lr: expected a finite float, got float nan"]),
    (["train", "--n-coarse", "100000"], ["render.n_coarse must be in [1, 4096]"]),
    (["render", "--model", "M", "--path", "orbit", "--frames", "0"], ["--frames must be in [1, 10000], got 0"]),
    (["render", "--model", "M", "--video", "x.avi"], ["--video: video must be a file name ending in .mp4 or .gif, got 'x.avi'"]),
    (["eval", "--model", "M", "--max-views", "-1"], ["max_views must be in"]),
    (["eval", "--model", "M", "--repeats", "-2"], ["timing_repeats must be in"]),
    (["prune", "--model", "M", "--rounds", "0"], ["rounds must be in [1, 100], got 0"]),
    (["prune", "--model", "M", "--seed", "-1"], ["seed must be in"]),
    (["prune", "--model", "M", "--importance", "taylor"], ["importance: 'taylor' scores whole neurons; it needs method 'structured'"]),
    (["prune", "--model", "M", "--method", "structured", "--min-neurons", "0"], ["min_neurons must be in [1, 4096], got 0"]),
])
def test_bad_values_are_one_line_and_leave_no_output(argv, needles, model_dir, tmp_path, capsys):
    argv = [str(model_dir) if a == "M" else a for a in argv]
    tiny = TINY if argv[0] == "train" else []  # before the flag under test, which overrides it
    assert main([argv[0], *tiny, *argv[1:], "--out", str(tmp_path / "out")]) == 2
    one_error_line(capsys, *needles)
    assert not (tmp_path / "out").exists(), "a refused command writes nothing"


def test_prune_flags_reach_the_config(model_dir, tmp_path, capsys):
    import json

    flags = {"--method": "structured", "--importance": "taylor", "--importance-batches": "1", "--rounds": "2",
             "--schedule": "cubic", "--rewind": "continue", "--min-neurons": "3", "--sparsity": "0.9",
             "--retrain-iterations": "1", "--retrain-lr": "0.002"}
    assert main(["prune", "--model", str(model_dir), *[x for kv in flags.items() for x in kv], "--prune-inputs",
                 "--out", str(tmp_path / "p")]) == 0
    saved = json.loads((tmp_path / "p" / "prune_config.json").read_text())
    assert saved["prune_inputs"] is True and saved["prune_heads"] is False and saved["revive_density"] is True
    assert {f"--{k.replace('_', '-')}": str(v) for k, v in saved.items() if f"--{k.replace('_', '-')}" in flags} == flags
    assert "round 2: sparsity" in capsys.readouterr().out


def test_eval_and_render_run_a_pruned_checkpoint_compacted_by_default(model_dir, tmp_path, capsys):
    import json

    import numpy as np

    from nerfprune._native import decode_images

    def read_png(path):
        return decode_images([str(path)])[0]

    assert main(["prune", "--model", str(model_dir), "--method", "structured", "--sparsity", "0.5",
                 "--retrain-iterations", "1", "--importance-batches", "1", "--out", str(tmp_path / "p")]) == 0
    pruned = str(tmp_path / "p" / "round-1")
    metrics = {}
    for variant in ("auto", "stored"):
        assert main(["eval", "--model", pruned, "--variant", variant, "--max-views", "1", "--repeats", "0",
                     "--out", str(tmp_path / f"eval-{variant}")]) == 0
        metrics[variant] = json.loads((tmp_path / f"eval-{variant}" / "metrics.json").read_text())
        assert main(["render", "--model", pruned, "--variant", variant, "--split", "val",
                     "--out", str(tmp_path / f"render-{variant}")]) == 0
    assert metrics["auto"]["variant"] == "compacted" and metrics["stored"]["variant"] == "stored"
    assert abs(metrics["auto"]["psnr"]["mean"] - metrics["stored"]["psnr"]["mean"]) < 1e-3
    out = capsys.readouterr().out
    assert "compacted network" in out and "stored network" in out
    a = read_png(tmp_path / "render-auto" / "val_000_rgb.png").astype(int)
    b = read_png(tmp_path / "render-stored" / "val_000_rgb.png").astype(int)
    assert np.abs(a - b).max() <= 1  # the same image, to the 8-bit rounding
    # a dense checkpoint has nothing to compact: "auto" runs it as stored, "compacted" is refused in one line
    assert main(["eval", "--model", str(model_dir), "--max-views", "1", "--repeats", "0",
                 "--out", str(tmp_path / "dense")]) == 0
    assert json.loads((tmp_path / "dense" / "metrics.json").read_text())["variant"] == "stored"
    capsys.readouterr()
    assert main(["eval", "--model", str(model_dir), "--variant", "compacted", "--out", str(tmp_path / "no")]) == 2
    one_error_line(capsys, "nerfprune eval: error: --variant", "has no masks")


def test_an_empty_train_split_is_one_line(tmp_path, capsys):
    scene = write_npz_scene(tmp_path / "one.npz", n_views=1)  # its only view is held out: no train views
    assert main(["train", *TINY, "--scene", str(scene), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys, str(scene))
    assert "train" in line and "empty" in line
    assert not (tmp_path / "out").exists()


def test_eval_on_an_empty_split_is_one_line_and_writes_no_metrics(model_dir, tmp_path, capsys):
    scene = write_ngp_scene(tmp_path / "ngp", test_views=[])
    assert main(["eval", "--model", str(model_dir), "--scene", str(scene), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "test" in line and ("no views" in line or "empty" in line) and str(scene) in line
    assert not (tmp_path / "out").exists(), "no metrics.json of an empty split"


def test_ignored_options_say_so(model_dir, tmp_path, capsys):
    assert main(["train", *TINY, "--factor", "2", "--background", "black", "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert "nerfprune train: warning: --factor is ignored with the built-in scene" in err
    assert "nerfprune train: warning: --background is ignored with the built-in scene" in err
    assert main(["render", "--model", str(model_dir), "--path", "orbit", "--frames", "1", "--split", "val",
                 "--n-coarse", "4", "--n-fine", "0", "--out", str(tmp_path / "r")]) == 0
    assert "warning: --split is ignored with --path" in capsys.readouterr().err
    assert main(["render", "--model", str(model_dir), "--frames", "3", "--factor", "2", "--n-coarse", "4",
                 "--n-fine", "0", "--out", str(tmp_path / "r2")]) == 0
    captured = capsys.readouterr()
    assert "warning: --frames is ignored without --path" in captured.err
    assert "warning: --factor is ignored without --scene" in captured.err
    assert "rendered 2 views" in captured.out, "the test split of the model's own scene (2 views), not the default built-in (8)"


def test_eval_defaults_to_the_models_scene_and_warns_on_another(model_dir, tiny_scene, tmp_path, capsys):
    import nerfprune

    args = ["eval", "--model", str(model_dir), "--repeats", "0", "--n-coarse", "4", "--n-fine", "0"]
    assert main([*args, "--out", str(tmp_path / "own")]) == 0
    assert capsys.readouterr().err == ""
    saved = json.loads((tmp_path / "own" / "metrics.json").read_text())
    assert saved["views"] == tiny_scene.split("test").tolist(), "the 24x24 scene it was trained on, not the default built-in"
    assert main([*args, "--scene", "builtin", "--out", str(tmp_path / "other")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nerfprune eval: warning: model ")
    assert "was trained on the built-in scene (24x24, seed 0, fingerprint" in err[0]
    assert "but the scene given is the built-in scene (64x64, seed 0, fingerprint" in err[0]
    assert main([*args, "--scene", "builtin", "--strict", "--out", str(tmp_path / "strict")]) == 2
    one_error_line(capsys, "their images differ")
    assert not (tmp_path / "strict").exists()
    assert main(["render", "--model", str(model_dir), "--scene", "builtin", "--strict", "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys, "nerfprune render: error: model", "their images differ")
    assert not (tmp_path / "r").exists()
    api = nerfprune.evaluate(model_dir, config=nerfprune.EvalConfig(timing_repeats=0),
                             render_config=nerfprune.RenderConfig(n_coarse=4, n_fine=0))
    assert api["psnr"] == saved["psnr"], "the API defaults to the recorded scene too"
