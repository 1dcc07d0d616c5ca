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

/// Waits until every filter VM (2 workers + the main-thread VM) routes with the companion's current
/// state version, as each VM reports in its own batches (`/v1/filters`).
fn wait_synced(s: &Stack) {
    s.wait_all_vms_current(3, Duration::from_secs(10));
}

/// Canary share (basis points) per segment at a phase, written from the product's segment policy
/// (internal and beta always canary once live; premium max(10 %, phase); enterprise min(phase, 5 %)
/// until 50 %; standard the phase), not read from the companion.
fn policy_bp(phase_bp: u32) -> [(&'static str, u32); 5] {
    [
        ("internal", 10_000),
        ("beta", 10_000),
        ("premium", phase_bp.max(1_000)),
        (
            "enterprise",
            if phase_bp >= 5_000 {
                phase_bp
            } else {
                phase_bp.min(500)
            },
        ),
        ("standard", phase_bp),
    ]
}

/// flagd fractional v2 buckets (of 10 000) for `demo` + each user, computed by the independent pure
/// Python murmur3 of `scripts/bucketing_vectors.py`, not by the Rust code under test.
fn reference_buckets(users: &[String]) -> std::collections::BTreeMap<String, u32> {
    use std::io::Write as _;
    let code = "import sys\nsys.path.insert(0, sys.argv[1])\nfrom bucketing_vectors import murmur3_32\n\
for line in sys.stdin:\n    u = line.rstrip('\\n')\n    print(u, (murmur3_32(('demo' + u).encode()) * 10000) >> 32)\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", code, root().join("scripts").to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (the bucketing reference)");
    // Feed stdin from a thread while stdout is read: both pipes are bounded, so writing all 20 000
    // ids before reading would deadlock once Python's output fills its pipe.
    let mut stdin = child.stdin.take().unwrap();
    let input: String = users.iter().map(|u| format!("{u}\n")).collect();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "reference bucketing failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let map: std::collections::BTreeMap<String, u32> = text
        .lines()
        .filter_map(|l| {
            let (u, b) = l.rsplit_once(' ')?;
            Some((u.to_string(), b.parse().ok()?))
        })
        .collect();
    assert_eq!(
        map.len(),
        users.len(),
        "reference gave a bucket for every user"
    );
    map
}

/// Every user's track equals the reference decision: canary iff bucket < the segment's share.
fn assert_exact_tracks(report: &traffic::Report, prefix: &str, users: usize, phase_bp: u32) {
    let ids: Vec<(String, &str)> = (0..users)
        .map(|i| {
            let (id, seg, _) = traffic::user_headers(prefix, i);
            (id, seg)
        })
        .collect();
    let buckets = reference_buckets(&ids.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>());
    let shares = policy_bp(phase_bp);
    let mut wrong = Vec::new();
    for (id, seg) in &ids {
        let share = shares.iter().find(|(n, _)| n == seg).map_or(0, |(_, b)| *b);
        let want = buckets[id] < share;
        let got = report.user_track.get(id).copied();
        if got != Some(want) {
            wrong.push(format!(
                "{id} ({seg}, bucket {}): got {got:?}, want {want}",
                buckets[id]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {users} users on the wrong track at {phase_bp} bp, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
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
    assert_exact_tracks(&at5, "user", 20_000, 500);
    for (seg, want_bp) in policy_bp(500) {
        let r = &at5.segments[seg];
        assert_eq!(
            r.flapping_users, 0,
            "{seg}: a user changed track between requests"
        );
        assert_eq!(r.failures, 0, "{seg}: failed requests");
        let share = r.canary_users as f64 / r.users as f64;
        let want = f64::from(want_bp) / 10_000.0;
        if want_bp == 10_000 {
            assert_eq!(
                r.canary_users, r.users,
                "{seg}: a 100 % segment had a stable user"
            );
        } else {
            // Binomial sampling of which users exist: 4 standard deviations.
            let sd = (want * (1.0 - want) / r.users as f64).sqrt();
            assert!(
                (share - want).abs() <= 4.0 * sd,
                "{seg}: canary share {share:.4} vs configured {want} (±{:.4})",
                4.0 * sd
            );
        }
    }
    assert_eq!(at5.status_5xx, 0);

    go_to(&s, "25%");
    wait_synced(&s);
    let at25 = traffic::send(&traffic_args(&s, 20_000, "user")).expect("traffic");
    println!("{}", traffic::render(&at25, None));
    assert_exact_tracks(&at25, "user", 20_000, 2_500);
    let moved_back = at5
        .user_track
        .iter()
        .filter(|(u, canary)| **canary && at25.user_track.get(*u) != Some(&true))
        .count();
    assert_eq!(
        moved_back, 0,
        "users who were canary at 5 % are not canary at 25 %"
    );
    for (seg, _) in policy_bp(2_500) {
        assert_eq!(at25.segments[seg].flapping_users, 0, "{seg} at 25 %");
    }
}

/// Must-show 3: state changes reach routing within 2 sync periods; a dead companion leaves the last state
/// until it is stale, then stable; no request fails meanwhile.
#[test]
fn routing_follows_state_then_fails_safe_when_companion_dies() {
    let mut s = stack(shipped_plugin_config());
    go_to(&s, "1%");
    wait_synced(&s);
    // A standard user who becomes canary only at 50 % (bucket in [25 %, 50 %)).
    let user = (0..10_000)
        .map(|i| format!("u{i}"))
        .find(|u| {
            let b = dwcp_core::bucket::bucket_bp("demo", u);
            (2_500..5_000).contains(&b)
        })
        .expect("user");
    let h = [("x-user-id", user.as_str())];
    assert_eq!(s.get("/", &h).1, "stable");
    for _ in 0..3 {
        s.command("demo", "promote"); // 5, 10, 25
    }
    wait_synced(&s);
    assert_eq!(s.get("/", &h).1, "stable", "canary before 50 %");
    s.command("demo", "promote"); // 50: the user's first canary phase; timing starts here
    let start = std::time::Instant::now();
    assert!(phase_is(&s, "50%"));
    eventually(Duration::from_secs(5), || s.get("/", &h).1 == "canary")
        .expect("routing never changed");
    let took = start.elapsed();
    println!("routing followed the state change in {took:?}");
    assert!(
        took <= Duration::from_millis(2_000 + 500),
        "took {took:?} (> 2 sync periods)"
    );

    // Every worker has the 50 % state before the companion dies (a new connection may land on a worker
    // that has not adopted it yet: that is convergence, not the flapping asserted below).
    wait_synced(&s);
    s.kill_analyzer();
    let killed = std::time::Instant::now();
    let mut last_canary = Duration::ZERO;
    let mut first_stable_after = None;
    while killed.elapsed() < Duration::from_secs(9) {
        let (status, by) = s.get("/", &h);
        assert_eq!(status, 200, "a request failed while the companion was down");
        if by == "canary" {
            assert!(
                first_stable_after.is_none(),
                "canary again after the filters had gone stable (flapping) at {:?}",
                killed.elapsed()
            );
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
    let sent_total: u64 = r.segments.values().map(|x| x.requests).sum();
    let total =
        |text: &str| metric_sum(text, "dwcp_rollout_requests_total", &[("rollout", "demo")]);
    let base = total(&before_comp);
    // Every VM has shipped its batch once the companion's total has grown by what was sent.
    eventually(Duration::from_secs(10), || {
        total(&s.analyzer_metrics()) - base >= sent_total as f64
    })
    .expect("the companion never received every request's batch");
    let after_envoy = s.envoy_stats();
    let after_comp = s.analyzer_metrics();
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
            // identity-filters.yaml is a list of filters for envoy.yaml: validated inserted there.
            let p = if p.ends_with("identity-filters.yaml") {
                let base = std::fs::read_to_string(root().join("envoy/envoy.yaml")).unwrap();
                let out =
                    std::env::temp_dir().join(format!("dwcp-identity-{}.yaml", std::process::id()));
                std::fs::write(&out, with_identity_filters(base)).unwrap();
                out
            } else {
                p
            };
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
    let traps_before = s.envoy_log().matches("unreachable").count();
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
    let traps = s.envoy_log().matches("unreachable").count() - traps_before;
    println!(
        "status of the crashing requests: {crash_statuses:?}; VM traps in Envoy's log: {traps}"
    );
    assert!(
        traps >= 2,
        "the crash requests did not crash the filter ({traps} traps logged)"
    );
}
