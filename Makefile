# Two commands: `make demo` (set up + run the pipeline on the embedded default) and `make test`.
# The venv is rebuilt only when requirements.txt or pyproject.toml change (hash stamp in .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.au-ttt-installed
REQ_HASH := $(shell cat requirements.txt requirements-predict.txt pyproject.toml | sha256sum | cut -c1-16)
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: setup test test-slurm lint bench demo dag lint-workflow mlflow-ui dvc-repro clean-results clean-venv help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv (if missing or requirements changed) and install au-ttt into it
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(REQ_HASH)" ]; then \
	  echo "venv $(VENV) is up to date ($(REQ_HASH))"; \
	else \
	  set -e; [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q -r requirements.txt; \
	  $(BIN)/python -m pip install -q --no-deps -r requirements-predict.txt; \
	  $(BIN)/python -m pip install -q --no-deps -e .; \
	  echo "$(REQ_HASH)" > $(STAMP); echo "installed into $(VENV) ($(REQ_HASH))"; \
	fi

lint: setup  ## ruff
	$(BIN)/ruff check .

test: setup  ## ruff + the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

demo: setup  ## run the whole DAG on the embedded SynthAU default (tables, figure, report in results/)
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores 2 all && \
	echo "demo finished in $$(( $$(date +%s) - start )) s: see results/REPORT.md"

dag: setup  ## draw the job graph to results/dag.png (needs graphviz `dot`)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --rulegraph all | dot -Tpng > results/dag.png

lint-workflow: setup  ## snakemake --lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

mlflow-ui: setup  ## browse the tracked runs at http://127.0.0.1:5000
	$(BIN)/au-ttt mlflow-ui --config config/config.yaml

dvc-repro: setup  ## regenerate everything through DVC (dvc.yaml delegates to Snakemake)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

clean-results:  ## delete generated data and results (keeps results/bench)
	rm -rf data/synthau results/data results/pretrain results/runs results/cross results/tables results/figures \
	  results/REPORT.md results/logs results/config results/mlflow .snakemake

bench: setup  ## speed/memory: AU-TTT ViT-S/16 vs timm ViT-S/16 (writes results/bench/)
	$(BIN)/au-ttt bench

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)

test-slurm: setup  ## bring up a one-node Slurm (root; Debian packages) and run the tiny DAG through it vs locally
	scripts/slurm-up.sh
	$(BIN)/python -m pytest -m "slurm_full or not slurm_full" tests/test_slurm.py -v
