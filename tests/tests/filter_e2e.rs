//! Issue "the per-request filter, proven in a real Envoy": every must-show, against a real Envoy.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_analyzer::traffic::{self, Args as TrafficArgs};
use dwcp_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const HOLD: &str = "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n";

fn plugin(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = shipped_plugin_config();
    f(&mut v);
    v
}

fn stack(plugin_config: Value) -> Stack {
    Stack::start(StackOpts {
        plugin_config,
        analyzer_toml: HOLD.into(),
        concurrency: 2,
    })
}

fn phase_is(s: &Stack, phase: &str) -> bool {
    s.rollout("demo")["phase"] == phase
}

/// Promotes until the rollout is at `phase`, pausing so it holds there.
fn go_to(s: &Stack, phase: &str) {
    if s.rollout("demo")["status"] == "running" {
        s.command("demo", "pause");
    }
    while !phase_is(s, phase) {
        s.command("demo", "promote");
    }
}

/// Waits until the filters route with the companion's current state version.
fn wait_synced(s: &Stack) {
    let v = s.get_json(&format!("{}/v1/config", s.analyzer_url()))["state"]["version"]
        .as_f64()
        .unwrap_or(0.0);
    let ok = eventually(Duration::from_secs(10), || {
        metric_sum(&s.envoy_stats(), "dwcp_state_version", &[]) >= v
    });
    if ok.is_none() {
        let log = s.envoy_log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!(
            "filters never reached state version {v}; envoy log tail:\n{}",
            tail.join("\n")
        );
    }
    std::thread::sleep(Duration::from_millis(1500)); // every worker VM reads shared data on its next tick
}

fn traffic_args(s: &Stack, users: usize, prefix: &str) -> TrafficArgs {
    TrafficArgs {
        envoy: s.envoy_url(),
        users,
        requests_per_user: 2,
        concurrency: 8,
        prefix: prefix.into(),
        path: "/".into(),
    }
}

/// Must-show 1 and 2: 20 000 users, sticky, shares per segment, and raising 5 % → 25 % keeps canaries.
#[test]
fn shares_are_sticky_accurate_and_monotone() {
    let s = stack(shipped_plugin_config());
    go_to(&s, "5%");
    wait_synced(&s);
    let at5 = traffic::send(&traffic_args(&s, 20_000, "user")).expect("traffic");
    println!("{}", traffic::render(&at5, None));
    let expect5 = [
        ("internal", 1.0),
        ("beta", 1.0),
        ("premium", 0.10),
        ("enterprise", 0.05),
        ("standard", 0.05),
    ];
    for (seg, want) in expect5 {
        let r = &at5.segments[seg];
        assert_eq!(
            r.flapping_users, 0,
            "{seg}: a user changed track between requests"
        );
        assert_eq!(r.failures, 0, "{seg}: failed requests");
        let share = r.canary_users as f64 / r.users as f64;
        assert!(
            (share - want).abs() <= 0.015,
            "{seg}: canary share {share:.4} vs configured {want}"
        );
    }
    assert_eq!(at5.status_5xx, 0);

    go_to(&s, "25%");
    wait_synced(&s);
    let at25 = traffic::send(&traffic_args(&s, 20_000, "user")).expect("traffic");
    println!("{}", traffic::render(&at25, None));
    let moved_back = at5
        .user_track
        .iter()
        .filter(|(u, canary)| **canary && at25.user_track.get(*u) != Some(&true))
        .count();
    assert_eq!(
        moved_back, 0,
        "users who were canary at 5 % are not canary at 25 %"
    );
    let std25 = &at25.segments["standard"];
    let share = std25.canary_users as f64 / std25.users as f64;
    assert!((share - 0.25).abs() <= 0.015, "standard at 25 %: {share}");
}

/// Must-show 3: state changes reach routing within 2 sync periods; a dead companion leaves the last state
/// until it is stale, then stable; no request fails meanwhile.
#[test]
fn routing_follows_state_then_fails_safe_when_companion_dies() {
    let mut s = stack(shipped_plugin_config());
    go_to(&s, "1%");
    wait_synced(&s);
    // A standard user who is canary at 50 % but not at 1 %.
    let user = (0..10_000)
        .map(|i| format!("u{i}"))
        .find(|u| {
            let b = dwcp_core::bucket::bucket_bp("demo", u);
            (100..5_000).contains(&b)
        })
        .expect("user");
    let h = [("x-user-id", user.as_str())];
    assert_eq!(s.get("/", &h).1, "stable");
    for _ in 0..4 {
        s.command("demo", "promote"); // 5, 10, 25, 50
    }
    assert!(phase_is(&s, "50%"));
    let took = eventually(Duration::from_secs(5), || s.get("/", &h).1 == "canary")
        .expect("routing never changed");
    println!("routing followed the state change in {took:?}");
    assert!(
        took <= Duration::from_millis(2_000 + 500),
        "took {took:?} (> 2 sync periods)"
    );

    s.kill_analyzer();
    let killed = std::time::Instant::now();
    let mut last_canary = Duration::ZERO;
    let mut first_stable_after = None;
    while killed.elapsed() < Duration::from_secs(9) {
        let (status, by) = s.get("/", &h);
        assert_eq!(status, 200, "a request failed while the companion was down");
        if by == "canary" {
            last_canary = killed.elapsed();
        } else if first_stable_after.is_none() {
            first_stable_after = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("companion down: last canary at {last_canary:?}, stable from {first_stable_after:?}");
    // staleness_ms is 5000 in the shipped config; the tick (1 s) bounds how late it is noticed.
    assert!(
        last_canary >= Duration::from_secs(3),
        "left the last state too early ({last_canary:?})"
    );
    assert!(
        last_canary <= Duration::from_millis(7_500),
        "still canary long after staleness ({last_canary:?})"
    );
    assert_eq!(s.get("/", &h).1, "stable");
}

/// Must-show 4: malformed headers never produce a 5xx from the filter.
#[test]
fn malformed_headers_never_5xx() {
    let s = stack(shipped_plugin_config());
    go_to(&s, "100%");
    wait_synced(&s);
    let long = "a".repeat(8 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty user id", b"x-user-id: \r\n".to_vec()),
        (
            "8 KiB user id",
            format!("x-user-id: {long}\r\n").into_bytes(),
        ),
        (
            "8 KiB email",
            format!("x-user-id: a\r\nx-user-email: {long}\r\n").into_bytes(),
        ),
        ("non-UTF-8 user id", b"x-user-id: \xff\xfe\xfd\r\n".to_vec()),
        (
            "non-UTF-8 tier",
            b"x-user-id: a\r\nx-user-tier: \xc3\x28\r\n".to_vec(),
        ),
        (
            "duplicate user id",
            b"x-user-id: a\r\nx-user-id: b\r\n".to_vec(),
        ),
        (
            "duplicate track header",
            b"x-user-id: a\r\nx-dwcp-track: canary\r\nx-dwcp-track: stable\r\n".to_vec(),
        ),
        ("no headers at all", Vec::new()),
    ];
    for (desc, block) in cases {
        for _ in 0..5 {
            let code = raw_get(s.ports.envoy, &block);
            assert!((200..500).contains(&code), "{desc}: status {code}");
        }
    }
    let stats = s.envoy_stats();
    assert!(
        metric_sum(
            &stats,
            "dwcp_filter_events_total",
            &[("event", "bad_header")]
        ) >= 1.0
            || eventually(Duration::from_secs(3), || metric_sum(
                &s.envoy_stats(),
                "dwcp_filter_events_total",
                &[("event", "bad_header")]
            ) >= 1.0)
            .is_some(),
        "bad headers are counted"
    );
}

/// Must-show 5: a plugin config with an unknown field or operator is refused at load, naming the field.
#[test]
fn bad_plugin_config_is_refused_naming_the_field() {
    let ports = Ports {
        envoy: free_port(),
        admin: free_port(),
        stable: 1,
        canary: 2,
        shadow: 3,
        analyzer: 4,
    };
    let wasm = root().join("dist/dwcp_filter.wasm");
    let cases = [
        (
            plugin(|v| v["rollouts"][0]["colour"] = json!("red")),
            "colour",
        ),
        (
            plugin(|v| {
                v["segments"] = json!({"state": "ENABLED", "variants": {"standard": "standard", "beta": "beta"},
                    "defaultVariant": "standard", "targeting": {"if": [{"regex_match": [{"var": "email"}, "x"]}, "beta", "standard"]}})
            }),
            "segments.targeting.if[0]: unknown operator \"regex_match\"",
        ),
        (
            plugin(|v| v["companion"]["sync_period_ms"] = json!(1)),
            "companion.sync_period_ms",
        ),
    ];
    for (cfg, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, envoy_config(&ports, &cfg, &wasm)).unwrap();
        let out = std::process::Command::new(envoy_bin())
            .args(["--mode", "validate", "-c", path.to_str().unwrap()])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "Envoy accepted a bad plugin config ({field})"
        );
        assert!(log.contains(field), "log does not name {field:?}:\n{log}");
    }
}

/// Must-show 6: Envoy's counters and the companion's received batches agree with what was sent.
#[test]
fn counters_and_batches_agree_with_requests_sent() {
    let s = stack(shipped_plugin_config());
    go_to(&s, "10%");
    wait_synced(&s);
    let before_envoy = s.envoy_stats();
    let before_comp = s.analyzer_metrics();
    let r = traffic::send(&traffic_args(&s, 3_000, "count")).expect("traffic");
    std::thread::sleep(Duration::from_millis(3_000)); // ≥ 2 sync periods: every VM has shipped its batch
    let (after_envoy, after_comp) = (s.envoy_stats(), s.analyzer_metrics());
    for (seg, rep) in &r.segments {
        for track in ["stable", "canary"] {
            let sent = if track == "canary" {
                rep.canary_requests
            } else {
                rep.requests - rep.canary_requests
            } as f64;
            let want = [
                ("rollout", "demo"),
                ("track", track),
                ("segment", seg.as_str()),
            ];
            let envoy = metric_sum(&after_envoy, "dwcp_requests_total", &want)
                - metric_sum(&before_envoy, "dwcp_requests_total", &want);
            let comp = metric_sum(&after_comp, "dwcp_rollout_requests_total", &want)
                - metric_sum(&before_comp, "dwcp_rollout_requests_total", &want);
            assert_eq!(envoy, sent, "Envoy counter {seg}/{track}");
            assert_eq!(comp, sent, "companion total {seg}/{track}");
        }
    }
}

/// Must-show 7: every shipped Envoy config validates.
#[test]
fn shipped_envoy_configs_validate() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("envoy")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") && !p.to_string_lossy().contains("compose") {
            let out = std::process::Command::new(envoy_bin())
                .current_dir(root())
                .args(["--mode", "validate", "-c", p.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} does not validate:\n{}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1);
}

/// Must-show 8: a client-supplied `x-dwcp-track: canary` never selects canary, also after a filter crash.
#[test]
fn client_track_header_never_selects_canary_even_after_a_crash() {
    let s = stack(plugin(|v| v["test_panic_header"] = json!("x-test-crash")));
    go_to(&s, "1%");
    wait_synced(&s);
    let user = (0..1000)
        .map(|i| format!("s{i}"))
        .find(|u| dwcp_core::bucket::bucket_bp("demo", u) >= 100)
        .unwrap();
    let forged = [("x-user-id", user.as_str()), ("x-dwcp-track", "canary")];
    for _ in 0..20 {
        assert_eq!(
            s.get("/", &forged).1,
            "stable",
            "forged header selected canary"
        );
    }
    // No user id at all, forged header: still stable.
    assert_eq!(s.get("/", &[("x-dwcp-track", "canary")]).1, "stable");
    // Crash the filter, then keep forging: stable every time, and never a 5xx once the VM is reloaded.
    let mut crash_statuses = Vec::new();
    for _ in 0..4 {
        let (code, by) = s.try_get(
            "/",
            &[
                ("x-user-id", user.as_str()),
                ("x-dwcp-track", "canary"),
                ("x-test-crash", "1"),
            ],
        );
        crash_statuses.push(code);
        // Requests arriving within the reload backoff (10-20 ms, envoy.yaml) are refused, not passed on.
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_ne!(by, "canary", "the crashing request itself reached canary");
        for _ in 0..10 {
            let (code, by) = s.try_get("/", &forged);
            if code == 0 {
                let log = s.envoy_log();
                let tail: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains("Caught")
                            || l.contains("#")
                            || l.contains("critical")
                            || l.contains("wasm")
                    })
                    .take(40)
                    .collect();
                panic!(
                    "connection failed after a crash; envoy log tail:\n{}",
                    tail.join("\n")
                );
            }
            assert_eq!(
                by, "stable",
                "forged header selected canary after a crash (status {code})"
            );
            assert!(code < 500, "status {code} after a crash");
        }
    }
    println!("status of the crashing requests: {crash_statuses:?}");
    assert!(s.envoy_log().contains("dwcp"), "envoy log");
}
