# Two commands: `make demo` (set up + run the pipeline on the embedded default) and `make test`.
# The venv is rebuilt only when requirements.txt or pyproject.toml change (hash stamp in .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.au-ttt-installed
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: setup test lint bench clean-venv help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv (if missing or requirements changed) and install au-ttt into it
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(REQ_HASH)" ]; then \
	  echo "venv $(VENV) is up to date ($(REQ_HASH))"; \
	else \
	  set -e; [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q -r requirements.txt; \
	  $(BIN)/python -m pip install -q --no-deps -e .; \
	  echo "$(REQ_HASH)" > $(STAMP); echo "installed into $(VENV) ($(REQ_HASH))"; \
	fi

lint: setup  ## ruff
	$(BIN)/ruff check .

test: setup  ## ruff + the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup  ## speed/memory: AU-TTT ViT-S/16 vs timm ViT-S/16 (writes results/bench/)
	$(BIN)/au-ttt bench

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)
