"""Both packages import after `maturin develop` and from a wheel installed into a fresh venv.

The wheel is one abi3 wheel (stable ABI, CPython >= 3.10): `nerfprune/_native.abi3.so`
plus the pure-Python `nerfprune` and `taichi_kernels` packages.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_develop_install_imports_both_packages_lazily(tmp_path):
    code = (
        "import nerfprune, taichi_kernels, taichi_kernels.runtime as r, sys;"
        "assert r.current_arch() is None, 'Taichi must not initialise at import';"
        "print(nerfprune.__file__); print(taichi_kernels.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "nerfprune" in out.stdout and "taichi_kernels" in out.stdout


@pytest.mark.skipif(shutil.which("maturin", path=str(Path(sys.executable).parent)) is None and shutil.which("maturin") is None,
                    reason="maturin is not installed in this environment")
def test_wheel_in_fresh_venv_works_from_another_directory(tmp_path):
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which("maturin")
    wheels = tmp_path / "wheels"
    build = subprocess.run([maturin, "build", "--release", "-o", str(wheels)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("nerfprune-*.whl")
    assert "-cp310-abi3-" in wheel.name, f"{wheel.name}: expected one abi3 wheel for CPython 3.10+"
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.endswith(".so")] == ["nerfprune/_native.abi3.so"], names
    assert "nerfprune/_native.pyi" in names and "nerfprune/py.typed" in names
    assert {"taichi_kernels/__init__.py", "taichi_kernels/runtime.py"} <= set(names), names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # Dependencies (torch, taichi, ...) come from this environment's site-packages as a plain path entry;
    # nerfprune itself must come from the wheel (a .pth line does not process the editable install's .pth).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import nerfprune, taichi_kernels, taichi_kernels.runtime, numpy as np;"
        "from nerfprune import _native;"
        "print(nerfprune.__file__); print(taichi_kernels.__file__);"
        "print(_native.fnv1a64(np.frombuffer(b'foobar', np.uint8))); print(_native.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run([str(py), "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    files = run.stdout.splitlines()
    assert files[0].startswith(str(site)) and files[1].startswith(str(site)), files
    assert int(files[2]) == 0x85944171F73967E8
    assert files[3] == str(site / "nerfprune" / "_native.abi3.so"), files[3]
