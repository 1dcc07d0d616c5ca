//! `/metrics` in the Prometheus text format (0.0.4). Every name, type and help text comes from
//! `dwcp_core::names` (the list the dashboards and alert rules are checked against); this module only
//! reads the controller and writes lines.

use crate::controller::Controller;
use dwcp_core::names::*;
use dwcp_core::rollout::Status;
use std::collections::BTreeMap;
use std::fmt::Write;

pub(crate) struct Out(pub(crate) String);

impl Out {
    pub(crate) fn head(&mut self, m: &Metric) {
        let (name, help, ty) = (m.name, m.help, m.kind.as_str());
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {ty}");
    }
    pub(crate) fn line(&mut self, m: &Metric, labels: &[(&str, &str)], v: f64) {
        self.raw(m.name, labels, v);
    }
    /// A line of a derived series (`_sum`, `_count` of a summary).
    pub(crate) fn suffixed(&mut self, m: &Metric, suffix: &str, v: f64) {
        self.raw(&format!("{}{suffix}", m.name), &[], v);
    }
    fn raw(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
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
    o.head(&ROLLOUT_PHASE_INDEX);
    for (n, r) in &c.ledger.rollouts {
        o.line(
            &ROLLOUT_PHASE_INDEX,
            &[("rollout", n), ("phase", r.phase_name())],
            r.phase as f64,
        );
    }
    o.head(&ROLLOUT_STATUS);
    for (n, r) in &c.ledger.rollouts {
        for s in STATUSES {
            o.line(
                &ROLLOUT_STATUS,
                &[("rollout", n), ("status", s.as_str())],
                f64::from(u8::from(r.status == s)),
            );
        }
    }
    o.head(&ROLLOUT_CANARY_WEIGHT);
    for (n, r) in &c.ledger.rollouts {
        for (seg, bp) in r.shares() {
            let w = if c.kill_all() {
                0.0
            } else {
                bp as f64 / 10_000.0
            };
            o.line(
                &ROLLOUT_CANARY_WEIGHT,
                &[("rollout", n), ("segment", &seg)],
                w,
            );
        }
    }
    o.head(&ROLLOUT_REQUESTS);
    for ((n, seg), t) in &c.ledger.totals {
        for (i, track) in ["stable", "canary"].iter().enumerate() {
            o.line(
                &ROLLOUT_REQUESTS,
                &[("rollout", n), ("track", track), ("segment", seg)],
                t.requests[i] as f64,
            );
        }
    }
    o.head(&ROLLOUT_ERRORS);
    for ((n, seg), t) in &c.ledger.totals {
        for (i, track) in ["stable", "canary"].iter().enumerate() {
            o.line(
                &ROLLOUT_ERRORS,
                &[("rollout", n), ("track", track), ("segment", seg)],
                t.errors[i] as f64,
            );
        }
    }
    o.head(&ROLLOUT_P99);
    for (n, r) in &c.ledger.rollouts {
        for (track, agg) in [("stable", &r.phase_stable), ("canary", &r.phase_canary)] {
            if let Some(p) = agg.latency_us.quantile(0.99) {
                o.line(&ROLLOUT_P99, &[("rollout", n), ("track", track)], p / 1e6);
            }
        }
    }
    o.head(&ROLLOUT_E_VALUE);
    for (n, r) in &c.ledger.rollouts {
        o.line(
            &ROLLOUT_E_VALUE,
            &[("rollout", n), ("test", "errors")],
            r.error_test.log_e_value().exp(),
        );
        o.line(
            &ROLLOUT_E_VALUE,
            &[("rollout", n), ("test", "latency")],
            r.latency_test.log_e_value().exp(),
        );
        o.line(
            &ROLLOUT_E_VALUE,
            &[("rollout", n), ("test", "shadow_errors")],
            r.shadow_error_test.log_e_value().exp(),
        );
        o.line(
            &ROLLOUT_E_VALUE,
            &[("rollout", n), ("test", "shadow_mismatch")],
            r.shadow_mismatch_test.log_e_value().exp(),
        );
    }
    o.head(&ROLLOUT_P_VALUE);
    for (n, r) in &c.ledger.rollouts {
        o.line(
            &ROLLOUT_P_VALUE,
            &[("rollout", n), ("test", "errors")],
            r.error_test.p_value(),
        );
        o.line(
            &ROLLOUT_P_VALUE,
            &[("rollout", n), ("test", "latency")],
            r.latency_test.p_value(),
        );
    }
    o.head(&ROLLOUT_TRIGGER_FAILING);
    for (n, r) in &c.ledger.rollouts {
        let checks = dwcp_core::rollout::judge::checks(r, now_ms);
        for t in TRIGGERS {
            let failing = r.status == Status::RolledBack
                && r.last_verdict.as_ref().is_some_and(|v| v.trigger == *t)
                || checks
                    .iter()
                    .any(|v| v.trigger == *t && v.outcome == dwcp_core::rollout::Outcome::Fail);
            o.line(
                &ROLLOUT_TRIGGER_FAILING,
                &[("rollout", n), ("trigger", t)],
                f64::from(u8::from(failing)),
            );
        }
    }
    o.head(&ROLLBACKS);
    for n in c.ledger.rollouts.keys() {
        let v = c.ledger.counters.rollbacks.get(n).copied().unwrap_or(0);
        o.line(&ROLLBACKS, &[("rollout", n)], v as f64);
    }
    o.head(&PROMOTIONS);
    for n in c.ledger.rollouts.keys() {
        let v = c.ledger.counters.promotions.get(n).copied().unwrap_or(0);
        o.line(&PROMOTIONS, &[("rollout", n)], v as f64);
    }
    o.head(&TELEMETRY_BATCHES);
    for (res, v) in [
        ("accepted", c.ledger.counters.batches_accepted),
        ("duplicate", c.ledger.counters.batches_duplicate),
        ("rejected", c.ledger.counters.batches_rejected),
    ] {
        o.line(&TELEMETRY_BATCHES, &[("result", res)], v as f64);
    }
    o.head(&TELEMETRY_PROTOCOL);
    for (protocol, v) in &c.ledger.counters.by_protocol {
        o.line(
            &TELEMETRY_PROTOCOL,
            &[("protocol", &protocol.to_string())],
            *v as f64,
        );
    }
    o.head(&TELEMETRY_UNKNOWN_SEGMENTS);
    for (rollout, v) in &c.ledger.counters.unknown_segments {
        o.line(
            &TELEMETRY_UNKNOWN_SEGMENTS,
            &[("rollout", rollout)],
            *v as f64,
        );
    }
    o.head(&COMPANION_READY);
    o.line(
        &COMPANION_READY,
        &[],
        f64::from(u8::from(c.ready().is_ok())),
    );
    o.head(&STORE_COMMIT_FAILURES);
    o.line(&STORE_COMMIT_FAILURES, &[], c.commit_failures as f64);
    o.head(&TELEMETRY_UNKNOWN);
    for ((rollout, part), v) in &c.ledger.counters.unknown {
        o.line(
            &TELEMETRY_UNKNOWN,
            &[("rollout", rollout), ("part", part.as_str())],
            *v as f64,
        );
    }
    o.head(&AUTH_FAILURES);
    o.line(&AUTH_FAILURES, &[], c.counters.auth_failures as f64);
    o.head(&DECISION_LATENCY);
    let h = &c.counters.ingest_us;
    for q in [0.5, 0.99] {
        o.line(
            &DECISION_LATENCY,
            &[("quantile", &q.to_string())],
            h.quantile(q).unwrap_or(0.0) / 1e6,
        );
    }
    o.suffixed(&DECISION_LATENCY, "_sum", h.sum as f64 / 1e6);
    o.suffixed(&DECISION_LATENCY, "_count", h.count as f64);
    o.head(&STATE_VERSION);
    o.line(&STATE_VERSION, &[], c.version() as f64);
    o.head(&KILL_ALL);
    o.line(&KILL_ALL, &[], f64::from(u8::from(c.kill_all())));
    o.head(&ENGINE_EVENTS);
    for ((engine, kind), n) in &c.engine_events {
        o.line(
            &ENGINE_EVENTS,
            &[("engine", engine), ("kind", kind)],
            *n as f64,
        );
    }
    o.head(&ENGINE_MEMORY_RATIO);
    for (engine, r) in &c.engine_memory {
        o.line(&ENGINE_MEMORY_RATIO, &[("engine", engine)], *r);
    }
    o.head(&ROLLOUT_SHADOW);
    for n in c.ledger.rollouts.keys() {
        let st = c.ledger.shadow_totals.get(n).cloned().unwrap_or_default();
        let values = [
            st.requests,
            st.compared,
            st.mismatches,
            st.noise,
            st.noise_compared,
            st.stable_differs,
            st.shadow_errors,
            st.slower,
            st.side_call_failed,
            st.skipped_body_too_big + st.skipped_in_flight + st.skipped_primary_incomplete,
        ];
        for (event, v) in ROLLOUT_SHADOW_EVENTS.iter().zip(values) {
            o.line(
                &ROLLOUT_SHADOW,
                &[("rollout", n), ("event", event)],
                v as f64,
            );
        }
    }
    o.head(&FILTER_VMS_ACTIVE);
    o.line(&FILTER_VMS_ACTIVE, &[], c.active_vms(now_ms, 10_000) as f64);
    // Which state every worker routes with: a version lagging here means a worker did not adopt it.
    let vms = c.vms(now_ms, crate::api::FILTER_ACTIVE_MS);
    let mut by_version: BTreeMap<u64, usize> = BTreeMap::new();
    for v in vms.values() {
        *by_version.entry(v.routing_version).or_insert(0) += 1;
    }
    o.head(&FILTER_VMS_BY_STATE_VERSION);
    for (version, n) in &by_version {
        o.line(
            &FILTER_VMS_BY_STATE_VERSION,
            &[("state_version", &version.to_string())],
            *n as f64,
        );
    }
    o.head(&FILTER_OLDEST_STATE_LAG);
    let lag = by_version
        .keys()
        .next()
        .map_or(0, |oldest| c.version().saturating_sub(*oldest));
    o.line(&FILTER_OLDEST_STATE_LAG, &[], lag as f64);
    o.0
}

mod engines;
mod train;
pub use engines::render_engines;
pub use train::render_train;
