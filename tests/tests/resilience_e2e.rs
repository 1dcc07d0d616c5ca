//! Faults end to end, with a real Envoy at `--concurrency 4`: the kill switch across a companion crash,
//! a companion that is down, hangs or refuses the token, a VM crash, and a rollback, each checked on
//! every worker (per-worker evidence from Envoy's own listener stats, each request on a new connection).
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
/// Worker VMs plus the main-thread VM each report to the companion.
const VMS: usize = WORKERS + 1;
const HOLD: &str = "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n";
/// Internal users are on canary in every live phase.
const INTERNAL: [(&str, &str); 2] = [
    ("x-user-id", "ops-1"),
    ("x-user-email", "ops-1@company.com"),
];
const STALENESS_MS: u64 = 3_000;
/// Two sync periods of the shipped config (1 s each), plus 250 ms for scheduling on a loaded host.
const TWO_SYNC_PERIODS: Duration = Duration::from_millis(2_250);

fn stack(plugin: impl FnOnce(&mut Value)) -> Stack {
    let mut cfg = shipped_plugin_config();
    cfg["companion"]["staleness_ms"] = json!(STALENESS_MS);
    plugin(&mut cfg);
    let s = Stack::start(StackOpts {
        plugin_config: cfg,
        analyzer_toml: HOLD.into(),
        concurrency: WORKERS as u32,
    });
    s.wait_all_vms_current(VMS, Duration::from_secs(15));
    s
}

/// Asserts a burst of `n` new-connection requests is all `want` and reached every worker.
fn all_on(s: &Stack, headers: &[(&str, &str)], want: &str, n: usize, when: &str) {
    let b = s.burst(headers, n);
    let got = if want == "canary" { b.canary } else { b.stable };
    assert_eq!(got, n, "{when}: expected all {n} on {want}, got {b:?}");
    assert!(
        b.reached_workers(WORKERS),
        "{when}: the burst did not reach all {WORKERS} workers: {b:?}"
    );
}

/// Sends requests (each on a new connection) until 60 in a row are on `want` and those reached every
/// worker; returns when the last answer not on `want` was seen (zero if none was), measured from the call.
fn until_all_on(s: &Stack, headers: &[(&str, &str)], want: &str, timeout: Duration) -> Duration {
    let block = header_block(headers);
    let start = Instant::now();
    let mut last_other = Duration::ZERO;
    let mut run = 0;
    let mut run_workers = s.worker_connections();
    while start.elapsed() < timeout {
        let ok = fresh_get(s.ports.envoy, &block).is_some_and(|(c, by)| c < 500 && by == want);
        if !ok {
            last_other = start.elapsed();
            run = 0;
            run_workers = s.worker_connections();
            continue;
        }
        run += 1;
        if run >= 60 {
            let now = s.worker_connections();
            let reached = now
                .iter()
                .filter(|(w, v)| **v > run_workers.get(*w).copied().unwrap_or(0.0))
                .count();
            if reached >= WORKERS {
                return last_other;
            }
        }
    }
    panic!("never 60 in a row on {want} over all workers within {timeout:?}");
}

#[test]
fn kill_switch_reaches_every_worker_and_survives_a_companion_crash() {
    let mut s = stack(|_| {});
    all_on(&s, &INTERNAL, "canary", 80, "before the kill switch");

    s.kill_switch(true);
    let took = until_all_on(&s, &INTERNAL, "stable", Duration::from_secs(5));
    println!("kill switch on → every worker on stable in {took:?}");
    assert!(
        took <= TWO_SYNC_PERIODS,
        "kill switch took {took:?} (> two sync periods)"
    );

    // A crash of the companion, then a restart: the switch stays on.
    s.kill_analyzer();
    s.start_analyzer();
    let config = s.get_json(&format!("{}/v1/config", s.analyzer_url()));
    assert_eq!(
        config["state"]["kill_all"], true,
        "restarted companion: {config}"
    );
    // Every VM has synced with the restarted companion (its version is bumped on start)...
    s.wait_all_vms_current(VMS, Duration::from_secs(10));
    // ... and still serves stable.
    all_on(
        &s,
        &INTERNAL,
        "stable",
        120,
        "after the companion restarted",
    );

    s.kill_switch(false);
    let took = until_all_on(&s, &INTERNAL, "canary", Duration::from_secs(5));
    println!("kill switch off → routing resumed on every worker in {took:?}");
}

#[test]
fn rollback_reaches_every_worker() {
    let s = stack(|_| {});
    all_on(&s, &INTERNAL, "canary", 80, "before the abort");
    s.command("demo", "abort");
    let took = until_all_on(&s, &INTERNAL, "stable", Duration::from_secs(5));
    println!("abort → zero canary answers on every worker after {took:?}");
    assert!(
        took <= TWO_SYNC_PERIODS,
        "rollback took {took:?} (> two sync periods)"
    );
    // And it stays so: a longer burst, every worker, not one canary answer.
    all_on(&s, &INTERNAL, "stable", 200, "after the abort");
}

/// The companion is down, then hangs (accepts, never answers), then refuses the token: each time the
/// filters keep the last good state until the staleness bound, then serve stable; routing resumes after.
#[test]
fn companion_down_hanging_or_refusing_fails_safe_then_recovers() {
    let mut s = stack(|_| {});
    all_on(&s, &INTERNAL, "canary", 40, "at start");
    let bound = Duration::from_millis(STALENESS_MS);

    // 1. Down (connection refused).
    s.kill_analyzer();
    let down = Instant::now();
    std::thread::sleep(bound - Duration::from_millis(1_600));
    all_on(
        &s,
        &INTERNAL,
        "canary",
        40,
        "companion down, inside the staleness bound",
    );
    let waited = down.elapsed();
    let stale_at = waited + until_all_on(&s, &INTERNAL, "stable", bound + Duration::from_secs(4));
    println!("companion down → last canary answer {stale_at:?} after it died (bound {bound:?})");
    // Freshness is the age of the last good sync (≤ 1 s before the kill), recomputed on the 1 s tick.
    assert!(
        stale_at <= bound + Duration::from_millis(1_500),
        "still canary {stale_at:?} after the companion died (bound {bound:?})"
    );
    s.start_analyzer();
    let took = until_all_on(&s, &INTERNAL, "canary", Duration::from_secs(6));
    println!("companion back → canary again in {took:?}");

    // 2. Hanging: the port accepts connections and never answers.
    s.kill_analyzer();
    let listener = TcpListener::bind(("127.0.0.1", s.ports.analyzer)).expect("bind analyzer port");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((c, _)) = listener.accept() {
                    held.push(c);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            held.len()
        })
    };
    let took = until_all_on(&s, &INTERNAL, "stable", bound + Duration::from_secs(4));
    println!("companion hanging → stable after {took:?} more");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held = holder.join().expect("holder");
    assert!(
        held > 0,
        "the filters never connected to the hanging companion"
    );
    s.start_analyzer();
    until_all_on(&s, &INTERNAL, "canary", Duration::from_secs(6));

    // 3. The companion refuses the filters' token (401).
    s.kill_analyzer();
    s.set_analyzer_token("another-token-entirely");
    s.start_analyzer();
    let took = until_all_on(&s, &INTERNAL, "stable", bound + Duration::from_secs(4));
    println!("token refused (401) → stable after {took:?}");
    let failures = metric_sum(&s.analyzer_metrics(), "dwcp_auth_failures_total", &[]);
    assert!(failures > 0.0, "the companion counted no auth failure");
    s.kill_analyzer();
    s.set_analyzer_token(TOKEN);
    s.start_analyzer();
    let took = until_all_on(&s, &INTERNAL, "canary", Duration::from_secs(6));
    println!("token fixed → canary again in {took:?}");
}

/// A canary user stays canary across VM crashes: the reloaded VM routes with the process's state from
/// its first request, not from its first tick.
#[test]
fn canary_user_stays_canary_across_vm_crashes() {
    let s = stack(|v| v["test_panic_header"] = json!("x-test-crash"));
    s.command("demo", "pause");
    // A standard user inside the 1 % canary (bucket < 100 of 10 000), by the core's own bucketing.
    let user = (0..100_000)
        .map(|i| format!("c{i}"))
        .find(|u| dwcp_core::bucket::bucket_bp("demo", u) < 100)
        .expect("a user in the 1 % canary");
    let h = [("x-user-id", user.as_str())];
    all_on(&s, &h, "canary", 60, "before the crashes");
    let crashes_before = s.envoy_log().matches("unreachable").count();
    let mut after_crash = Burst::default();
    for _ in 0..12 {
        let block = format!("x-user-id: {user}\r\nx-test-crash: 1\r\n");
        let _ = fresh_get(s.ports.envoy, block.as_bytes());
        // Past the reload backoff (10-20 ms) but far inside a sync period (1 s).
        std::thread::sleep(Duration::from_millis(60));
        let b = s.burst(&h, 8);
        after_crash.canary += b.canary;
        after_crash.stable += b.stable;
        after_crash.failed += b.failed;
    }
    let crashes = s.envoy_log().matches("unreachable").count() - crashes_before;
    println!("VM crashes seen in Envoy's log: {crashes}; requests right after: {after_crash:?}");
    assert!(
        crashes >= 6,
        "the crash requests did not crash VMs ({crashes} traps logged)"
    );
    assert_eq!(
        after_crash.stable, 0,
        "a canary user was served by stable right after a VM reload: {after_crash:?}"
    );
    assert_eq!(after_crash.canary + after_crash.failed, 96);
    assert!(
        after_crash.failed <= 12,
        "too many failed requests: {after_crash:?}"
    );
}

/// A canary user stays canary across a plugin-config change: Envoy builds new root contexts with the
/// new config (here via file-based LDS), and they route with the shared state from the first request.
#[test]
fn canary_user_stays_canary_across_a_plugin_config_change() {
    let mut cfg = shipped_plugin_config();
    cfg["companion"]["staleness_ms"] = json!(STALENESS_MS);
    let s = Stack::start_lds(StackOpts {
        plugin_config: cfg.clone(),
        analyzer_toml: HOLD.into(),
        concurrency: WORKERS as u32,
    });
    s.wait_all_vms_current(VMS, Duration::from_secs(15));
    s.command("demo", "pause");
    let user = (0..100_000)
        .map(|i| format!("c{i}"))
        .find(|u| dwcp_core::bucket::bucket_bp("demo", u) < 100)
        .expect("a user in the 1 % canary");
    let h = [("x-user-id", user.as_str())];
    all_on(&s, &h, "canary", 60, "before the config change");
    let updates = |s: &Stack| {
        metric_sum(
            &s.envoy_stats(),
            "envoy_listener_manager_lds_update_success",
            &[],
        )
    };
    let before = updates(&s);
    let configured = s.envoy_log().matches("dwcp: configured").count();
    // A real change: the decision header is turned off.
    cfg["explain"] = json!(false);
    s.update_plugin_config(&cfg);
    eventually(Duration::from_secs(10), || updates(&s) > before)
        .expect("Envoy never applied the LDS update");
    let took = eventually(Duration::from_secs(5), || {
        s.envoy_log().matches("dwcp: configured").count() >= configured + WORKERS
    });
    let now_configured = s.envoy_log().matches("dwcp: configured").count() - configured;
    println!("plugin config applied; new root contexts configured: {now_configured} ({took:?})");
    assert!(
        now_configured >= WORKERS,
        "the new plugin config was not loaded on every worker"
    );
    // Right away (well inside a sync period), every worker: still canary.
    all_on(&s, &h, "canary", 80, "right after the plugin-config change");
}
