#!/usr/bin/env bash
# Create or reuse nerfprune's virtual environment and build the extension.
#
# The environment lives outside the clone (~/.cache/nerfprune/venv-<hash>), keyed
# on the hash of requirements-dev.txt and the Python version, so a fresh clone
# reuses it and a changed dependency spec gets a new one. Torch is installed once
# per key; afterwards this script only rebuilds the Rust extension (seconds: the cargo build folder
# is shared as well).
# Prints the venv path as its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (cat requirements-dev.txt; echo "$pyver") | sha256sum | cut -c1-12)"
venv="${NERFPRUNE_VENV:-$HOME/.cache/nerfprune/venv-$key}"

if [ ! -f "$venv/.nerfprune-ready" ]; then
  echo "setup: creating $venv (first time for this dependency spec; torch is large)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r requirements-dev.txt >&2
  touch "$venv/.nerfprune-ready"
fi

# Build the Rust extension in release mode and install the package in editable
# mode into the venv (dependencies are already satisfied, so pip only links the package).
# Cargo's build folder is shared by every clone too (cargo locks it while it builds), so a fresh clone
# recompiles only nerfprune's own two crates, not its dependencies (~50 s of a fresh clone's `make demo`).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nerfprune/cargo-target}"
profile="${NERFPRUNE_BUILD_PROFILE:---release}"
log="$(mktemp)"
if ! VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop $profile >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; echo "setup: building the Rust extension failed (log above)" >&2; exit 1
fi
rm -f "$log"
echo "$venv"
