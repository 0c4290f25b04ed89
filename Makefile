# sampan: `make demo` runs the venue on this machine; `make test` runs every check.
# Both install what they need (system packages, .venv, the Kafka jars) and start the local
# stack if it is not running; both are safe to run twice.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_BIN := /usr/lib/postgresql/15/bin

.PHONY: all deps venv stack demo test lint typecheck unit integration fault bench clean stack-down

all: test

# System packages: Java 17+, Maven, PostgreSQL 15 server binaries, Chromium (the browser tests). Installed from Debian when
# missing (CI runs as root); never touched when present.
deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	[ -x $(PG_BIN)/initdb ] || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Drift in an existing topic is reported, not fixed, and does not stop the demo or the tests
# (they run under topic prefixes of their own); `sampan topics apply` exits 1 until it is resolved.
stack: deps venv
	$(BIN)/sampan stack up
	@$(BIN)/sampan topics apply || echo "topics: drift reported above is left for an operator to resolve"

stack-down: venv
	$(BIN)/sampan stack down

demo: stack
	$(BIN)/sampan demo

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q -m "not integration"

integration: stack
	$(BIN)/pytest tests/integration -q -m integration

# The whole-venue fault test alone (it is part of `integration` too); it runs on a private
# stack of its own. SAMPAN_FAULT_SEED=<n> replays another seed.
fault: deps venv
	$(BIN)/pytest tests/integration/fault -q -m fault -s

test: deps venv lint typecheck unit integration

bench: stack
	$(BIN)/sampan bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
