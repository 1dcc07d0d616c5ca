#!/usr/bin/env bash
# Loads every WasmPlugin's pluginConfig into the real filter: the built module in a real Envoy
# (`envoy --mode validate` runs the filter's on_configure), via a copy of envoy/envoy.yaml. Also proves
# the check bites: the same config plus one unknown field must be refused.
# Usage: scripts/check-plugin-config.sh [WASMPLUGIN.yaml...]   (default: every WasmPlugin under istio/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/artifact-tools/ensure.sh
ENVOY=${ENVOY_BIN:-$ROOT/.venv/bin/envoy}
[ -x "$ENVOY" ] || { echo "error: no envoy at $ENVOY (make setup)" >&2; exit 1; }
[ -f dist/dwcp_filter.wasm ] || { echo "error: dist/dwcp_filter.wasm missing (make wasm)" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
if [ $# -eq 0 ]; then set -- $(grep -rl --include='*.yaml' '^kind: WasmPlugin' istio | grep -v /testdata/ | sort); fi
fail=0
for wp in "$@"; do
  out=$TMP/$(basename "$wp" .yaml).envoy.yaml
  "$TOOLS_PY" scripts/artifact-tools/wasmplugin-envoy-config.py "$wp" > "$out"
  if log=$("$ENVOY" --mode validate -c "$out" --base-id $((RANDOM + 1000)) 2>&1) && grep -q "dwcp: configured" <<<"$log"; then
    echo "ok   $wp: pluginConfig accepted by the filter: $(grep -o 'dwcp: configured.*' <<<"$log" | head -1)"
  else
    echo "FAIL $wp: pluginConfig refused"; grep -E 'rejected|error|critical' <<<"$log" | head -5; fail=1
  fi
  "$TOOLS_PY" scripts/artifact-tools/wasmplugin-envoy-config.py "$wp" --break > "$TMP/$(basename "$wp" .yaml).broken.envoy.yaml"
  rc=0; log=$("$ENVOY" --mode validate -c "$TMP/$(basename "$wp" .yaml).broken.envoy.yaml" --base-id $((RANDOM + 1000)) 2>&1) || rc=$?
  # "Failed to configure base Wasm plugin" is Envoy's word that on_configure returned false; the
  # filter's own log line (with the field) is printed when Envoy flushed it before exiting.
  if [ $rc -ne 0 ] && grep -Eq "plugin config rejected|Failed to configure base Wasm plugin" <<<"$log"; then
    why=$(grep -Eo "plugin config rejected: [^,]*|Failed to configure base Wasm plugin" <<<"$log" | head -1)
    echo "ok   $wp + unknown field: refused, envoy exit $rc ($why)"
  else
    echo "FAIL $wp: a pluginConfig with an unknown field was NOT refused (envoy exit $rc): the check proves nothing"; grep -E "critical|error" <<<"$log" | head -3; fail=1
  fi
done
# The test-only switch: the shipped module refuses a config that sets test_panic_header; the e2e's
# test-hooks build (dist/dwcp_filter_test.wasm, never shipped) accepts it.
wp=$1
"$TOOLS_PY" scripts/artifact-tools/wasmplugin-envoy-config.py "$wp" --test-panic > "$TMP/panic.envoy.yaml"
rc=0; log=$("$ENVOY" --mode validate -c "$TMP/panic.envoy.yaml" --base-id $((RANDOM + 1000)) 2>&1) || rc=$?
if [ $rc -ne 0 ] && grep -Eq "plugin config rejected|Failed to configure base Wasm plugin" <<<"$log"; then
  echo "ok   $wp + test_panic_header: refused by the shipped module, envoy exit $rc"
else
  echo "FAIL $wp + test_panic_header: the shipped module accepted a test-only switch (envoy exit $rc)"; fail=1
fi
if [ -f dist/dwcp_filter_test.wasm ]; then
  sed "s#dist/dwcp_filter.wasm#$ROOT/dist/dwcp_filter_test.wasm#" "$TMP/panic.envoy.yaml" > "$TMP/panic-test.envoy.yaml"
  if log=$("$ENVOY" --mode validate -c "$TMP/panic-test.envoy.yaml" --base-id $((RANDOM + 1000)) 2>&1) && grep -q "dwcp: configured" <<<"$log"; then
    echo "ok   $wp + test_panic_header: accepted by the test-hooks build (e2e only)"
  else
    echo "FAIL $wp + test_panic_header: the test-hooks build refused it"; grep -E 'rejected|error' <<<"$log" | head -3; fail=1
  fi
fi
exit $fail
