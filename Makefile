# nerfprune: `make demo` and `make test` set everything up on a fresh machine.
# The virtual environment is cached outside the clone (see scripts/setup_env.sh).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV_CMD := scripts/setup_env.sh
# Tests and benchmarks share 2 cores between torch and Taichi: same thread count.
export OMP_NUM_THREADS ?= 2
export TI_CPU_MAX_NUM_THREADS ?= 2
# torch's OpenMP workers sleep when idle instead of spinning on the cores Taichi and Rust need next (nerfprune/__init__.py)
export OMP_WAIT_POLICY ?= PASSIVE
export ENABLE_TAICHI_HEADER_PRINT ?= 0

.PHONY: setup demo test test-rust test-python wheel-test bench lint clean gpu-check

setup:
	@$(VENV_CMD) >/dev/null

demo:
	@venv=$$($(VENV_CMD))
	"$$venv/bin/nerfprune" demo $(DEMO_ARGS)

test:
	@venv=$$($(VENV_CMD))
	cargo test -p nerfprune-core --release -q
	"$$venv/bin/python" -m pytest -q $(PYTEST_ARGS)

bench:
	@venv=$$($(VENV_CMD))
	for b in benchmarks/bench_*.py; do echo "== $$b"; "$$venv/bin/python" "$$b"; done

# On the GPU machine (docs/gpu.md): installs the wheels carried in .whl/ and checks kernels, training and
# rendering on CUDA against the CPU; GPU_CHECK_ARGS=--dry-run runs the same on the CPU of this machine.
gpu-check:
	@if [[ " $(GPU_CHECK_ARGS) " == *" --dry-run "* ]]; then export PYTHON="$$($(VENV_CMD))/bin/python"; fi
	scripts/gpu_check.sh --out "$${OUT:-outputs/gpu-check}" $(GPU_CHECK_ARGS)

clean:
	rm -rf target python/nerfprune/_native*.so outputs
