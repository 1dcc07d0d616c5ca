#!/usr/bin/env bash
# The traffic part of `make demo`: feed the shadow phase until the companion promotes the rollout to live
# traffic (1 %), then show the split per segment and the status table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/dwcp-analyzer
phase() { curl -s http://127.0.0.1:8080/v1/rollouts/demo | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])'; }
field() { curl -s http://127.0.0.1:8080/v1/rollouts/demo | python3 -c "import json,sys; r=json.load(sys.stdin); print($1)"; }
status=$(field 'r["status"]')
case "$status" in
  succeeded|rolled_back)
    echo "rollout 'demo' has already $( [ "$status" = succeeded ] && echo 'finished (100 % canary)' || echo 'been rolled back (everyone on stable)' ) in a previous run:"
    echo "its state is kept in .run/analyzer.db. Start over with:  make demo-reset && make demo"
    [ "$status" = rolled_back ] && echo "  (or restart its ladder: DWCP_TOKEN=dev-token $bin resume demo)"
    echo ;;
esac
p=$(phase)
if [ "$p" = shadow ]; then
  echo "rollout 'demo' is in the shadow phase: mirroring traffic to the shadow upstream and comparing answers…"
  for _ in $(seq 1 60); do
    $bin traffic --users 200 --requests-per-user 1 --prefix warm >/dev/null
    p=$(phase); [ "$p" != shadow ] && break
    sleep 1
  done
  echo "shadow phase judged: now in phase $p"
  # Every Envoy worker adopts the new state on its next sync (1 s): wait for that before measuring the
  # split, so that the shares printed below are the new phase's.
  v=$(curl -s http://127.0.0.1:8080/v1/rollouts | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
  for _ in $(seq 1 50); do
    curl -s 'http://127.0.0.1:9901/stats?filter=dwcp_state_version' | grep -q ": $v\$" && break
    sleep 0.2
  done
  sleep 1.2
fi
# Requests the companion has counted in this phase, so the status printed below includes this traffic.
counted() { field 'r["stable"]["requests"] + r["canary"]["requests"]'; }
before=$(counted)
$bin traffic --users 2000 --requests-per-user 2
# Filters ship their counts every second: wait until the companion has this traffic (or 5 s).
for _ in $(seq 1 25); do
  [ "$(counted)" -ge $((before + 4000)) ] && break
  sleep 0.2
done
$bin status
