# tango-operator — every target bootstraps what it needs (virtualenv, packages, tools).
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(TOOLS):$(PATH)

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@scripts/bootstrap-python.sh "$(PYTHON)" "$(VENV)"
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project with its dev extras

.PHONY: tools
tools: ## Fetch kubectl 1.31 and helm 3.17 into .tools/bin (pinned, verified)
	@scripts/fetch-tools.sh

.PHONY: system-deps
system-deps: ## Install the programs the tests start themselves (redis-server), or say how
	@scripts/system-deps.sh

.PHONY: test
test: venv tools system-deps ## Run the whole test suite (unit, contract, integration, e2e)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: bench
bench: venv tools system-deps ## Benchmarks (minutes; prints tables, updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_reconcile $(BENCH_ARGS)
	$(BIN)/python -m tests.bench.bench_tango $(BENCH_TANGO_ARGS)
	$(BIN)/python -m tests.bench.bench_wakeup $(BENCH_WAKEUP_ARGS)
	$(BIN)/python -m tests.bench.bench_fairness $(BENCH_FAIRNESS_ARGS)

.PHONY: soak
soak: venv system-deps ## Fault soak: 500 DeviceServers through API faults, kills, a Redis flush, a leader kill, a TANGO outage (minutes; updates docs/benchmarks.md)
	$(BIN)/python -m tests.soak.soak $(SOAK_ARGS)

.PHONY: bench-fairness
bench-fairness: venv tools system-deps ## A flood of 2,000 CRs vs one late CR in another namespace, fair vs FIFO dispatch
	$(BIN)/python -m tests.bench.bench_fairness $(BENCH_FAIRNESS_ARGS)

.PHONY: bench-wakeup
bench-wakeup: venv tools system-deps ## Dependency wake-up latency, chains of depth 1/3/10, vs the legacy flow's model
	$(BIN)/python -m tests.bench.bench_wakeup $(BENCH_WAKEUP_ARGS)

.PHONY: bench-tango
bench-tango: venv system-deps ## TANGO dependency checks/s, cache on vs off (updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_tango $(BENCH_TANGO_ARGS)

.PHONY: lint
lint: venv ## ruff, mypy --strict and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: format
format: venv ## Apply ruff's formatter and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: emulator
emulator: venv tools ## Run kubeemu on a free port and write .cache/kubeconfig (Ctrl-C stops it)
	@mkdir -p .cache
	$(BIN)/python -m kubeemu --port 0 --kubeconfig .cache/kubeconfig

.PHONY: demo
demo: venv tools system-deps ## The operator on its embedded local stack with helm/samples (Ctrl-C stops it)
	$(BIN)/python -m devstack demo $(DEMO_ARGS)

.PHONY: clean
clean: ## Remove caches (keeps .venv and .tools)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove caches, .venv and .tools
	rm -rf $(VENV) .tools
