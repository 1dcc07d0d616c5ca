#!/usr/bin/env bash
# Start / stop the local stack: demo upstreams (stable 8001, canary 8002, shadow 8003), the companion
# (8080) and Envoy (10000, admin 9901). Logs and pids in .run/.
# DWCP_STACK=train: the release-train demo's stack instead (`make demo-train`): the companion runs
# envoy/analyzer-train.toml (the six DWCP rollouts and the plan) and Envoy routes the six rollouts by
# path prefix (/manager, /compression, ...), its config derived from envoy/envoy.yaml into .run/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.run
BIN=target/release
ENVOY=${ENVOY:-.venv/bin/envoy}
mkdir -p "$RUN"

wait_port() { # host:port, name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $2 did not start on $1 (see $RUN/$2.log)" >&2; return 1
}

start() { # name, command...
  local name=$1; shift
  if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0
  fi
  # Double fork: Envoy from PyPI dies with its parent (parent-death signal), so its parent must be a
  # subshell that exits at once, leaving it re-parented to init.
  ( setsid nohup "$@" >"$RUN/$name.log" 2>&1 & echo $! >"$RUN/$name.pid" )
}

# envoy/envoy.yaml with the train demo's rollouts in the filter's plugin config (one per path prefix).
train_envoy_config() {
  python3 - "$RUN/envoy-train.yaml" <<'PY'
import json, re, sys
names = ["manager", "compression", "probft", "bullshark", "tpbft", "maddpg"]
rollouts = [{"name": n, "hosts": ["*"], "path_prefix": f"/{n}", "shadow_cluster": "shadow",
             "noise_cluster": "stable"} for n in names]
text = open("envoy/envoy.yaml").read()
line = re.compile(r'^(\s*)"rollouts": \[.*\]$', re.M)
assert len(line.findall(text)) == 1, "envoy/envoy.yaml: expected one rollouts line in the plugin config"
text = line.sub(lambda m: m.group(1) + '"rollouts": ' + json.dumps(rollouts), text)
open(sys.argv[1], "w").write(text)
PY
}

up() {
  local mode=${DWCP_STACK:-demo} config=envoy/analyzer.toml envoy_config=envoy/envoy.yaml
  # One stack at a time on these ports: stop one of the other kind first.
  if [ -f "$RUN/stack.mode" ] && [ "$(cat "$RUN/stack.mode")" != "$mode" ]; then down; fi
  if [ "$mode" = train ]; then
    config=envoy/analyzer-train.toml envoy_config=$RUN/envoy-train.yaml
    train_envoy_config
  fi
  echo "$mode" >"$RUN/stack.mode"
  start stable "$BIN/dwcp-demo-upstream" --name stable --listen 127.0.0.1:8001
  start canary "$BIN/dwcp-demo-upstream" --name canary --listen 127.0.0.1:8002
  start shadow "$BIN/dwcp-demo-upstream" --name shadow --listen 127.0.0.1:8003
  start analyzer "$BIN/dwcp-analyzer" serve --config "$config"
  wait_port 127.0.0.1:8001 stable; wait_port 127.0.0.1:8002 canary; wait_port 127.0.0.1:8003 shadow
  wait_port 127.0.0.1:8080 analyzer
  start envoy "$ENVOY" -c "$envoy_config" --concurrency 2 --log-level warn
  wait_port 127.0.0.1:10000 envoy
}

down() {
  for name in train-driver envoy analyzer stable canary shadow; do
    if [ -f "$RUN/$name.pid" ]; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
  rm -f "$RUN/stack.mode"
  echo "stack stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
