#!/usr/bin/env bash
# Every metric name queried by the alert rules (monitoring/rules) and the Grafana dashboards
# (monitoring/dashboards) must be emitted by the product: the filter's Envoy (/stats/prometheus) or the
# companion (/metrics). Names come from a real PromQL parse (scripts/artifact-tools/metric-names.mjs).
#
#   scripts/check-dashboard-metrics.sh ENVOY_SCRAPE COMPANION_SCRAPE
#       compare against scrape files (the e2e run feeds its own)
#   scripts/check-dashboard-metrics.sh
#       scrape a stack of our own first (scripts/scrape-metrics.sh: the built module in a real Envoy,
#       the companion and the demo upstreams on free loopback ports, some traffic), then compare.
# Allowed besides the scrapes: names recorded by our own recording rules, and `up` (made by Prometheus).
# Before the scrapes: every dwcp_ name used must be in monitoring/names.json (the product's one list of
# names, `dwcp-analyzer names`, kept current by a core test), and every companion metric of that list
# must be in the companion's scrape (its HELP/TYPE lines are always rendered).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/artifact-tools/ensure.sh
if [ $# -eq 0 ]; then
  SCRAPES=$(mktemp -d); trap 'rm -rf "$SCRAPES"' EXIT
  scripts/scrape-metrics.sh "$SCRAPES"
  set -- "$SCRAPES/envoy.prom" "$SCRAPES/companion.prom"
fi
[ $# -eq 2 ] || { echo "usage: $0 [ENVOY_SCRAPE COMPANION_SCRAPE]" >&2; exit 64; }
node scripts/artifact-tools/metric-names.mjs monitoring/rules/*.yaml monitoring/dashboards/*.json > "${TMPDIR:-/tmp}/dwcp-metric-uses.$$.json"
"$TOOLS_PY" - "$1" "$2" "${TMPDIR:-/tmp}/dwcp-metric-uses.$$.json" monitoring/names.json <<'PY'
import json, re, sys
envoy, companion, uses_file, names_file = sys.argv[1:5]
u = json.load(open(uses_file))
listed, listed_companion = set(), set()
for m in json.load(open(names_file))["metrics"]:
    ns = {m["name"]} | ({m["name"] + s for s in ("_bucket", "_sum", "_count")} if m["kind"] in ("histogram", "summary") else set())
    listed |= ns
    if m["source"] == "companion":
        listed_companion.add(m["name"])
def names(path):
    out = set()
    for line in open(path, errors="replace"):
        m = re.match(r"# TYPE (\S+) (\w+)", line)
        if m:
            out.add(m.group(1))
            if m.group(2) in ("histogram", "summary"):
                out.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
        if m:
            out.add(m.group(1))
    return out
emitted = {"envoy": names(envoy), "companion": names(companion)}
for src, ns in emitted.items():
    if not any(n.startswith("dwcp_") for n in ns):
        print(f"FAIL the {src} scrape ({envoy if src == 'envoy' else companion}) has no dwcp_ metric: not a real scrape?")
        sys.exit(1)
allowed = set(u["recorded"]) | {"up"}
bad = 0
for name in sorted(u["uses"]):
    if name.startswith("dwcp_") and name not in listed:
        bad = 1
        print(f"FAIL {name} is used but not in {names_file} (the product's list of names)")
for name in sorted(listed_companion - emitted["companion"]):
    bad = 1
    print(f"FAIL {name} is in {names_file} (companion) but not in the companion scrape {companion}")
for e in u["errors"]:
    print(f"FAIL {e}"); bad = 1
for name in sorted(u["uses"]):
    where = u["uses"][name]
    src = [s for s, ns in emitted.items() if name in ns]
    if src:
        print(f"ok   {name}  ({', '.join(src)}; {len(where)} uses)")
    elif name in allowed:
        print(f"ok   {name}  ({'recording rule' if name != 'up' else 'Prometheus'}; {len(where)} uses)")
    else:
        bad = 1
        print(f"FAIL {name} is emitted by neither scrape; used by:")
        for w in sorted(set(where))[:6]:
            print(f"       {w}")
print(f"{len(u['uses'])} metric names checked against {envoy} ({len(emitted['envoy'])} names) and {companion} ({len(emitted['companion'])} names)")
sys.exit(bad)
PY
rc=$?; rm -f "${TMPDIR:-/tmp}/dwcp-metric-uses.$$.json"; exit $rc
