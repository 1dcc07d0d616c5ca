#!/usr/bin/env bash
# Runs the product on free loopback ports (never the demo stack's 8001-8003/8080/9901/10000), sends a
# little traffic through Envoy, and writes OUTDIR/envoy.prom (Envoy /stats/prometheus, i.e. the
# filter's metrics) and OUTDIR/companion.prom (the companion's /metrics). Stops what it started.
# Needs: make wasm, cargo build --release -p dwcp-analyzer --bins, .venv/bin/envoy.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUTDIR}
mkdir -p "$OUT"
ENVOY=${ENVOY_BIN:-.venv/bin/envoy}
BIN=target/release
for f in "$ENVOY" "$BIN/dwcp-analyzer" "$BIN/dwcp-demo-upstream" dist/dwcp_filter.wasm; do
  [ -e "$f" ] || { echo "error: $f missing (make build)" >&2; exit 1; }
done
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
read -r P_ADMIN P_LISTEN P_STABLE P_CANARY P_SHADOW P_COMP < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss]); [s.close() for s in ss]')
wait_port() { # port, log name
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "error: $2 is not listening on port $1:" >&2; tail -5 "$WORK/$2.log" >&2; return 1
}
for t in stable:$P_STABLE canary:$P_CANARY shadow:$P_SHADOW; do
  "$BIN/dwcp-demo-upstream" --name "${t%:*}" --listen "127.0.0.1:${t#*:}" >"$WORK/${t%:*}.log" 2>&1 & PIDS+=($!)
done
cat > "$WORK/analyzer.toml" <<TOML
listen = "127.0.0.1:$P_COMP"
db = "$WORK/analyzer.db"
token = "dev-token"
tick_ms = 200
[[rollout]]
name = "demo"
autostart = true
skip_shadow = true
phase_seconds = 3600
min_requests = 100
TOML
"$BIN/dwcp-analyzer" serve --config "$WORK/analyzer.toml" >"$WORK/analyzer.log" 2>&1 & PIDS+=($!)
sed -e "s/port_value: 9901/port_value: $P_ADMIN/; s/port_value: 10000/port_value: $P_LISTEN/" \
    -e "s/port_value: 8001/port_value: $P_STABLE/; s/port_value: 8002/port_value: $P_CANARY/" \
    -e "s/port_value: 8003/port_value: $P_SHADOW/; s/port_value: 8080/port_value: $P_COMP/" envoy/envoy.yaml > "$WORK/envoy.yaml"
wait_port "$P_STABLE" stable; wait_port "$P_CANARY" canary; wait_port "$P_SHADOW" shadow; wait_port "$P_COMP" analyzer
# setsid: Envoy from PyPI dies with its parent otherwise; its pid is still ours to stop.
setsid "$ENVOY" -c "$WORK/envoy.yaml" --concurrency 1 --base-id $((RANDOM + 2000)) --log-level warn >"$WORK/envoy.log" 2>&1 & PIDS+=($!)
wait_port "$P_LISTEN" envoy
# A few upstream errors, so the error counters exist (the filter creates dwcp_errors_total on the
# first error only).
for p in "$P_STABLE" "$P_CANARY"; do
  curl -sf -o /dev/null -X POST -H 'content-type: application/json' -d '{"error_rate": 0.05}' "http://127.0.0.1:$p/_control"
done
sleep 2  # first sync
for i in $(seq 1 60); do
  curl -s -o /dev/null -H "x-user-id: u$i" "http://127.0.0.1:$P_LISTEN/" || true
  curl -s -o /dev/null -H "x-user-id: b$i" -H "x-beta-opt-in: true" "http://127.0.0.1:$P_LISTEN/" || true
  curl -s -o /dev/null -H "x-user-id: p$i" -H "x-user-tier: premium" "http://127.0.0.1:$P_LISTEN/" || true
done
curl -s -o /dev/null "http://127.0.0.1:$P_LISTEN/" || true   # no key
sleep 2  # one more sync: telemetry reaches the companion
curl -sf "http://127.0.0.1:$P_ADMIN/stats/prometheus" > "$OUT/envoy.prom"
curl -sf "http://127.0.0.1:$P_COMP/metrics" > "$OUT/companion.prom"
echo "scraped $(grep -c '^dwcp_' "$OUT/envoy.prom") dwcp_ series from Envoy, $(grep -c '^dwcp_' "$OUT/companion.prom") from the companion into $OUT"
