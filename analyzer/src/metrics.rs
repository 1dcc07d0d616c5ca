//! `/metrics` in the Prometheus text format (0.0.4). Names are stable: dashboards and alert rules in
//! `istio/` use them, and a test checks that every name they use is emitted.

use crate::controller::Controller;
use dwcp_core::rollout::Status;
use std::collections::BTreeMap;
use std::fmt::Write;

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, ty: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {ty}");
    }
    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let v = if v.is_finite() {
            v
        } else if v > 0.0 {
            f64::MAX
        } else {
            0.0
        };
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const STATUSES: [Status; 5] = [
    Status::Pending,
    Status::Running,
    Status::Paused,
    Status::Succeeded,
    Status::RolledBack,
];

pub fn render(c: &Controller, now_ms: u64) -> String {
    let mut o = Out(String::new());
    o.head(
        "dwcp_rollout_phase_index",
        "gauge",
        "Index of the current phase in the rollout's ladder",
    );
    for (n, r) in &c.rollouts {
        o.line(
            "dwcp_rollout_phase_index",
            &[("rollout", n), ("phase", r.phase_name())],
            r.phase as f64,
        );
    }
    o.head(
        "dwcp_rollout_status",
        "gauge",
        "1 for the rollout's current status",
    );
    for (n, r) in &c.rollouts {
        for s in STATUSES {
            o.line(
                "dwcp_rollout_status",
                &[("rollout", n), ("status", s.as_str())],
                f64::from(u8::from(r.status == s)),
            );
        }
    }
    o.head(
        "dwcp_rollout_canary_weight",
        "gauge",
        "Assigned canary share per segment (0-1)",
    );
    for (n, r) in &c.rollouts {
        for (seg, bp) in r.shares() {
            let w = if c.kill_all {
                0.0
            } else {
                bp as f64 / 10_000.0
            };
            o.line(
                "dwcp_rollout_canary_weight",
                &[("rollout", n), ("segment", &seg)],
                w,
            );
        }
    }
    o.head(
        "dwcp_rollout_requests_total",
        "counter",
        "Requests reported by filters since the companion started",
    );
    for ((n, seg), t) in &c.totals {
        for (i, track) in ["stable", "canary"].iter().enumerate() {
            o.line(
                "dwcp_rollout_requests_total",
                &[("rollout", n), ("track", track), ("segment", seg)],
                t.requests[i] as f64,
            );
        }
    }
    o.head(
        "dwcp_rollout_errors_total",
        "counter",
        "Errors reported by filters since the companion started",
    );
    for ((n, seg), t) in &c.totals {
        for (i, track) in ["stable", "canary"].iter().enumerate() {
            o.line(
                "dwcp_rollout_errors_total",
                &[("rollout", n), ("track", track), ("segment", seg)],
                t.errors[i] as f64,
            );
        }
    }
    o.head(
        "dwcp_rollout_p99_seconds",
        "gauge",
        "p99 latency of the current phase per track",
    );
    for (n, r) in &c.rollouts {
        for (track, agg) in [("stable", &r.phase_stable), ("canary", &r.phase_canary)] {
            if let Some(p) = agg.latency_us.quantile(0.99) {
                o.line(
                    "dwcp_rollout_p99_seconds",
                    &[("rollout", n), ("track", track)],
                    p / 1e6,
                );
            }
        }
    }
    o.head(
        "dwcp_rollout_e_value",
        "gauge",
        "Current e-value (mixture likelihood ratio) of each sequential test",
    );
    for (n, r) in &c.rollouts {
        o.line(
            "dwcp_rollout_e_value",
            &[("rollout", n), ("test", "errors")],
            r.error_test.log_e_value().exp(),
        );
        o.line(
            "dwcp_rollout_e_value",
            &[("rollout", n), ("test", "latency")],
            r.latency_test.log_e_value().exp(),
        );
        o.line(
            "dwcp_rollout_e_value",
            &[("rollout", n), ("test", "shadow_errors")],
            r.shadow_error_test.log_e_value().exp(),
        );
        o.line(
            "dwcp_rollout_e_value",
            &[("rollout", n), ("test", "shadow_mismatch")],
            r.shadow_mismatch_test.log_e_value().exp(),
        );
    }
    o.head(
        "dwcp_rollout_p_value",
        "gauge",
        "Always-valid p-value of the error test (min(1, 1/e))",
    );
    for (n, r) in &c.rollouts {
        o.line(
            "dwcp_rollout_p_value",
            &[("rollout", n), ("test", "errors")],
            r.error_test.p_value(),
        );
        o.line(
            "dwcp_rollout_p_value",
            &[("rollout", n), ("test", "latency")],
            r.latency_test.p_value(),
        );
    }
    o.head(
        "dwcp_rollout_trigger_failing",
        "gauge",
        "1 when a trigger's latest verdict is fail",
    );
    for (n, r) in &c.rollouts {
        let checks = dwcp_core::rollout::judge::checks(r, now_ms);
        for t in ["1:error_rate", "2:p99", "3:success", "4:throughput"] {
            let failing = r.status == Status::RolledBack
                && r.last_verdict.as_ref().is_some_and(|v| v.trigger == t)
                || checks
                    .iter()
                    .any(|v| v.trigger == t && v.outcome == dwcp_core::rollout::Outcome::Fail);
            o.line(
                "dwcp_rollout_trigger_failing",
                &[("rollout", n), ("trigger", t)],
                f64::from(u8::from(failing)),
            );
        }
    }
    o.head(
        "dwcp_rollbacks_total",
        "counter",
        "Rollbacks executed since the companion started",
    );
    for n in c.rollouts.keys() {
        let v = c.counters.rollbacks.get(n).copied().unwrap_or(0);
        o.line("dwcp_rollbacks_total", &[("rollout", n)], v as f64);
    }
    o.head(
        "dwcp_promotions_total",
        "counter",
        "Promotions since the companion started",
    );
    for n in c.rollouts.keys() {
        let v = c.counters.promotions.get(n).copied().unwrap_or(0);
        o.line("dwcp_promotions_total", &[("rollout", n)], v as f64);
    }
    o.head(
        "dwcp_telemetry_batches_total",
        "counter",
        "Telemetry batches by result",
    );
    for (res, v) in [
        ("accepted", c.counters.batches_accepted),
        ("duplicate", c.counters.batches_duplicate),
        ("rejected", c.counters.batches_rejected),
    ] {
        o.line("dwcp_telemetry_batches_total", &[("result", res)], v as f64);
    }
    o.head(
        "dwcp_auth_failures_total",
        "counter",
        "Requests refused for a missing or wrong bearer token",
    );
    o.line(
        "dwcp_auth_failures_total",
        &[],
        c.counters.auth_failures as f64,
    );
    o.head(
        "dwcp_decision_latency_seconds",
        "summary",
        "Time to ingest and judge one telemetry batch",
    );
    let h = &c.counters.ingest_us;
    for q in [0.5, 0.99] {
        o.line(
            "dwcp_decision_latency_seconds",
            &[("quantile", &q.to_string())],
            h.quantile(q).unwrap_or(0.0) / 1e6,
        );
    }
    o.line("dwcp_decision_latency_seconds_sum", &[], h.sum as f64 / 1e6);
    o.line("dwcp_decision_latency_seconds_count", &[], h.count as f64);
    o.head(
        "dwcp_state_version",
        "gauge",
        "Version of the dynamic state served to filters",
    );
    o.line("dwcp_state_version", &[], c.version as f64);
    o.head(
        "dwcp_kill_all",
        "gauge",
        "1 when the global kill switch is on",
    );
    o.line("dwcp_kill_all", &[], f64::from(u8::from(c.kill_all)));
    o.head(
        "dwcp_engine_events_total",
        "counter",
        "Engine safety signals and observations by engine and kind",
    );
    for ((engine, kind), n) in &c.engine_events {
        let kind = match kind.as_str() {
            "dwcp_engine_byzantine_attacks_total" => "byzantine",
            "dwcp_engine_integrity_violations_total" => "integrity_violation",
            "dwcp_engine_breaker_storms_total" => "breaker_storm",
            "dwcp_engine_memory_exhaustions_total" => "memory_exhaustion",
            "dwcp_engine_breaker_opens_total" => "breaker_open",
            "dwcp_engine_memory_samples_total" => "memory_sample",
            other => other,
        };
        o.line(
            "dwcp_engine_events_total",
            &[("engine", engine), ("kind", kind)],
            *n as f64,
        );
    }
    o.head(
        "dwcp_engine_memory_ratio",
        "gauge",
        "Last memory sample of an engine as a fraction of its budget",
    );
    for (engine, r) in &c.engine_memory {
        o.line("dwcp_engine_memory_ratio", &[("engine", engine)], *r);
    }
    o.head(
        "dwcp_rollout_shadow_total",
        "counter",
        "Shadow comparisons reported by the filters (kept across companion restarts), by event",
    );
    for n in c.rollouts.keys() {
        let st = c.shadow_totals.get(n).cloned().unwrap_or_default();
        for (event, v) in [
            ("sent", st.requests),
            ("compared", st.compared),
            ("mismatch", st.mismatches),
            ("noise", st.noise),
            ("noise_compared", st.noise_compared),
            ("stable_differs", st.stable_differs),
            ("shadow_error", st.shadow_errors),
            ("slower", st.slower),
            ("side_call_failed", st.side_call_failed),
            (
                "skipped",
                st.skipped_body_too_big + st.skipped_in_flight + st.skipped_primary_incomplete,
            ),
        ] {
            o.line(
                "dwcp_rollout_shadow_total",
                &[("rollout", n), ("event", event)],
                v as f64,
            );
        }
    }
    o.head(
        "dwcp_filter_vms_active",
        "gauge",
        "Filter VMs that sent telemetry in the last 10 s",
    );
    o.line(
        "dwcp_filter_vms_active",
        &[],
        c.active_vms(now_ms, 10_000) as f64,
    );
    // Which state every worker routes with: a version lagging here means a worker did not adopt it.
    let vms = c.vms(now_ms, crate::api::FILTER_ACTIVE_MS);
    let mut by_version: BTreeMap<u64, usize> = BTreeMap::new();
    for v in vms.values() {
        *by_version.entry(v.routing_version).or_insert(0) += 1;
    }
    o.head(
        "dwcp_filter_vms_by_state_version",
        "gauge",
        "Filter VMs seen in the last 3 s, by the state version they route with",
    );
    for (version, n) in &by_version {
        o.line(
            "dwcp_filter_vms_by_state_version",
            &[("state_version", &version.to_string())],
            *n as f64,
        );
    }
    o.head(
        "dwcp_filter_oldest_state_version_lag",
        "gauge",
        "Current state version minus the oldest version any active filter VM routes with",
    );
    let lag = by_version
        .keys()
        .next()
        .map_or(0, |oldest| c.version.saturating_sub(*oldest));
    o.line("dwcp_filter_oldest_state_version_lag", &[], lag as f64);
    o.0
}

/// Engine-host metrics: breaker state per component (0 closed, 1 half-open, 2 open), the worst per engine.
pub fn render_engines(host: &crate::engines_api::EngineHost) -> String {
    use dwcp_engines::manager::BreakerState;
    let mut o = Out(String::new());
    let m = host.manager.lock().unwrap_or_else(|p| p.into_inner());
    let breakers = m.breakers();
    let report = m.health_report();
    drop(m);
    let code = |s: BreakerState| match s {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    o.head(
        "dwcp_engine_breaker_state",
        "gauge",
        "Worst circuit-breaker state of the engine (0 closed, 1 half-open, 2 open)",
    );
    let worst = breakers.values().map(|b| code(b.state)).fold(0.0, f64::max);
    o.line("dwcp_engine_breaker_state", &[("engine", "manager")], worst);
    o.head(
        "dwcp_engine_component_breaker_state",
        "gauge",
        "Circuit-breaker state per component (0 closed, 1 half-open, 2 open)",
    );
    for (name, b) in &breakers {
        o.line(
            "dwcp_engine_component_breaker_state",
            &[("engine", "manager"), ("component", name)],
            code(b.state),
        );
    }
    o.head(
        "dwcp_engine_breaker_opens",
        "counter",
        "Breaker opens per component since start",
    );
    for (name, b) in &breakers {
        o.line(
            "dwcp_engine_breaker_opens",
            &[("engine", "manager"), ("component", name)],
            b.opens_total as f64,
        );
    }
    o.head(
        "dwcp_engine_memory_bytes",
        "gauge",
        "Memory used and budget reported by the Manager",
    );
    o.line(
        "dwcp_engine_memory_bytes",
        &[("engine", "manager"), ("kind", "used")],
        report.memory_used_bytes as f64,
    );
    o.line(
        "dwcp_engine_memory_bytes",
        &[("engine", "manager"), ("kind", "budget")],
        report.memory_budget_bytes as f64,
    );
    o.0.push_str(&host.allocator_metrics());
    o.0
}
