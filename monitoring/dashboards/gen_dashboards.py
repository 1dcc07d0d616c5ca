#!/usr/bin/env python3
"""Writes the Grafana dashboards in this folder (JSON, schemaVersion 39, datasource chosen by the ${datasource}
variable). Every query names only metrics the filter or the companion exports; scripts/check-dashboard-metrics.sh
checks that against real scrapes. Metric names must be in monitoring/names.json (the product's one list of
names, `dwcp-analyzer names`; a core test keeps it current): a query naming anything else stops the generator.
Run: python3 monitoring/dashboards/gen_dashboards.py"""
import json, os, re
OUT = os.path.dirname(os.path.abspath(__file__))
_NAMES = json.load(open(os.path.join(OUT, "..", "names.json")))
KNOWN = set()
for _m in _NAMES["metrics"]:
    KNOWN.add(_m["name"])
    if _m["kind"] in ("histogram", "summary"):
        KNOWN.update(_m["name"] + s for s in ("_bucket", "_sum", "_count"))
def check_names(where, text):
    """Every dwcp_ metric a query names is in names.json (recording rules `x:dwcp_...:y` are not metrics)."""
    for n in re.findall(r"(?<![\w:])dwcp_[a-zA-Z0-9_]+", text):
        if n not in KNOWN:
            raise SystemExit(f"{where}: {n} is not in monitoring/names.json (not emitted by the product)")
def ds():
    return {"type": "prometheus", "uid": "${datasource}"}
def templating(extra):
    t = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus", "current": {}, "hide": 0}]
    return {"list": t + extra}
def var(name, query, label, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": ds(), "query": {"query": query, "refId": "v"},
            "definition": query, "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*", "current": {}, "sort": 1, "hide": 0}
_id = [0]
def panel(title, exprs, x, y, w=12, h=8, kind="timeseries", unit=None, desc=None, legend=None, extra=None):
    _id[0] += 1
    p = {"id": _id[0], "type": kind, "title": title, "datasource": ds(), "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [{"refId": chr(65 + i), "datasource": ds(), "expr": e, "legendFormat": (legend[i] if legend else "")} for i, e in enumerate(exprs)],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    if unit: p["fieldConfig"]["defaults"]["unit"] = unit
    if desc: p["description"] = desc
    if extra: p.update(extra)
    return p
def dash(uid, title, desc, vars_, panels):
    for p in panels:
        for t in p["targets"]:
            check_names(f"{uid}: {p['title']}", t["expr"])
    for v in vars_:
        check_names(f"{uid}: variable {v['name']}", v["definition"])
    _id[0] = 0
    d = {"uid": uid, "title": title, "description": desc, "tags": ["dwcp"], "timezone": "browser", "schemaVersion": 39,
         "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
         "templating": templating(vars_), "annotations": {"list": []}, "panels": panels}
    with open(os.path.join(OUT, uid + '.json'), 'w') as f:
        json.dump(d, f, indent=2); f.write('\n')
R = 'rollout=~"$rollout"'
rv = var("rollout", "label_values(dwcp_rollout_status, rollout)", "Rollout")
# 1. canary health
_id[0] = 0
p = [
 panel("Status", [f'dwcp_rollout_status{{{R}}} == 1'], 0, 0, 8, 5, "stat", legend=["{{rollout}}: {{status}}"], desc="Current status per rollout (companion)."),
 panel("Phase", [f'dwcp_rollout_phase_index{{{R}}}'], 8, 0, 8, 5, "stat", legend=["{{rollout}}: {{phase}}"]),
 panel("Triggers failing (1-4)", [f'dwcp_rollout_trigger_failing{{{R}}}'], 16, 0, 8, 5, "stat", legend=["{{rollout}} {{trigger}}"]),
 panel("Error ratio per track (filter)", [f'sum by (rollout, track) (rate(dwcp_errors_total{{{R}}}[5m])) / sum by (rollout, track) (rate(dwcp_requests_total{{{R}}}[5m]))'], 0, 5, 12, 8, unit="percentunit", legend=["{{rollout}} {{track}}"]),
 panel("Latency p99 / p95 per track (filter histogram)", [f'histogram_quantile(0.99, sum by (rollout, track, le) (rate(dwcp_request_duration_seconds_bucket{{{R}}}[5m])))', f'histogram_quantile(0.95, sum by (rollout, track, le) (rate(dwcp_request_duration_seconds_bucket{{{R}}}[5m])))'], 12, 5, 12, 8, unit="s", legend=["p99 {{rollout}} {{track}}", "p95 {{rollout}} {{track}}"]),
 panel("p99 of the current phase (companion)", [f'dwcp_rollout_p99_seconds{{{R}}}'], 0, 13, 12, 8, unit="s", legend=["{{rollout}} {{track}}"]),
 panel("Sequential tests: e-values (abort when the error/latency e-value crosses 1/alpha = 100)", [f'dwcp_rollout_e_value{{{R}}}'], 12, 13, 12, 8, legend=["{{rollout}} {{test}}"], extra={"fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "log", "log": 10}}}, "overrides": []}}),
 panel("Always-valid p-values", [f'dwcp_rollout_p_value{{{R}}}'], 0, 21, 12, 8, legend=["{{rollout}} {{test}}"]),
 panel("Rollbacks and promotions (1h)", [f'increase(dwcp_rollbacks_total{{{R}}}[1h])', f'increase(dwcp_promotions_total{{{R}}}[1h])'], 12, 21, 12, 8, legend=["rollbacks {{rollout}}", "promotions {{rollout}}"]),
 panel("SLO: error ratio 1h vs 99.9 % budget burn (14.4x = 0.0144)", [f'rollout:dwcp_error_ratio:rate1h{{{R}}}', f'rollout:dwcp_error_ratio:rate6h{{{R}}}'], 0, 29, 12, 8, unit="percentunit", legend=["1h {{rollout}}", "6h {{rollout}}"]),
 panel("SLO: share of requests slower than 500 ms (p95 SLO budget 5 %)", [f'rollout:dwcp_slow_ratio:rate1h{{{R}}}', f'rollout:dwcp_slow_ratio:rate6h{{{R}}}'], 12, 29, 12, 8, unit="percentunit", legend=["1h {{rollout}}", "6h {{rollout}}"]),
 panel("Filter events", ['sum by (event) (rate(dwcp_filter_events_total[5m]))'], 0, 37, 12, 8, unit="reqps", legend=["{{event}}"]),
 panel("Filter state: stale proxies, state version (filter vs companion), kill switch", ['sum(dwcp_state_stale)', 'min(dwcp_state_version{job!="dwcp-analyzer"})', 'max(dwcp_state_version{job="dwcp-analyzer"})', 'max(dwcp_kill_all)'], 12, 37, 12, 8, legend=["stale proxies", "oldest filter version", "companion version", "kill switch"]),
 panel("Companion: telemetry batches, auth failures, VMs reporting, Wasm VMs alive", ['sum by (result) (rate(dwcp_telemetry_batches_total[5m]))', 'rate(dwcp_auth_failures_total[5m])', 'dwcp_filter_vms_active', 'sum(envoy_wasm_envoy_wasm_runtime_v8_active)'], 0, 45, 12, 8, legend=["batches {{result}}", "auth failures", "VMs reporting", "Wasm VMs alive"]),
 panel("Shadow: mismatch rate over noise (judged), raw mismatch rate, stable-vs-stable disagreement", [f'(rate(dwcp_rollout_shadow_total{{{R},event="mismatch"}}[5m]) - ignoring(event) rate(dwcp_rollout_shadow_total{{{R},event="noise"}}[5m])) / ignoring(event) rate(dwcp_rollout_shadow_total{{{R},event="compared"}}[5m])', f'rate(dwcp_rollout_shadow_total{{{R},event="mismatch"}}[5m]) / ignoring(event) rate(dwcp_rollout_shadow_total{{{R},event="compared"}}[5m])', f'rate(dwcp_rollout_shadow_total{{{R},event="stable_differs"}}[5m]) / ignoring(event) rate(dwcp_rollout_shadow_total{{{R},event="noise_compared"}}[5m])'], 0, 53, 12, 8, unit="percentunit", legend=["over noise {{rollout}}", "raw {{rollout}}", "stable vs stable {{rollout}}"], desc="Shadow phase: share of compared answers that differ from stable. The judge fails the phase on the rate over noise; with shadow.noise_copy a second stable copy measures what two stable answers disagree on."),
 panel("Shadow side calls: sent, failed, skipped, slower than tolerance", [f'rate(dwcp_rollout_shadow_total{{{R},event=~"sent|side_call_failed|skipped|slower|shadow_error"}}[5m])'], 12, 53, 12, 8, unit="reqps", legend=["{{rollout}} {{event}}"]),
 panel("Decision latency (ingest + judge one batch)", ['dwcp_decision_latency_seconds{quantile="0.99"}', 'dwcp_decision_latency_seconds{quantile="0.5"}', 'rate(dwcp_decision_latency_seconds_sum[5m]) / rate(dwcp_decision_latency_seconds_count[5m])'], 12, 45, 12, 8, unit="s", legend=["p99", "p50", "mean"]),
]
dash("dwcp-canary-health", "dwcp / Canary health", "Per-rollout canary vs stable: errors, latency, sequential tests, triggers, SLO burn, filter and companion health.", [rv], p)
# 2. traffic split
S = 'segment=~"$segment"'
p = [
 panel("Canary share per segment: observed (filter) vs assigned (companion)",
       [f'sum by (rollout, segment) (rate(dwcp_requests_total{{{R},{S},track="canary"}}[5m])) / sum by (rollout, segment) (rate(dwcp_requests_total{{{R},{S}}}[5m]))',
        f'dwcp_rollout_canary_weight{{{R},{S}}}'], 0, 0, 24, 10, unit="percentunit", legend=["observed {{rollout}} {{segment}}", "assigned {{rollout}} {{segment}}"],
       desc="Observed = canary requests / all requests of the segment, from the filters' counters. Assigned = the companion's per-segment canary weight. They should track each other; trigger 4 fires when the canary gets < 80 % of its share."),
 panel("Observed minus assigned (share points)",
       [f'sum by (rollout, segment) (rate(dwcp_requests_total{{{R},{S},track="canary"}}[5m])) / sum by (rollout, segment) (rate(dwcp_requests_total{{{R},{S}}}[5m])) - on (rollout, segment) group_left dwcp_rollout_canary_weight{{{R},{S}}}'],
       0, 10, 12, 8, unit="percentunit", legend=["{{rollout}} {{segment}}"]),
 panel("Requests per segment and track (filter)", [f'sum by (segment, track) (rate(dwcp_requests_total{{{R},{S}}}[5m]))'], 12, 10, 12, 8, unit="reqps", legend=["{{segment}} {{track}}"]),
 panel("Requests per segment and track as reported to the companion", [f'sum by (segment, track) (rate(dwcp_rollout_requests_total{{{R},{S}}}[5m]))'], 0, 18, 12, 8, unit="reqps", legend=["{{segment}} {{track}}"]),
 panel("Errors per segment and track (companion)", [f'sum by (segment, track) (rate(dwcp_rollout_errors_total{{{R},{S}}}[5m]))'], 12, 18, 12, 8, unit="reqps", legend=["{{segment}} {{track}}"]),
 panel("Requests without a targeting key or with a bad header (served on stable)", ['sum by (event) (rate(dwcp_filter_events_total{event=~"no_key|bad_header|no_rollout|kill_all|rollout_off"}[5m]))'], 0, 26, 24, 8, unit="reqps", legend=["{{event}}"]),
]
dash("dwcp-traffic-split", "dwcp / Traffic split per segment", "Observed canary share (filter counters) against the share the companion assigns, per rollout and segment.",
     [rv, var("segment", 'label_values(dwcp_rollout_canary_weight{rollout=~"$rollout"}, segment)', "Segment")], p)
# 3. consensus engines
E = 'engine=~"$engine"'
ev = var("engine", "label_values(dwcp_engine_events_total, engine)", "Engine")
p = [
 panel("Byzantine detections (trigger 5)", [f'sum by (engine) (increase(dwcp_engine_events_total{{{E},kind="byzantine"}}[5m]))'], 0, 0, 8, 8, legend=["{{engine}}"]),
 panel("Integrity violations (trigger 6)", [f'sum by (engine) (increase(dwcp_engine_events_total{{{E},kind="integrity_violation"}}[5m]))'], 8, 0, 8, 8, legend=["{{engine}}"]),
 panel("Breaker opens in 5 min (trigger 8 at > 10)", [f'sum by (engine) (increase(dwcp_engine_events_total{{{E},kind="breaker_open"}}[5m]))'], 16, 0, 8, 8, legend=["{{engine}}"]),
 panel("Engine events by kind", [f'sum by (engine, kind) (rate(dwcp_engine_events_total{{{E}}}[5m]))'], 0, 8, 12, 8, unit="ops", legend=["{{engine}} {{kind}}"]),
 panel("Circuit-breaker state (0 closed, 1 half-open, 2 open)", [f'dwcp_engine_breaker_state{{{E}}}'], 12, 8, 12, 8, kind="state-timeline", legend=["{{engine}}"]),
 panel("Memory / budget (trigger 7 at > 95 % for 5 min)", [f'dwcp_engine_memory_ratio{{{E}}}'], 0, 16, 24, 8, unit="percentunit", legend=["{{engine}}"]),
]
dash("dwcp-consensus-engines", "dwcp / Consensus engines", "Health and safety events of the engines hosted by the companion (ProBFT, Bullshark, T-PBFT, manager).", [ev], p)
# 3b. consensus engines hosted in process (PBFT, T-PBFT, ProBFT): one row of panels per engine
p = []
for i, eng in enumerate(["pbft", "tpbft", "probft"]):
    G = f'engine="{eng}"'
    y = i * 16
    p += [
     panel(f"{eng}: decisions / s", [f'rate(dwcp_consensus_decisions_total{{{G}}}[5m])'], 0, y, 6, 8, unit="ops", legend=["decisions"]),
     panel(f"{eng}: view changes in 5 min", [f'increase(dwcp_consensus_view_changes_total{{{G}}}[5m])'], 6, y, 6, 8, legend=["view changes"]),
     panel(f"{eng}: messages / s by kind", [f'sum by (kind) (rate(dwcp_consensus_messages_total{{{G}}}[5m]))'], 12, y, 12, 8, unit="ops", legend=["{{kind}}"]),
     panel(f"{eng}: commit latency p50 / p99", [f'histogram_quantile(0.5, sum by (le) (rate(dwcp_consensus_commit_latency_seconds_bucket{{{G}}}[5m])))', f'histogram_quantile(0.99, sum by (le) (rate(dwcp_consensus_commit_latency_seconds_bucket{{{G}}}[5m])))'], 0, y + 8, 8, 8, unit="s", legend=["p50", "p99"]),
     panel(f"{eng}: Byzantine detections by behaviour (trigger 5)", [f'sum by (behaviour) (increase(dwcp_consensus_byzantine_detections_total{{{G}}}[5m]))', f'sum(increase(dwcp_engine_events_total{{{G},kind="integrity_violation"}}[5m]))'], 8, y + 8, 8, 8, legend=["{{behaviour}}", "integrity violations (trigger 6)"]),
     panel(f"{eng}: height, view, faulty replicas", [f'dwcp_consensus_committed_height{{{G}}}', f'dwcp_consensus_view{{{G}}}', f'dwcp_consensus_faulty_replicas{{{G}}}'], 16, y + 8, 8, 8, kind="stat", legend=["height", "view", "faulty"]),
    ]
dash("dwcp-consensus", "dwcp / Consensus clusters (PBFT, T-PBFT, ProBFT)", "The in-process consensus clusters of the companion: decisions, view changes, messages by kind, commit latency, Byzantine detections, height and view per engine.", [], p)
# 4. allocator (metrics from the companion's POST /v1/engines/allocator/place)
A = 'engine="allocator"'
p = [
 panel("Allocator decisions by outcome", ['sum by (outcome) (rate(dwcp_allocator_decisions_total[5m]))'], 0, 0, 12, 8, unit="ops", legend=["{{outcome}}"]),
 panel("Guard fallbacks to best-fit by reason", ['sum by (reason) (rate(dwcp_allocator_fallbacks_total[5m]))'], 12, 0, 12, 8, unit="ops", legend=["{{reason}}"]),
 panel("SLA misses (deferred with zero slack)", ['rate(dwcp_allocator_sla_misses_total[5m])'], 0, 8, 8, 8, unit="ops", legend=["sla misses"]),
 panel("Utilisation after the last placement round", ['dwcp_allocator_utilisation'], 8, 8, 8, 8, unit="percentunit", legend=["utilisation"]),
 panel("Fallback breaker (0 closed, 1 half-open, 2 open)", ['dwcp_allocator_breaker_state'], 16, 8, 8, 8, kind="state-timeline", legend=["breaker"]),
 panel("Weights loaded and verified", ['dwcp_allocator_model_loaded'], 0, 16, 8, 8, kind="stat"),
 panel("Allocator integrity violations (trigger 6)", [f'sum(increase(dwcp_engine_events_total{{{A},kind="integrity_violation"}}[5m]))'], 8, 16, 8, 8, kind="stat"),
]
dash("dwcp-allocator", "dwcp / Allocator (MADDPG)", "The MADDPG allocator: decisions, guard fallbacks, SLA misses, utilisation, breaker, weight integrity.", [], p)
# 5. the release train (the companion's plan runner)
p = [
 panel("Train state per rollout", ['max by (rollout, state) (dwcp_train_rollout_state) == 1'], 0, 0, 24, 8, kind="state-timeline", legend=["{{rollout}} {{state}}"]),
 panel("Gates past their planned start (plan time; alert DwcpTrainGateOverdue)", ['max by (rollout) (dwcp_train_gate_overdue_seconds)'], 0, 8, 16, 8, unit="s", legend=["{{rollout}}"]),
 panel("Freeze window on", ['max(dwcp_train_freeze_active)'], 16, 8, 8, 8, kind="stat"),
]
dash("dwcp-release-train", "dwcp / Release train", "The release train: each plan rollout's state, gates waiting past their planned start, freezes. The planned-vs-actual timeline is the companion's /plan page.", [], p)
