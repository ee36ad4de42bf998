#!/usr/bin/env bash
# Put into .whl/ every wheel the GPU machine lacks (docs/gpu.md), for `run(..., carry=[".whl"])`:
#   taichi 1.7.4 for CPython 3.12 (manylinux x86-64) and dill, the one of taichi's requirements
#   (numpy, colorama, dill, rich) that the machine's image does not have (.library/device/KINDS.md);
#   nerfprune's own wheel, built here with maturin: abi3 when rust/py/Cargo.toml asks for pyo3's abi3,
#   else for CPython 3.12 (a python3.12 must be found: $PYTHON312, python3.12 on PATH, or pyenv's).
# Then prints the total size, which must stay under 60 MiB (the whole working tree that travels: 64 MiB).
#
#   scripts/fetch_gpu_wheels.sh        # needs network (pip download) and the Rust toolchain
#
# The venv's pip and maturin are used ($V, else the shared venv); nothing is installed anywhere.
# .whl/ is kept out of git by .git/info/exclude, added here if missing (it applies to all worktrees).
set -euo pipefail
cd "$(dirname "$0")/.."
V=${V:-$(ls -d "$HOME"/.cache/nerfprune/venv-* 2>/dev/null | head -1)}
[[ -x $V/bin/python && -x $V/bin/maturin ]] || { echo "fetch_gpu_wheels.sh: error: no venv with pip and maturin at '$V' (set V)" >&2; exit 2; }
TAICHI=taichi==1.7.4
DEPS=(dill==0.4.1)  # the version the project's venv runs with
LIMIT_MIB=60

exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
mkdir -p .whl

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$V/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl "$TAICHI" "${DEPS[@]}"

find_python312() {
  local c
  for c in "${PYTHON312:-}" python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    [[ -n $c ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$c"; return 0; }
  done
  return 1
}
rm -f .whl/nerfprune-*.whl  # one nerfprune wheel only: two versions of a package stop the whole install there
if grep -qE '^[^#]*abi3' rust/py/Cargo.toml; then
  "$V/bin/maturin" build --release -q -o .whl
else
  py312=$(find_python312) || { echo "fetch_gpu_wheels.sh: error: no CPython 3.12 to build nerfprune's cp312 wheel (set PYTHON312)" >&2; exit 2; }
  "$V/bin/maturin" build --release -q -o .whl -i "$py312"
fi

ls -l .whl/*.whl
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
if ((total >= LIMIT_MIB * 1048576)); then
  echo "fetch_gpu_wheels.sh: error: the wheels take $mib MiB, over $LIMIT_MIB MiB" >&2
  exit 1
fi
echo "wheels in .whl/: $mib MiB (limit $LIMIT_MIB MiB)"
