#!/usr/bin/env bash
# The GPU check (docs/gpu.md): install the carried wheels, then run scripts/gpu_check.py on CUDA.
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [more gpu_check.py flags]
#
# The wheels in .whl/ (scripts/fetch_gpu_wheels.sh puts them there: taichi, its missing dependencies and
# nerfprune's own, abi3 or cp312) go into a throw-away folder, $GPU_CHECK_SITE (default /tmp/site), and
# PYTHONPATH points there, so the installed nerfprune (package, taichi_kernels, native extension) is the
# one that runs. --dry-run runs the same driver on the CPU; it uses the current environment when there is
# no .whl/ or the interpreter is not the CPython 3.12 the wheels are for. The log goes to DIR/gpu_check.log
# (DIR: --out, else $OUT), beside the driver's gpu_check.json and render_small.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
dry=0 out=${OUT:-}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --dry-run) dry=1 ;;
    --out) out=${args[i + 1]:-} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
if [[ -z $out ]]; then
  echo "gpu_check.sh: error: no output folder: give --out DIR or set \$OUT" >&2
  exit 2
fi
mkdir -p "$out"

run_check() {
  export PYTHONUNBUFFERED=1 ENABLE_TAICHI_HEADER_PRINT=0
  start=$SECONDS

  shopt -s nullglob
  wheels=(.whl/*.whl)
  is_312=$("$PYTHON" -c 'import sys; print(int(sys.version_info[:2] == (3, 12)))')
  if ((${#wheels[@]})) && { ((dry == 0)) || ((is_312)); }; then
    # nerfprune's own wheel: the abi3 one if there is one, else the cp312 one; every other wheel as it is.
    own=(.whl/nerfprune-*-abi3-*.whl)
    ((${#own[@]})) || own=(.whl/nerfprune-*-cp312-*.whl)
    if ((${#own[@]} != 1)); then
      echo "gpu_check.sh: error: need exactly one nerfprune-*-abi3-*.whl or nerfprune-*-cp312-*.whl in .whl/, found ${#own[@]}" >&2
      return 2
    fi
    others=()
    for w in "${wheels[@]}"; do [[ $(basename "$w") == nerfprune-* ]] || others+=("$w"); done
    [[ $SITE == /tmp/* ]] || { echo "gpu_check.sh: error: GPU_CHECK_SITE must be under /tmp (it is emptied)" >&2; return 2; }
    rm -rf "$SITE"
    echo "installing ${own[0]} ${others[*]} into $SITE"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${own[@]}" "${others[@]}"
    export PYTHONPATH=$SITE
    echo "installed in $((SECONDS - start)) s"
  elif ((dry)); then
    echo "dry run: using the current environment (no .whl/, or $PYTHON is not CPython 3.12)"
  else
    echo "gpu_check.sh: error: no wheels in .whl/: run scripts/fetch_gpu_wheels.sh first (docs/gpu.md)" >&2
    return 2
  fi

  status=0
  "$PYTHON" scripts/gpu_check.py "$@" --out "$out" || status=$?
  echo "gpu_check.sh: finished in $((SECONDS - start)) s with exit code $status"
  return $status
}

run_check "$@" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
