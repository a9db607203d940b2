# tango-operator — every target bootstraps what it needs (virtualenv, packages, tools).
# `make help` lists the targets, grouped by purpose.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the edit-test loop: unit tests, the Kubernetes API tier against kubeemu, and the fast
# integration tests (everything not marked slow)
FAST_TIERS := tests/unit tests/kubeapi tests/integration
# test-fast's pytest-xdist workers: its tests mostly wait on subprocesses (kubeemu,
# redis-server, workers), so more workers than the 2 cores; every fixture starts on free ports
FAST_WORKERS ?= 4

export PATH := $(CURDIR)/$(TOOLS):$(PATH)

# `make help` prints the targets under the `##@ group` headings below, each with its `## text`.
.PHONY: help
help: ## Show this help, grouped by purpose
	@awk 'BEGIN {FS = ":.*## "} \
	  /^##@ / {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} \
	  /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Run

# the demo's Kubernetes API: kubeemu (no build) or real (builds the control plane first)
API ?= kubeemu
DEMO_BUILDS := $(if $(filter real,$(API)),controlplane)

.PHONY: demo
demo: venv cli-tools system-deps $(DEMO_BUILDS) ## The operator on its local stack with helm/samples, on kubeemu; API=real: on a real kube-apiserver (Ctrl-C stops it)
	$(BIN)/python -m devstack demo --api $(API) $(DEMO_ARGS)

.PHONY: emulator
emulator: venv cli-tools ## Run kubeemu on a free port and write .cache/kubeconfig (Ctrl-C stops it)
	@mkdir -p .cache
	$(BIN)/python -m kubeemu --port 0 --kubeconfig .cache/kubeconfig

##@ Test

.PHONY: test
test: venv tools system-deps ## The whole test suite (kubeemu's own, then every tier on kubeemu and the real control plane); prints the 20 slowest
	cd kubeemu && ../$(BIN)/pytest -q
	$(BIN)/pytest --durations=20 $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: venv cli-tools system-deps ## The edit-test loop: unit, Kubernetes API and fast integration tests, on kubeemu only, 4 xdist workers (no Go build; under 2 minutes)
	cd kubeemu && ../$(BIN)/pytest -q -x
	$(BIN)/pytest -m "not slow" --kube-api=kubeemu --durations=10 -n $(FAST_WORKERS) --dist worksteal $(FAST_TIERS) $(PYTEST_ARGS)

# `make soak SOAK_ARGS=--api real` runs it on the real control plane (built first)
SOAK_BUILDS := $(if $(findstring real,$(SOAK_ARGS)),controlplane)

.PHONY: soak
soak: venv system-deps $(SOAK_BUILDS) ## Fault soak: 500 DeviceServers through API faults, kills, a Redis flush, a leader kill, a TANGO outage, on kubeemu (SOAK_ARGS=--api real: kube-apiserver) (minutes; updates docs/benchmarks.md)
	$(BIN)/python -m tests.soak.soak $(SOAK_ARGS)

.PHONY: soak-tango
soak-tango: venv system-deps ## Soak on real TANGO: PyTango DataBaseds (SIGSTOPped) and servers through API faults and kills (minutes; updates docs/benchmarks.md)
	$(BIN)/python -m tests.soak.tango_real

.PHONY: test-under-load
test-under-load: venv tools system-deps ## make test RUNS times (3) in a row beside HOGS busy-looping processes (1); stops at the first failure
	scripts/test-under-load.sh $(or $(RUNS),3) $(or $(HOGS),1)

##@ Benchmark

.PHONY: bench
bench: venv cli-tools system-deps ## Every benchmark (minutes; prints tables, updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_reconcile $(BENCH_ARGS)
	$(BIN)/python -m tests.bench.bench_tango $(BENCH_TANGO_ARGS)
	$(BIN)/python -m tests.bench.bench_wakeup $(BENCH_WAKEUP_ARGS)
	$(BIN)/python -m tests.bench.bench_fairness $(BENCH_FAIRNESS_ARGS)
	$(BIN)/python -m tests.bench.bench_memory $(BENCH_MEMORY_ARGS)
	$(BIN)/python -m tests.bench.bench_faults $(BENCH_FAULTS_ARGS)
	$(BIN)/python -m tests.bench.bench_kubeemu $(BENCH_KUBEEMU_ARGS)
	$(BIN)/python -m tests.bench.bench_queue_scripts $(BENCH_SCRIPTS_ARGS)
	$(BIN)/python -m tests.bench.profile_reconcile $(BENCH_PROFILE_ARGS)

.PHONY: bench-faults
bench-faults: venv cli-tools system-deps ## 100 CRs converging under API faults (5xx, 429, jitter, dropped watches), retries on vs off
	$(BIN)/python -m tests.bench.bench_faults $(BENCH_FAULTS_ARGS)

.PHONY: bench-memory
bench-memory: venv cli-tools system-deps ## Resident memory with 2,000 and 10,000 reconciled DeviceServers, beside kopf
	$(BIN)/python -m tests.bench.bench_memory $(BENCH_MEMORY_ARGS)

.PHONY: bench-fairness
bench-fairness: venv cli-tools system-deps ## A flood of 2,000 CRs vs one late CR in another namespace, fair vs FIFO dispatch
	$(BIN)/python -m tests.bench.bench_fairness $(BENCH_FAIRNESS_ARGS)

.PHONY: bench-wakeup
bench-wakeup: venv cli-tools system-deps ## Dependency wake-up latency, chains of depth 1/3/10, vs the legacy flow's model
	$(BIN)/python -m tests.bench.bench_wakeup $(BENCH_WAKEUP_ARGS)

.PHONY: bench-profile
bench-profile: venv cli-tools system-deps ## Where a reconcile's CPU goes, tango-operator beside kopf, sampled by py-spy (a minute; updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.profile_reconcile $(BENCH_PROFILE_ARGS)

.PHONY: bench-scripts
bench-scripts: venv system-deps ## redis-server's time and the caller's CPU per call of the queue's scripts, beside a plain GET (seconds; updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_queue_scripts $(BENCH_SCRIPTS_ARGS)

.PHONY: bench-kubeemu
bench-kubeemu: venv ## kubeemu's CPU ms per request under the operator's request mix (a minute; updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_kubeemu $(BENCH_KUBEEMU_ARGS)

.PHONY: bench-tango
bench-tango: venv system-deps ## TANGO dependency checks/s, cache on vs off (updates docs/benchmarks.md)
	$(BIN)/python -m tests.bench.bench_tango $(BENCH_TANGO_ARGS)

##@ Code quality

.PHONY: lint
lint: venv ## ruff (style, docstrings, complexity), mypy --strict and the import contracts; CI runs it
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd kubeemu && ../$(BIN)/mypy && ../$(BIN)/lint-imports

.PHONY: format
format: venv ## Apply ruff's formatter and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

##@ Set-up

$(STAMP): pyproject.toml kubeemu/pyproject.toml
	@scripts/bootstrap-python.sh "$(PYTHON)" "$(VENV)"
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project, kubeemu and the dev tools into it

.PHONY: tools
tools: cli-tools controlplane ## The client binaries and the control plane the tests use (both below)

.PHONY: cli-tools
cli-tools: ## Fetch kubectl 1.31 and helm 3.17 into .tools/bin (pinned, verified)
	@scripts/fetch-tools.sh

.PHONY: controlplane
controlplane: ## Build kube-apiserver, kube-controller-manager, kube-scheduler 1.32 and etcd into .tools/controlplane (Go; minutes cold, seconds warm)
	@scripts/build-controlplane.sh

.PHONY: system-deps
system-deps: ## Install the programs the tests start themselves (redis-server, TANGO, MariaDB), or say how
	@scripts/system-deps.sh

.PHONY: wheel
wheel: venv ## Build the operator's wheel into dist/ (no kubeemu, no devstack in it)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --wheel-dir dist .

.PHONY: images
images: ## Build the watcher, worker and flower images with docker or podman (REGISTRY=, TAG=, PUSH=1 pushes)
	scripts/build-images.sh

.PHONY: clean
clean: ## Remove caches and build output (keeps .venv and .tools)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache build dist
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove caches, .venv and .tools
	rm -rf $(VENV) .tools
