# ferroq — `make help` lists the targets. Everything runs inside .venv, created on first use.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: help
help: ## Show this help
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(BIN)/maturin:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "maturin>=1.7,<2"

.PHONY: dev
dev: $(BIN)/maturin ## Build the Rust core (release) into .venv with the test extras
	$(BIN)/maturin develop --release --quiet --extras test

.PHONY: demo
demo: dev ## Run the demo: a periodic producer, a client and a server process (embedded Redis unless REDIS_URL is set)
	$(BIN)/ferroq demo

.PHONY: lint
lint: dev ## cargo fmt/clippy, ruff, mypy --strict and stubtest
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(BIN)/ruff check python tests bench tools examples
	$(BIN)/ruff format --check python tests bench tools examples
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest ferroq._native

.PHONY: test
test: lint ## Every check and test: lints, Rust tests, pytest on Redis and Valkey, the fault suite, `pip install .`
	cargo test --quiet
	$(BIN)/python -m pytest -q --ignore=tests/chaos
	$(MAKE) --no-print-directory chaos
	$(MAKE) --no-print-directory package-check

.PHONY: mutants
mutants: dev ## Mutation testing (~24 min): cargo-mutants on the core's decision code, then the Lua scripts; lists survivors (STRICT=1 fails on them)
	BIN=$(BIN) tools/mutants/run.sh

.PHONY: chaos
chaos: dev ## The fault suite (~2 min): killed workers, killed and stalled Redis, orphans, a broken queue, killed schedulers
	$(BIN)/python -m pytest -q -s tests/chaos

.PHONY: package-check
package-check: ## `pip install .` into a fresh virtualenv works: the wheel imports and the CLI runs
	rm -rf target/package-check
	$(PYTHON) -m venv target/package-check
	target/package-check/bin/pip install --quiet .
	cd target && package-check/bin/python -c "import ferroq, ferroq._native as n; print('wheel ok:', ferroq.__version__, n.__file__)"
	target/package-check/bin/ferroq --help >/dev/null

.PHONY: bench
bench: dev ## The whole benchmark suite (~14 min): micro-benchmarks, ferroq vs the peers (bench/RESULTS.md), the scale run
	$(BIN)/python -m pytest bench -q --benchmark-enable --benchmark-only
	$(BIN)/python bench/peers/run.py --tasks 10000 --runs 3
	$(BIN)/python bench/scale.py

.PHONY: bench-smoke
bench-smoke: dev ## A short run of the peer suite (500 tasks, ferroq, Huey, RQ, Go asynq; every scenario): fails if any part fails
	$(BIN)/python bench/peers/run.py --smoke

.PHONY: bench-compare
bench-compare: dev ## Before/after table: commit REV (built beside, cached) against this tree, one run, one Redis
	$(BIN)/python bench/compare.py --before-rev $(or $(REV),HEAD) --after $(BIN)/python --rounds $(or $(ROUNDS),5)

.PHONY: bench-scrape
bench-scrape: dev ## What a Prometheus scrape of 100 queues costs (with and without memory sampling)
	cd bench && ../$(BIN)/python scrape.py --queues 100

.PHONY: bench-processes
bench-processes: dev ## Every core (~6 min): `ferroq worker --processes 2` beside one process, Dramatiq 2 processes and Celery prefork 2, CPU-bound and no-op tasks
	$(BIN)/python bench/peers/run.py --only ferroq,ferroq-2proc,dramatiq-2proc,celery-prefork2 --scenarios cpu,simple --tasks 20000 --runs 3 --skip-ferroq --output bench/processes.md

.PHONY: bench-processes-cpu
bench-processes-cpu: dev ## Where the CPU goes (~4 min): no-op tasks on 1 and 2 worker processes, with and without reply polling
	$(BIN)/python bench/processes_cpu.py --tasks 200000 --rounds 5 --config 1 --config 2 --config 1:FERROQ_SPIN_US=0 --config 2:FERROQ_SPIN_US=0 > bench/processes-cpu.md

.PHONY: bench-scaleout
bench-scaleout: dev ## Scale-out costs (~4 min): durable mode, declared keys and a 3+3 Redis Cluster against one Redis
	$(BIN)/python bench/scaleout.py --tasks 20000 --runs 3

.PHONY: bench-codec
bench-codec: dev ## Task-function codecs side by side: stdlib json, orjson, msgspec JSON and msgpack
	$(BIN)/python bench/codec.py --calls 50000 --rounds 5

.PHONY: bench-asyncio
bench-asyncio: dev ## Enqueueing from 50 coroutines: ferroq's AsyncClient beside arq, SAQ and taskiq (rate and loop lag)
	cd bench/peers && ../../$(BIN)/python asyncio_run.py --seconds 5 --runs 3

.PHONY: bench-scale
bench-scale: dev ## Scale run: a 1,000,000-task backlog, 100 queues, worker memory
	$(BIN)/python bench/scale.py

.PHONY: profile
profile: dev ## py-spy profiles of the sync, async and enqueue paths, with Redis's per-command cost
	$(BIN)/pip install --quiet "py-spy>=0.4"
	$(BIN)/python bench/profile.py sync
	$(BIN)/python bench/profile.py async
	$(BIN)/python bench/profile.py enqueue --tasks 30000

.PHONY: clean
clean: ## Remove build outputs and the virtualenv
	rm -rf target $(VENV) python/ferroq/*.so .pytest_cache .mypy_cache .ruff_cache
