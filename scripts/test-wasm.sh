#!/usr/bin/env bash
# Runs dwcp-core's wasm tests compiled to wasm32-unknown-unknown under Node.js (wasm-bindgen-test-runner).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
ver=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! command -v wasm-bindgen-test-runner >/dev/null || ! wasm-bindgen-test-runner --version | grep -q "$ver"; then
  echo "installing wasm-bindgen-cli $ver (one time, ~2 min)"
  cargo install wasm-bindgen-cli --version "$ver"
fi
command -v node >/dev/null || { echo "error: Node.js is required for the wasm tests" >&2; exit 1; }
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p dwcp-core --target wasm32-unknown-unknown --test wasm
