//! Issue "shadow mode that compares answers": end to end with a real Envoy. The rollout starts in its
//! shadow phase (no `skip_shadow`), so every eligible request is mirrored to the shadow upstream and
//! the answers are compared in the filter; the companion judges the phase.
//!
//! The demo upstream's answer names the upstream (`served_by`) and carries a fresh `request_id` and
//! `timestamp`: `served_by` is added to the ignored fields here, ids and timestamps are ignored by default.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SHADOW_PHASE: &str =
    "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nphase_seconds = 3600\n";

fn start(shadow: Value) -> Stack {
    start_with(shadow, |_| {}, SHADOW_PHASE)
}

/// `shadow` overrides fields of the plugin's `shadow` settings; `tweak` edits the plugin config.
fn start_with(shadow: Value, tweak: impl FnOnce(&mut Value), analyzer_toml: &str) -> Stack {
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
    tweak(&mut plugin);
    let s = Stack::start(StackOpts {
        plugin_config: plugin,
        analyzer_toml: analyzer_toml.into(),
        concurrency: 1,
    });
    // Every VM routes with the shadow-phase state (shadow_bp 10 000) after its next sync (≤ 1 s). The
    // batch window open when a VM adopts a new state is labelled with the older state (the companion then
    // does not credit it to the phase), so wait for that window to close too: one more batch per VM.
    assert!(
        eventually(Duration::from_secs(10), || s.rollout("demo")["phase"]
            == "shadow")
        .is_some()
    );
    // One worker VM plus the main-thread VM.
    s.wait_current_window(2, Duration::from_secs(10));
    s
}

/// `n` sequential requests; returns (statuses, latencies in ms).
fn load(s: &Stack, method: &str, n: usize) -> (Vec<u16>, Vec<f64>) {
    load_host(s, method, n, None)
}

/// `n` sequential requests, with `host` as the authority if given.
fn load_host(s: &Stack, method: &str, n: usize, host: Option<&str>) -> (Vec<u16>, Vec<f64>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut codes = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let mut req = agent
            .request(method, &format!("{}/items/{}", s.envoy_url(), i % 50))
            .set("x-user-id", &format!("u{}", i % 500));
        if let Some(h) = host {
            req = req.set("host", h);
        }
        let r = if method == "POST" || method == "PUT" {
            req.send_string(&format!(
                "{{\"a\":{i},\"pad\":\"{}\"}}",
                "x".repeat(i % 700)
            ))
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

/// Waits (up to 10 s) for the companion to roll the `demo` rollout back.
fn rolled_back(s: &Stack) -> bool {
    eventually(Duration::from_secs(10), || {
        s.rollout("demo")["status"] == "rolled_back"
    })
    .is_some()
}

fn totals(s: &Stack) -> Value {
    s.rollout("demo")["shadow_totals"].clone()
}

/// A counter from the companion's JSON. A missing or non-integer field panics (it is never read as 0:
/// a renamed field must not pass `== 0`).
#[track_caller]
fn num(v: &Value) -> u64 {
    match v.as_u64() {
        Some(n) => n,
        None => panic!("expected a non-negative integer, got {v} (a missing field?)"),
    }
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

/// Two rollouts on the same Envoy: `demo` (host `shadow-on.test`) mirrors every request, `plain` (any
/// other host) has no shadow cluster. Requests go in alternating blocks to one or the other, so the
/// user latency with shadow on and off is measured in the same run, under the same machine load.
const ON_OFF: &str =
    "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nphase_seconds = 3600\n\
     [[rollout]]\nname = \"plain\"\nautostart = true\nphase_seconds = 3600\n";

#[test]
fn identical_shadow_has_zero_mismatches() {
    let s = start_with(
        json!({}),
        |p| {
            p["rollouts"] = json!([
                {"name": "demo", "hosts": ["shadow-on.test"], "path_prefix": "/", "shadow_cluster": "shadow"},
                {"name": "plain", "hosts": ["*"], "path_prefix": "/"}
            ]);
        },
        ON_OFF,
    );
    let delay: u64 = std::env::var("SHADOW_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if delay > 0 {
        s.upstream("stable", json!({"delay_ms": delay}));
        s.upstream("shadow", json!({"delay_ms": delay}));
    }
    let (rounds, block) = (10, 500);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let (mut ratios, mut added) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let run = |host: &str| {
            let (codes, lat) = load_host(&s, "GET", block, Some(host));
            assert!(codes.iter().all(|c| *c == 200), "{host}: {codes:?}");
            lat
        };
        // Alternate the order so that a drift in machine load hits both modes alike.
        let (a, b) = if round % 2 == 0 {
            let a = run("shadow-on.test");
            (a, run("plain.test"))
        } else {
            let b = run("plain.test");
            (run("shadow-on.test"), b)
        };
        ratios.push(p(&a, 0.99) / p(&b, 0.99));
        added.push(p(&a, 0.99) - p(&b, 0.99));
        on.extend(a);
        off.extend(b);
    }
    let n = (rounds * block) as u64;
    let t = wait_compared(&s, n);
    ratios.sort_by(|a, b| a.total_cmp(b));
    let median_ratio = ratios[ratios.len() / 2];
    added.sort_by(|a, b| a.total_cmp(b));
    let median_added_ms = added[added.len() / 2];
    eprintln!(
        "identical: {t}\nuser latency over {n} requests each, same run: shadow on p50 {:.3} p99 {:.3} ms; \
         off p50 {:.3} p99 {:.3} ms; pooled p99 ratio {:.3}; per-round p99 ratios {ratios:.3?} (median {median_ratio:.3}), added p99 median {median_added_ms:.3} ms",
        p(&on, 0.5),
        p(&on, 0.99),
        p(&off, 0.5),
        p(&off, 0.99),
        p(&on, 0.99) / p(&off, 0.99),
    );
    // Every request is either compared or skipped (bounded in-flight state), none lost.
    assert_eq!(num(&t["compared"]) + num(&t["skipped_in_flight"]), n, "{t}");
    assert!(num(&t["compared"]) as f64 >= 0.99 * n as f64, "{t}");
    assert_eq!(num(&t["mismatches"]), 0, "{t}");
    assert_eq!(num(&t["side_call_failed"]), 0, "{t}");
    let r = s.rollout("demo");
    assert_eq!(r["status"], "running", "{r}");
    assert_eq!(r["phase"], "shadow");
    // The `plain` rollout sent no copies.
    assert_eq!(num(&s.rollout("plain")["shadow_totals"]["requests"]), 0);
    // A gross-slowdown check only; `make bench-shadow` holds the 10 % aim on a quiet machine. With a
    // zero-delay shadow a filter that held the user's answer until the shadow's came back would add
    // well under a millisecond, which this test cannot tell from noise: the 200 ms and hanging shadow
    // tests below catch that bug. A ratio is the wrong measure at this scale: the per-round p99 is the
    // 5th largest of 500 sub-millisecond latencies, and on 2 shared cores the shadow upstream's own CPU
    // competes with the user's (per-round ratios 0.49–2.58, median 1.77, in one CI run whose p99s were
    // 2.5 vs 2.0 ms). What a user feels is the added milliseconds, so that is what is bounded.
    assert!(
        median_added_ms <= 3.0,
        "the shadow adds {median_added_ms:.2} ms to the user's p99 (median of {rounds} interleaved rounds)"
    );
    assert!(p(&on, 0.99) <= 2.0 * p(&off, 0.99) + 5.0);
}

/// Noise copy (Diffy-style): the ids and timestamps are NOT ignored here, so every answer differs from
/// stable; a second copy to stable shows that two stable answers differ at those paths too, so they are
/// noise and the phase keeps running. A price changed in 10 % of the shadow's answers is not noise: it
/// fails the phase, and the evidence names `item.price` and lists the noisy paths apart.
#[test]
fn noise_copy_separates_noise_from_regressions() {
    let s = start_with(
        json!({"ignore_fields": ["served_by"], "noise_copy": true, "max_in_flight": 256}),
        |p| p["rollouts"][0]["noise_cluster"] = json!("stable"),
        SHADOW_PHASE,
    );
    let n = 600;
    let (codes, _) = load(&s, "GET", n);
    assert!(codes.iter().all(|c| *c == 200));
    let t = wait_compared(&s, n as u64 - 10);
    eprintln!("noise, identical shadow: {t}");
    let (m, noise, cmp) = (num(&t["mismatches"]), num(&t["noise"]), num(&t["compared"]));
    assert!(
        m as f64 >= 0.99 * cmp as f64,
        "ids differ in every answer: {t}"
    );
    assert!(num(&t["noise_compared"]) as f64 >= 0.99 * cmp as f64, "{t}");
    assert!(
        ((m - noise) as f64) < 0.01 * cmp as f64,
        "mismatches over noise: {} of {cmp}: {t}",
        m - noise
    );
    let r = s.rollout("demo");
    assert_eq!(r["status"], "running", "noise failed the phase: {r}");
    // Now a real regression on top of the noise.
    s.upstream("shadow", json!({"mutate_rate": 0.1}));
    let before = t;
    let (codes, _) = load(&s, "GET", n);
    assert!(codes.iter().all(|c| *c == 200));
    let failed = rolled_back(&s);
    let r = s.rollout("demo");
    let t = &r["shadow_totals"];
    let d = |k: &str| num(&t[k]) - num(&before[k]);
    let rate = (d("mismatches") - d("noise")) as f64 / d("compared").max(1) as f64;
    eprintln!("noise + 10 % mutated: rate over noise {rate:.3}; totals {t}");
    assert!(failed, "phase not failed: {r}");
    assert!((0.08..=0.12).contains(&rate), "rate over noise {rate}: {t}");
    // The samples name the price. (A millisecond timestamp that ticks over between the primary and the
    // shadow, while both stable answers agree, can also show up now and then: rare, under the threshold.)
    let samples = r["shadow_samples"].as_array().cloned().unwrap_or_default();
    let price: Vec<&Value> = samples
        .iter()
        .filter(|x| x["diffs"][0]["path"] == "item.price")
        .collect();
    assert!(price.len() * 2 > samples.len(), "{r}");
    let noisy = price[0]["noise_paths"].to_string();
    assert!(noisy.contains("request_id"), "{}", price[0]);
    // Companion metrics carry the noise counters.
    let m = s.analyzer_metrics();
    assert!(
        metric_sum(
            &m,
            "dwcp_rollout_shadow_total",
            &[("rollout", "demo"), ("event", "noise")]
        ) >= noise as f64,
        "{m}"
    );
}

#[test]
fn ten_percent_mutated_fails_the_phase_naming_the_path() {
    let s = start(json!({}));
    s.upstream("shadow", json!({"mutate_rate": 0.1}));
    let n = 500;
    let (codes, _) = load(&s, "GET", n);
    assert!(codes.iter().all(|c| *c == 200));
    let failed = rolled_back(&s);
    let r = s.rollout("demo");
    let t = &r["shadow_totals"];
    let rate = num(&t["mismatches"]) as f64 / num(&t["compared"]).max(1) as f64;
    eprintln!("mutated: rate {:.3} totals {t}", rate);
    assert!(failed, "phase not failed: {r}");
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
    let failed = rolled_back(&s);
    let r = s.rollout("demo");
    let t = &r["shadow_totals"];
    eprintln!(
        "slow: user p50 {:.2} ms (before {:.2}), p99 {:.2} ms; totals {t}",
        p(&lat, 0.5),
        p(&base, 0.5),
        p(&lat, 0.99)
    );
    assert!(failed, "phase not failed: {r}");
    assert!(num(&t["slower"]) >= 100, "{t}");
    let d50 = r["shadow"]["latency_delta_us"].clone();
    assert!(num(&d50["count"]) > 0, "{r}");
    let ev = s.get_json(&format!("{}/v1/rollouts/demo/events", s.analyzer_url()));
    assert!(ev.to_string().contains("shadow:latency"), "{ev}");
    // The user never waits for the 200 ms shadow: not at the median, not in the tail.
    assert!(p(&lat, 0.5) < 50.0, "user p50 {}", p(&lat, 0.5));
    assert!(
        p(&lat, 0.99) < p(&base, 0.99) + 50.0,
        "user p99 {:.1} ms with a 200 ms shadow vs {:.1} ms before",
        p(&lat, 0.99),
        p(&base, 0.99)
    );
}

/// 200 user requests while the shadow misbehaves: all answer 200 without waiting for it (p50 < 50 ms), and
/// at least `failures` side calls are counted as failed. Returns the companion's shadow totals.
fn users_unaffected_side_calls_failing(s: &Stack, case: &str, failures: u64) -> Value {
    let (codes, lat) = load(s, "GET", 200);
    assert!(
        codes.iter().all(|c| *c == 200),
        "{case}: user requests failed"
    );
    assert!(p(&lat, 0.5) < 50.0, "{case}: user p50 {}", p(&lat, 0.5));
    assert!(p(&lat, 0.99) < 100.0, "{case}: user p99 {}", p(&lat, 0.99));
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(s);
        num(&t["side_call_failed"]) >= failures
    });
    eprintln!(
        "{case}: user p50 {:.2} ms p99 {:.2} ms; totals {t}",
        p(&lat, 0.5),
        p(&lat, 0.99)
    );
    assert!(num(&t["side_call_failed"]) >= failures, "{case}: {t}");
    t
}

#[test]
fn hanging_shadow_costs_side_calls_only() {
    let s = start(json!({"timeout_ms": 300}));
    s.upstream("shadow", json!({"delay_ms": 5000}));
    let t = users_unaffected_side_calls_failing(&s, "hanging", 10);
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
fn down_shadow_costs_side_calls_only() {
    let mut s = start(json!({}));
    s.kill_upstream("shadow");
    let t = users_unaffected_side_calls_failing(&s, "down", 200);
    // Every copy was refused and counted.
    assert_eq!(num(&t["side_call_failed"]), 200, "{t}");
    // A shadow that cannot answer does not pass its phase: no user is routed to it.
    assert!(rolled_back(&s), "{}", s.rollout("demo"));
    // Whichever shadow test crosses first (every copy is a 503 from Envoy and differs from the primary);
    // the evidence shows Envoy's "upstream connect error" as the shadow's answer.
    let ev = s.rolled_back_event("demo").to_string();
    assert!(
        ev.contains("shadow:errors") || ev.contains("shadow:mismatch"),
        "{ev}"
    );
    assert!(ev.contains("upstream connect error"), "{ev}");
}

/// A configured method with a body (PUT): the copy carries the body. The demo upstream echoes the size
/// and byte sum of the body it got, so a copy that lost or cut its body would differ from the primary.
/// Bodies over `max_body_bytes` (here 200 bytes; the pad grows with the request number) are skipped and
/// counted.
#[test]
fn configured_method_copies_the_request_body() {
    let s = start(json!({"methods": ["GET", "PUT"], "max_body_bytes": 200}));
    let n = 300;
    let (codes, _) = load(&s, "PUT", n);
    assert!(codes.iter().all(|c| *c == 200));
    // Bodies are 17 + digits + (i % 700) bytes: those over 200 bytes are skipped.
    let big = (0..n)
        .filter(|i| format!("{{\"a\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 700)).len() > 200)
        .count() as u64;
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(&s);
        num(&t["compared"]) + num(&t["skipped_body_too_big"]) >= n as u64
    });
    eprintln!("put: {t}");
    assert_eq!(num(&t["skipped_body_too_big"]), big, "{t}");
    assert_eq!(num(&t["compared"]), n as u64 - big, "{t}");
    assert!(
        big > 50 && big < n as u64 - 50,
        "both cases exercised: {big}"
    );
    assert_eq!(num(&t["mismatches"]), 0, "a copy's body differed: {t}");
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

/// Under pressure the copies still never delay the user: a shadow that hangs (5 s, past the side-call
/// timeout), the in-flight bound saturated, and large chunked request bodies (over the copy bound).
/// User p99 with the shadow on vs off, interleaved in the same run.
#[test]
fn shadow_under_pressure_never_delays_the_user() {
    let s = start_with(
        json!({"methods": ["GET", "POST"], "max_in_flight": 4, "max_body_bytes": 16384, "timeout_ms": 1000}),
        |p| {
            p["rollouts"] = json!([
                {"name": "demo", "hosts": ["shadow-on.test"], "path_prefix": "/", "shadow_cluster": "shadow"},
                {"name": "plain", "hosts": ["*"], "path_prefix": "/"}
            ]);
        },
        ON_OFF,
    );
    s.upstream("shadow", json!({"delay_ms": 5000}));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let big = vec![b'x'; 256 * 1024];
    let run = |host: &str, n: usize| -> Vec<f64> {
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            let req = agent
                .request(
                    if i % 2 == 0 { "GET" } else { "POST" },
                    &format!("{}/items/{}", s.envoy_url(), i % 50),
                )
                .set("host", host)
                .set("x-user-id", &format!("u{}", i % 500));
            // A reader of unknown length: ureq sends it chunked.
            let r = if i % 2 == 0 {
                req.call()
            } else {
                req.send(std::io::Cursor::new(big.clone()))
            };
            let code = match r {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(c, _)) => c,
                Err(e) => panic!("{host}: request failed: {e}"),
            };
            assert_eq!(code, 200, "{host}: status {code}");
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat
    };
    let (rounds, block) = (8, 100);
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = run("shadow-on.test", block);
            (a, run("plain.test", block))
        } else {
            let b = run("plain.test", block);
            (run("shadow-on.test", block), b)
        };
        ratios.push(p(&a, 0.99) / p(&b, 0.99));
        on.extend(a);
        off.extend(b);
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let median_ratio = ratios[ratios.len() / 2];
    let mut t = Value::Null;
    eventually(Duration::from_secs(10), || {
        t = totals(&s);
        num(&t["skipped_in_flight"]) > 0 && num(&t["skipped_body_too_big"]) > 0
    });
    eprintln!(
        "pressure: user p50/p99 on {:.2}/{:.2} ms, off {:.2}/{:.2} ms; per-round p99 ratios {ratios:.2?} \
         (median {median_ratio:.2}); totals {t}",
        p(&on, 0.5),
        p(&on, 0.99),
        p(&off, 0.5),
        p(&off, 0.99)
    );
    // The pressure was real: the bound was hit and big bodies were skipped, not buffered.
    assert!(
        num(&t["skipped_in_flight"]) > 0,
        "in-flight bound never saturated: {t}"
    );
    assert!(
        num(&t["skipped_body_too_big"]) > 0,
        "no body over the copy bound: {t}"
    );
    // Nobody waited for the hanging shadow (5 s) or its 1 s timeout.
    assert!(
        p(&on, 0.99) < 500.0,
        "user p99 {:.1} ms with a hanging shadow",
        p(&on, 0.99)
    );
    // The per-round p99 of 100 requests is one request's time and swings 0.1–5× between rounds on a
    // shared machine (printed above); the pooled tails of the 800 requests per mode are compared.
    assert!(
        p(&on, 0.99) <= 2.0 * p(&off, 0.99) + 5.0,
        "user p99 with the shadow on {:.2} ms vs off {:.2} ms (pooled, same run)",
        p(&on, 0.99),
        p(&off, 0.99)
    );
}
