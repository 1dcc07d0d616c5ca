//! Issue "the companion service": end to end with a real Envoy, the filter and demo upstreams, using a
//! compressed ladder (seconds per phase).
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const LADDER: &str = "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 2\nmin_requests = 40\n";

/// One observed response: (wall ms, served by canary, status).
type Seen = Arc<Mutex<Vec<(u64, bool, u16)>>>;

/// Background traffic: `threads` loops of GETs by 2 000 rotating users until stopped.
fn traffic(
    s: &Stack,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> (Seen, Vec<std::thread::JoinHandle<()>>) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for t in 0..threads {
        let (seen, stop, url) = (seen.clone(), stop.clone(), s.envoy_url());
        hs.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let (_, _, headers) = dwcp_analyzer::traffic::user_headers("load", i % 2_000);
                i += threads;
                let mut req = agent.get(&format!("{url}/"));
                for (k, v) in &headers {
                    req = req.set(k, v);
                }
                let (code, by) = match req.call() {
                    Ok(r) => (
                        r.status(),
                        r.header("x-served-by").unwrap_or("").to_string(),
                    ),
                    Err(ureq::Error::Status(c, r)) => {
                        (c, r.header("x-served-by").unwrap_or("").to_string())
                    }
                    Err(_) => (0, String::new()),
                };
                seen.lock().unwrap().push((wall_ms(), by == "canary", code));
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    (seen, hs)
}

fn start(toml: &str) -> Stack {
    let mut plugin = shipped_plugin_config();
    plugin["explain"] = Value::Bool(false);
    Stack::start(StackOpts {
        plugin_config: plugin,
        analyzer_toml: toml.into(),
        concurrency: 2,
    })
}

#[test]
fn healthy_canary_is_promoted_to_100() {
    let s = start(LADDER);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, hs) = traffic(&s, 4, stop.clone());
    let done = eventually(Duration::from_secs(90), || {
        s.rollout("demo")["status"] == "succeeded"
    });
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let r = s.rollout("demo");
    println!("history: {}", r["history"]);
    assert!(
        done.is_some(),
        "not promoted to 100 %: {}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    assert_eq!(r["phase"], "100%");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|(_, _, c)| *c == 200),
        "a request failed during a healthy rollout"
    );
    let events = s.get_json(&format!("{}/v1/rollouts/demo/events", s.analyzer_url()));
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "promoted").count(),
        5,
        "{kinds:?}"
    );
    println!(
        "promoted to 100 % in {:?} after {} requests",
        done.unwrap(),
        seen.len()
    );
}

#[test]
fn failing_canary_is_aborted_and_everyone_returns_to_stable() {
    let s = start(LADDER);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, hs) = traffic(&s, 4, stop.clone());
    // Mid-rollout: once at 10 %, the canary starts failing 30 % of its requests.
    assert!(
        eventually(Duration::from_secs(40), || s.rollout("demo")["phase"]
            == "10%")
        .is_some(),
        "never reached 10 %"
    );
    let bad_from = wall_ms();
    s.upstream("canary", serde_json::json!({"error_rate": 0.3}));
    let aborted = eventually(Duration::from_secs(20), || {
        s.rollout("demo")["status"] == "rolled_back"
    });
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let r = s.rollout("demo");
    assert!(
        aborted.is_some(),
        "not aborted: {}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    let decided = r["decided_at_ms"].as_u64().unwrap();
    let seen = seen.lock().unwrap();
    let first_bad = seen
        .iter()
        .filter(|(t, c, code)| *t >= bad_from && *c && *code >= 500)
        .map(|x| x.0)
        .min()
        .unwrap();
    let last_canary = seen
        .iter()
        .filter(|(_, c, _)| *c)
        .map(|x| x.0)
        .max()
        .unwrap();
    let to_decision = decided as i64 - first_bad as i64;
    let to_stable = last_canary as i64 - decided as i64; // negative: no canary request after the decision
    println!(
        "first bad response -> decision: {to_decision} ms; decision -> last canary-routed request: {to_stable} ms; trigger: {}",
        r["verdict"]["trigger"]
    );
    assert!(to_decision <= 5_000, "decision took {to_decision} ms");
    assert!(
        last_canary <= decided + 2_000,
        "canary still served {to_stable} ms after the decision"
    );
    // Every worker, not just the ones the keep-alive connections above happened to land on: new
    // connections (spread by the kernel) for an internal user, who is on canary whenever it is live.
    let b = s.burst(
        &[
            ("x-user-id", "ops-1"),
            ("x-user-email", "ops-1@company.com"),
        ],
        100,
    );
    println!("after the rollback, per worker: {b:?}");
    assert_eq!(
        b.canary, 0,
        "a worker still routes to canary after the rollback: {b:?}"
    );
    assert_eq!(b.stable, 100, "{b:?}");
    assert!(
        b.reached_workers(2),
        "the burst did not reach both workers: {b:?}"
    );
    // Evidence kept with the decision.
    let rb = s.rolled_back_event("demo");
    assert!(rb["verdict"]["canary_n"].as_u64().unwrap() > 0);
    assert!(!rb["evidence"]["last_windows"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!rb["evidence"]["checks"].as_array().unwrap().is_empty());
}

#[test]
fn kill_9_mid_rollout_keeps_phase_history_and_evidence() {
    let mut s = start("tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n[[rollout]]\nname = \"other\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n");
    s.command("demo", "promote");
    s.command("demo", "promote"); // 10 %
    s.command("other", "abort");
    let before = s.rollout("demo");
    let before_other = s.get_json(&format!("{}/v1/rollouts/other/events", s.analyzer_url()));
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, hs) = traffic(&s, 2, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    s.kill_analyzer();
    std::thread::sleep(Duration::from_secs(2)); // filters keep serving with the companion gone
    s.start_analyzer();
    println!("companion down for {:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let after = s.rollout("demo");
    assert_eq!(after["phase"], before["phase"]);
    assert_eq!(after["status"], "running");
    assert_eq!(after["history"], before["history"]);
    let after_other = s.get_json(&format!("{}/v1/rollouts/other/events", s.analyzer_url()));
    assert_eq!(
        after_other["events"], before_other["events"],
        "audit log and evidence survive"
    );
    assert_eq!(s.rollout("other")["status"], "rolled_back");
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 50);
    assert!(
        seen.iter().all(|(_, _, c)| *c == 200),
        "a request failed while the companion was down"
    );
}
