# nerfprune: `make demo` and `make test` set everything up on a fresh machine.
# The virtual environment is cached outside the clone (see scripts/setup_env.sh).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV_CMD := scripts/setup_env.sh
# Tests and benchmarks share 2 cores between torch and Taichi: same thread count.
export OMP_NUM_THREADS ?= 2
export TI_CPU_MAX_NUM_THREADS ?= 2
export ENABLE_TAICHI_HEADER_PRINT ?= 0

.PHONY: setup demo test test-rust test-python wheel-test bench lint clean

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

clean:
	rm -rf target python/nerfprune/_native*.so outputs
