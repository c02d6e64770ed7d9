# Two commands for a fresh machine:  make demo  (embedded default)  and  make test  (test suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CORES ?= 2
# GPUs of this machine (CUDA_VISIBLE_DEVICES's entries, else nvidia-smi's list; 0 without): local
# GPU jobs take one device each (docs/cluster.md, "Several GPUs on one machine"), so Snakemake
# must run at most that many at once: --resources gpu=$(GPUS).
GPUS ?= $(shell if [ -n "$${CUDA_VISIBLE_DEVICES+x}" ]; then echo "$$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .; else nvidia-smi -L 2>/dev/null | grep -c '^GPU'; fi)
GPU_FLAGS := $(if $(filter-out 0,$(GPUS)),--resources gpu=$(GPUS))

.PHONY: venv demo test test-fast lint format bench clean-results

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CUDA build of torch 2.14.1 / torchvision 0.29.1 (taken from the local disk where available).
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet --editable '.[workflow,dev]'
	touch $(STAMP)

venv: $(STAMP)

## make demo: run the embedded default (digits: two MLPs and a BatchNorm CNN, ten minima each) on $(CORES) cores.
demo: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) $(GPU_FLAGS) --rerun-incomplete
	@echo "Table B.1: results/table_b1.md   figures: results/figures/"

# The suite runs on $(CORES) + 2 pytest workers, one test file per worker at a time (--dist
# loadfile): a file's fixtures (the SLURM cluster, the stages' chain) are built once, and the
# finished tiny run once for all workers (tests/conftest.py). Two workers more than cores: the
# four files that run whole workflows start at once, each on a worker of its own (the live SLURM
# test mostly waits on the scheduler); the longest first, in tests/conftest.py's order
# (--no-loadscope-reorder). docs/design.md, "Tests".
PYTEST_WORKERS := -n $(shell echo $$(( $(CORES) + 2 ))) --dist loadfile --no-loadscope-reorder

## make test: unit tests, the end-to-end workflow run and the live-SLURM run.
test: $(STAMP)
	$(PY) -m pytest -ra --durations=15 $(PYTEST_WORKERS)

test-fast: $(STAMP)
	$(PY) -m pytest -ra $(PYTEST_WORKERS) -m "not slow and not slurm"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests workflow benchmarks examples
	$(VENV)/bin/ruff format --check src tests workflow benchmarks examples
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/snakemake --lint --cores 1

format: $(STAMP)
	$(VENV)/bin/ruff format src tests workflow benchmarks examples
	$(VENV)/bin/snakefmt Snakefile rules

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean-results:
	rm -rf results/* .snakemake
