#!/usr/bin/env bash
# `make demo-train`: the release train on the demo stack. Starts the stack in train mode (the six DWCP
# rollouts of plans/dwcp-12-weeks.toml on an accelerated plan clock, Envoy routing each rollout by path
# prefix to the demo upstreams), a driver in the background (healthy user traffic for every rollout;
# approves every step the plan leaves to a person, saying so in .run/train-driver.log), and shows
# `dwcp-analyzer plan status --watch` until every rollout of the plan has finished or been rolled back
# (or DEMO_TRAIN_SECONDS, default 900, have passed). `make down` stops all of it.
#   scripts/demo-train.sh          run the demo
#   scripts/demo-train.sh driver   the background driver's loop (started by the above)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/dwcp-analyzer
RUN=.run
URL=http://127.0.0.1:8080
ROLLOUTS="manager compression probft bullshark tpbft maddpg"

# Names of plan rollouts whose `waiting` says a person must approve.
waiting_for_approval() {
  curl -sf "$URL/v1/plan" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["rollouts"]:
    if "plan approve" in (r.get("waiting") or ""):
        print(r["name"])'
}

# 0 when every rollout of the plan is done, rolled back, skipped or paused (nothing left to move).
finished() {
  curl -sf "$URL/v1/plan" | python3 -c '
import json, sys
rs = json.load(sys.stdin)["rollouts"]
sys.exit(0 if all(r["state"] in ("done", "rolled_back", "skipped", "paused") for r in rs) else 1)'
}

driver() {
  local round=0
  while true; do
    round=$((round + 1))
    # The same users every round (sticky: each keeps its track while the share does not change).
    for r in $ROLLOUTS; do
      $bin traffic --users 400 --requests-per-user 1 --concurrency 4 --path "/$r" --prefix "$r" \
        >/dev/null 2>&1 || echo "$(date +%T) round $round: traffic to /$r failed (Envoy down?)"
    done
    for r in $(waiting_for_approval || true); do
      echo "$(date +%T) approving $r as the demo operator (a person would: dwcp-analyzer plan approve $r)"
      DWCP_TOKEN=dev-token $bin plan approve "$r" || true
    done
  done
}

run() {
  DWCP_STACK=train ./scripts/stack.sh up
  # The filter's plugin config and the companion's rollouts must agree, and the plan with the config.
  $bin check -c envoy/analyzer-train.toml --plan plans/dwcp-12-weeks.toml \
    --plugin-config "$RUN/envoy-train.yaml" --strict
  if [ -f "$RUN/train-driver.pid" ] && kill -0 "$(cat "$RUN/train-driver.pid")" 2>/dev/null; then
    echo "train driver already running (pid $(cat "$RUN/train-driver.pid"))"
  else
    ( setsid nohup "$0" driver >"$RUN/train-driver.log" 2>&1 & echo $! >"$RUN/train-driver.pid" )
  fi
  if finished; then
    echo "The plan in .run/train.db has already run to its end. Start over with:"
    echo "  make down && rm -f .run/train.db* && make demo-train"
    $bin plan status
    return 0
  fi
  $bin plan status --watch 1 &
  local watch=$! deadline=$((SECONDS + ${DEMO_TRAIN_SECONDS:-900}))
  trap 'kill $watch 2>/dev/null || true' EXIT
  until finished || [ $SECONDS -ge $deadline ]; do sleep 2; done
  kill $watch 2>/dev/null || true
  wait $watch 2>/dev/null || true
  echo
  $bin plan status
  echo
  if finished; then echo "The plan ran to its end."; else echo "Stopped watching after ${DEMO_TRAIN_SECONDS:-900} s; the train goes on."; fi
  echo "Approvals and traffic: .run/train-driver.log. Audit log: $bin events manager. Timeline: $URL/plan"
  echo "Stop everything: make down. Start over: make down && rm -f .run/train.db* && make demo-train"
}

case "${1:-run}" in
  run) run ;;
  driver) driver ;;
  *) echo "usage: $0 [run|driver]" >&2; exit 2 ;;
esac
