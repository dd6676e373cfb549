# NASWeb — the two commands a person needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The interpreter that creates the venv: python3.11 where there is one.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

.PHONY: help venv demo test test-fast bench lint

help:
	@echo "make demo   start Postgres/Redis if needed, migrate, create the demo user, run web + workers"
	@echo "make test   run the whole pytest suite (installs Chromium when root; starts Postgres/Redis if needed)"
	@echo "make test-fast  the suite without the slow tests (browser, workers, faults, ...): the inner loop"
	@echo "make bench  run bench/run_all.py (QUICK=1 for the short version)"
	@echo "make lint   syntax checks (bash -n, compileall; ruff when installed)"
	@echo "make venv   create .venv and install requirements.txt when it changed"

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when requirements.txt is newer than the stamp.
$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	@touch $(STAMP)

demo: venv
	bash scripts/demo.sh

# Both go through scripts/services.sh, the set-up make demo and .ci/run use too.
# make exits non-zero whenever pytest does (including 5, "no tests collected").
test: venv
	bash scripts/services.sh --browser -- $(PY) -m pytest $(PYTEST_ARGS)

# -m "not slow" exactly: tests/conftest.py then does not even import the slow-only modules.
test-fast: venv
	bash scripts/services.sh -- $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: venv
	@if [ -f bench/run_all.py ]; then \
		$(PY) bench/run_all.py $(if $(QUICK),--quick); \
	else \
		echo "bench/run_all.py does not exist yet; nothing to run"; \
	fi

lint: venv
	@for f in scripts/*.sh .ci/run; do bash -n "$$f" || exit 1; done
	$(PY) -m compileall -q nasweb searches workers tests scripts
	@if $(PY) -m ruff --version >/dev/null 2>&1; then $(PY) -m ruff check .; else echo "ruff not installed; skipped"; fi
