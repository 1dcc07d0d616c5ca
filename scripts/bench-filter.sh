#!/usr/bin/env bash
# make bench-filter: see bench/bench_filter.py. ROUNDS=5 DURATION=8s by default.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench_filter.py
