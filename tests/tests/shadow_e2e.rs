//! Issue "shadow mode that compares answers": end to end with a real Envoy. The rollout starts in its
//! shadow phase (no `skip_shadow`), so every eligible request is mirrored to the shadow upstream and
//! the answers are compared in the filter; the companion judges the phase.
//!
//! The demo upstream's answer names the upstream (`served_by`) and carries a fresh `request_id` and
//! `timestamp`: `served_by` is added to the ignored fields here, ids and timestamps are ignored by default.

use dwcp_e2e::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SHADOW_PHASE: &str =
    "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nphase_seconds = 3600\n";

fn start(shadow: Value) -> Stack {
    let mut plugin = shipped_plugin_config();
    plugin["explain"] = Value::Bool(false);
    let mut sh =
        json!({"ignore_fields": ["timestamp", "ts", "*_at", "*id", "request_id", "served_by"]});
    if let (Some(m), Some(extra)) = (sh.as_object_mut(), shadow.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    plugin["shadow"] = sh;
    let s = Stack::start(StackOpts {
        plugin_config: plugin,
        analyzer_toml: SHADOW_PHASE.into(),
        concurrency: 1,
    });
    // Every VM routes with the shadow-phase state (shadow_bp 10 000) after its first sync.
    assert!(
        eventually(Duration::from_secs(10), || s.rollout("demo")["phase"]
            == "shadow")
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(1500));
    s
}

/// `n` sequential requests; returns (statuses, latencies in ms).
fn load(s: &Stack, method: &str, n: usize) -> (Vec<u16>, Vec<f64>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut codes = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let req = agent
            .request(method, &format!("{}/items/{}", s.envoy_url(), i % 50))
            .set("x-user-id", &format!("u{}", i % 500));
        let r = if method == "POST" {
            req.send_string("{\"a\":1}")
        } else {
            req.call()
        };
        codes.push(match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(_) => 0,
        });
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (codes, lat)
}

fn p(lat: &[f64], q: f64) -> f64 {
    let mut v = lat.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 - 1.0) * q) as usize)
        .copied()
        .unwrap_or(0.0)
}

fn totals(s: &Stack) -> Value {
    s.rollout("demo")["shadow_totals"].clone()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Waits until the companion has seen `n` comparisons (or side-call failures) for the rollout.
fn wait_compared(s: &Stack, n: u64) -> Value {
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(s);
        num(&t["compared"]) >= n
    });
    t
}

#[test]
fn identical_shadow_has_zero_mismatches() {
    // Copies wait for the next 20 ms root tick: at a few thousand requests/s the default bound (64
    // queued + in flight) would skip some; this case wants (nearly) all of them compared.
    let s = start(json!({"max_in_flight": 256}));
    let n = 400;
    let (codes, lat) = load(&s, "GET", n);
    assert!(codes.iter().all(|c| *c == 200));
    let t = wait_compared(&s, n as u64);
    eprintln!(
        "identical: {t}  user p50 {:.2} ms p99 {:.2} ms",
        p(&lat, 0.5),
        p(&lat, 0.99)
    );
    // Every request is either compared or skipped (bounded in-flight state), none lost.
    assert_eq!(
        num(&t["compared"]) + num(&t["skipped_in_flight"]),
        n as u64,
        "{t}"
    );
    assert!(num(&t["compared"]) as f64 >= 0.9 * n as f64, "{t}");
    assert_eq!(num(&t["mismatches"]), 0, "{t}");
    assert_eq!(num(&t["side_call_failed"]), 0, "{t}");
    let r = s.rollout("demo");
    assert_eq!(r["status"], "running", "{r}");
    assert_eq!(r["phase"], "shadow");
    // User latency with the shadow off (rollout aborted: no copies, everyone on stable as before), same run.
    s.command("demo", "abort");
    std::thread::sleep(Duration::from_millis(1500));
    let before = num(&totals(&s)["requests"]);
    let (_, off) = load(&s, "GET", n);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        num(&totals(&s)["requests"]),
        before,
        "copies sent after abort"
    );
    eprintln!(
        "user latency shadow on: p50 {:.2} p99 {:.2} ms; off: p50 {:.2} p99 {:.2} ms",
        p(&lat, 0.5),
        p(&lat, 0.99),
        p(&off, 0.5),
        p(&off, 0.99)
    );
    // Loose bound (CI machines are noisy); the printed figures are the measurement.
    assert!(p(&lat, 0.99) <= 2.0 * p(&off, 0.99) + 5.0);
}

#[test]
fn ten_percent_mutated_fails_the_phase_naming_the_path() {
    let s = start(json!({}));
    s.upstream("shadow", json!({"mutate_rate": 0.1}));
    let n = 500;
    let (codes, _) = load(&s, "GET", n);
    assert!(codes.iter().all(|c| *c == 200));
    let failed = eventually(Duration::from_secs(10), || {
        s.rollout("demo")["status"] == "rolled_back"
    });
    let r = s.rollout("demo");
    let t = &r["shadow_totals"];
    let rate = num(&t["mismatches"]) as f64 / num(&t["compared"]).max(1) as f64;
    eprintln!("mutated: rate {:.3} totals {t}", rate);
    assert!(failed.is_some(), "phase not failed: {r}");
    assert!(num(&t["compared"]) >= 100, "{t}");
    assert!((0.08..=0.12).contains(&rate), "mismatch rate {rate}: {t}");
    assert_eq!(num(&t["mismatch_body"]), num(&t["mismatches"]), "{t}");
    assert_eq!(
        r["shadow_samples"][0]["diffs"][0]["path"], "item.price",
        "{r}"
    );
    let ev = s.get_json(&format!("{}/v1/rollouts/demo/events", s.analyzer_url()));
    let txt = ev.to_string();
    assert!(
        txt.contains("shadow:mismatch") && txt.contains("item.price"),
        "{txt}"
    );
}

#[test]
fn slow_shadow_fails_on_latency_user_latency_unchanged() {
    // 200 ms side calls at ~400 requests/s: allow enough copies in flight to compare most of them.
    let s = start(json!({"max_in_flight": 256}));
    let (_, base) = load(&s, "GET", 100);
    s.upstream("shadow", json!({"delay_ms": 200}));
    let (codes, lat) = load(&s, "GET", 300);
    assert!(codes.iter().all(|c| *c == 200));
    let failed = eventually(Duration::from_secs(10), || {
        s.rollout("demo")["status"] == "rolled_back"
    });
    let r = s.rollout("demo");
    let t = &r["shadow_totals"];
    eprintln!(
        "slow: user p50 {:.2} ms (before {:.2}), p99 {:.2} ms; totals {t}",
        p(&lat, 0.5),
        p(&base, 0.5),
        p(&lat, 0.99)
    );
    assert!(failed.is_some(), "phase not failed: {r}");
    assert!(num(&t["slower"]) >= 100, "{t}");
    let d50 = r["shadow"]["latency_delta_us"].clone();
    assert!(num(&d50["count"]) > 0, "{r}");
    let ev = s.get_json(&format!("{}/v1/rollouts/demo/events", s.analyzer_url()));
    assert!(ev.to_string().contains("shadow:latency"), "{ev}");
    // The user never waits for the shadow.
    assert!(p(&lat, 0.5) < 50.0, "user p50 {}", p(&lat, 0.5));
}

#[test]
fn hanging_shadow_costs_side_calls_only() {
    let s = start(json!({"timeout_ms": 300}));
    s.upstream("shadow", json!({"delay_ms": 5000}));
    let (codes, lat) = load(&s, "GET", 200);
    assert!(codes.iter().all(|c| *c == 200), "user requests failed");
    assert!(p(&lat, 0.5) < 50.0, "user p50 {}", p(&lat, 0.5));
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(&s);
        num(&t["side_call_failed"]) >= 10
    });
    eprintln!(
        "hanging: user p50 {:.2} ms p99 {:.2} ms; totals {t}",
        p(&lat, 0.5),
        p(&lat, 0.99)
    );
    assert!(num(&t["side_call_failed"]) >= 10, "{t}");
    // Bounded in-flight state: the rest were skipped, not queued.
    assert!(num(&t["skipped_in_flight"]) > 0, "{t}");
    // Also exported as Envoy counters.
    assert!(
        eventually(Duration::from_secs(5), || metric_sum(
            &s.envoy_stats(),
            "dwcp_shadow_total",
            &[("rollout", "demo"), ("event", "side_call_failed")]
        ) >= 10.0)
        .is_some(),
        "dwcp_shadow_total{{event=side_call_failed}} missing"
    );
}

#[test]
fn post_is_not_mirrored() {
    let s = start(json!({}));
    let (codes, _) = load(&s, "POST", 50);
    assert!(codes.iter().all(|c| *c == 200));
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(&s);
        num(&t["skipped_not_eligible"]) >= 50
    });
    assert_eq!(num(&t["skipped_not_eligible"]), 50, "{t}");
    assert_eq!(num(&t["requests"]), 0, "{t}");
}
