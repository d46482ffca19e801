# panelflow: one command to set up and run or test (see README.md).
#   make run   set up, then the stack in the foreground (Ctrl-C stops it)
#   make up    the same in the background; writes .run/env      make down   stops it
#   make test  set up (+ promtool for tests/ops), then ruff, mypy and the whole pytest suite   make lint   ruff + mypy
#   make bench set up, then the benchmark (installs wrk when missing and root)
#   make chaos set up, then the fault-injection run and its audit (CHAOS_SECONDS, CHAOS_SEED; see README.md)
#   make fuzz  set up, then Schemathesis against a fresh api from its /openapi.json (FUZZ_CASES, FUZZ_SEED)
# Set-up = .venv with the locked dependencies (scripts/ensure-venv.sh) + Postgres, RabbitMQ and Redis answering
# at the configured URLs (scripts/ensure-services.sh) + the database migrated + the demo seeded (its account, key,
# catalog and webhook). `make test` also makes sure of the test tools (scripts/ensure-test-tools.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PANELFLOW := $(VENV)/bin/panelflow
# Everything make starts is a development stack: empty encryption-key settings mean the development keys.
# Production (the default of the processes themselves) requires them; see docs/configuration.md.
export PANELFLOW_ENV ?= development

.PHONY: help venv services setup test-tools db run up down test lint bench chaos fuzz

help:
	@sed -n '2,9p' Makefile | sed 's/^# //'

venv:
	@scripts/ensure-venv.sh

services: venv
	@scripts/ensure-services.sh

setup: venv services

test-tools:
	@scripts/ensure-test-tools.sh

db: setup
	@$(PANELFLOW) migrate
	@mkdir -p .run && chmod 700 .run
	@$(PANELFLOW) demo seed --key-file .run/demo-key > .run/demo.env

run: db
	@$(PY) -m shared.cli.stack run

up: db
	@$(PY) -m shared.cli.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m shared.cli.stack down; else echo "stack: not running"; fi

lint: venv
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: setup test-tools lint
	$(VENV)/bin/pytest -q

bench: setup
	@command -v wrk >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "bench: installing wrk with apt-get"; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	    else echo "bench: wrk is missing: sudo apt-get install wrk" >&2; exit 1; fi; }
	$(PY) -m bench.run      # api add and status vs the bare aiohttp ceiling; add vs the one-transaction-per-request peer
	$(PY) -m bench.e2e      # orders end to end through worker and simulator, 1 and 2 workers (issue 3)
	$(PY) -m bench.webhooks # dispatcher deliveries/s and commit-to-receiver latency (issue 4)

# The whole stack on private Postgres/RabbitMQ/Redis instances of its own (never the configured ones), faults
# injected for CHAOS_SECONDS (600) with seed CHAOS_SEED, then the audit: one JSON summary, exit 1 on a broken guarantee.
chaos: setup
	@$(PY) -m chaos

# A fresh api on its own database; Schemathesis' coverage and fuzzing phases, positive and negative, FUZZ_CASES
# (1500) examples per operation and mode, seed FUZZ_SEED: one JSON summary, exit 1 on any failed check.
fuzz: setup
	$(PY) -m fuzz
