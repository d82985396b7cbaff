# surge — the two commands a newcomer needs are `make demo` and `make test`; `make help` lists the rest.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help demo test unit integration e2e chaos lint audit typecheck bench bench-ray clean services

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev,postgres]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed  ## install surge and run examples/hello.py on the embedded platform
	$(VENV)/bin/surge run examples/hello.py

test: $(STAMP) services  ## install dev dependencies and run the whole test suite
	$(PY) -m pytest -q

unit: $(STAMP)  ## only the pure-logic unit tests
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) services  ## SDK → control plane in-process, stores on SQLite and PostgreSQL
	$(PY) -m pytest -q tests/integration

e2e: $(STAMP)  ## real processes: embedded server, workers, CLI
	$(PY) -m pytest -q tests/e2e

chaos: $(STAMP) services  ## the chaos suite at full size (long; SURGE_CHAOS_SEED=N replays a run)
	SURGE_CHAOS_SCALE=full $(PY) -m pytest -q tests/chaos

lint: $(STAMP)  ## ruff, mypy (strict), bandit (high severity) and pip-audit (SKIP_AUDIT=1 skips it, saying so)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -q -r src -lll
ifeq ($(SKIP_AUDIT),1)
	@echo "pip-audit: SKIPPED (SKIP_AUDIT=1): dependencies were not checked for known vulnerabilities"
else
	$(PY) scripts/audit.py
endif

audit: $(STAMP)  ## known vulnerabilities in the installed dependencies (fails if it cannot check)
	$(PY) scripts/audit.py

services:  ## start the local PostgreSQL if it is installed and down
	@bash scripts/services.sh

bench: $(STAMP)  ## benchmarks (adds Ray as the peer when the [ray] extra is installed)
	$(PY) benchmarks/run_all.py

bench-ray: $(STAMP)  ## install the [ray] extra, then run the benchmarks beside Ray
	$(PIP) install -q -e '.[dev,postgres,ray]'
	$(PY) benchmarks/run_all.py

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
