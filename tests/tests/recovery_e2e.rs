//! Recovery through a real Envoy: a batch whose acknowledgement is lost (the companion's answer is
//! held past the filter's timeout after the batch was stored) is counted once, and a database restored
//! from an older backup (`dwcp-analyzer backup` / `restore`) is adopted by the running filters within
//! one sync period, without restarting Envoy.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOLD: &str = "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 36000\n";
const INTERNAL: &str = "x-user-id: ops-1\r\nx-user-email: ops-1@company.com\r\n";

fn stack() -> Stack {
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: HOLD.into(),
        concurrency: 2,
    });
    s.wait_all_vms_current(3, Duration::from_secs(20));
    s
}

/// A TCP proxy on `listen` to `to`; while `slow` is set, every answer chunk is held `hold` first.
fn proxy(listen: u16, to: u16, slow: Arc<AtomicBool>, held: Arc<AtomicU64>, hold: Duration) {
    let l = TcpListener::bind(("127.0.0.1", listen)).expect("bind proxy");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c_r, mut up_w) = (c.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut b = [0u8; 65536];
                while let Ok(n @ 1..) = c_r.read(&mut b) {
                    if up_w.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
                let _ = up_w.shutdown(std::net::Shutdown::Write);
            });
            let (mut up_r, mut c_w) = (up, c);
            let (slow, held) = (slow.clone(), held.clone());
            std::thread::spawn(move || {
                let mut b = [0u8; 65536];
                while let Ok(n @ 1..) = up_r.read(&mut b) {
                    if slow.load(Ordering::Relaxed) {
                        held.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(hold);
                    }
                    if c_w.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

fn counts(s: &Stack, companion: u16) -> ((f64, f64), (f64, f64)) {
    let e = s.envoy_stats();
    let c = ureq::get(&format!("http://127.0.0.1:{companion}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let env = |t| {
        metric_sum(
            &e,
            "envoy_cluster_upstream_rq_total",
            &[("envoy_cluster_name", t)],
        )
    };
    let com = |t| metric_sum(&c, "dwcp_rollout_requests_total", &[("track", t)]);
    (
        (env("stable"), env("canary")),
        (com("stable"), com("canary")),
    )
}

#[test]
fn a_batch_whose_ack_is_lost_through_envoy_is_counted_once() {
    let mut s = stack();
    // The companion moves behind a proxy on its port that can hold its answers.
    let real = free_port();
    let (slow, held) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    s.kill_analyzer();
    s.set_analyzer_listen(real);
    proxy(
        s.ports.analyzer,
        real,
        slow.clone(),
        held.clone(),
        Duration::from_millis(900),
    );
    s.start_analyzer();
    wait_port(real, "companion behind the proxy");
    s.wait_all_vms_current(3, Duration::from_secs(20));
    let failed_before = metric_sum(
        &s.envoy_stats(),
        "dwcp_filter_events_total",
        &[("event", "sync_failed")],
    );
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(8) {
        // Answers held past the filter's 500 ms timeout from 2 s to 5 s: stored, never acknowledged.
        let t = start.elapsed();
        slow.store(
            t > Duration::from_secs(2) && t < Duration::from_secs(5),
            Ordering::Relaxed,
        );
        let user = format!("x-user-id: u{sent}\r\n");
        assert!(fresh_get(s.ports.envoy, user.as_bytes()).is_some());
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    slow.store(false, Ordering::Relaxed);
    // The resent batches arrive; then the counts settle.
    let mut last = counts(&s, real);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let now = counts(&s, real);
        if now == last && now.0 == now.1 {
            break;
        }
        last = now;
    }
    let ((es, ec), (cs, cc)) = counts(&s, real);
    let failed = metric_sum(
        &s.envoy_stats(),
        "dwcp_filter_events_total",
        &[("event", "sync_failed")],
    ) - failed_before;
    println!(
        "{sent} requests; answers held: {}; filter sync timeouts: {failed}; Envoy stable {es} canary {ec}, companion stable {cs} canary {cc}",
        held.load(Ordering::Relaxed)
    );
    assert!(
        failed >= 1.0,
        "no acknowledgement was lost: the test tested nothing"
    );
    assert_eq!(
        (cs, cc),
        (es, ec),
        "counted once: nothing lost, nothing twice"
    );
    assert_eq!(es + ec, sent as f64);
}

fn internal_track(s: &Stack) -> Option<String> {
    fresh_get(s.ports.envoy, INTERNAL.as_bytes()).map(|(_, by)| by)
}

#[test]
fn a_restored_older_database_is_adopted_by_running_filters_within_one_sync_period() {
    let mut s = stack();
    assert_eq!(internal_track(&s).as_deref(), Some("canary"));
    // An online backup while the companion runs (canary serving internal users).
    let backup = s.dir.path().join("backup.db");
    let out = std::process::Command::new(bin("dwcp-analyzer"))
        .args(["backup", "--db"])
        .arg(s.analyzer_db())
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Routing moves on (abort: everyone on stable) and the filters hold that newer state.
    s.command("demo", "abort");
    s.wait_all_vms_current(3, Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(5), || internal_track(&s).as_deref()
            == Some("stable"))
        .is_some()
    );
    // The database is lost and restored from the backup; Envoy keeps running.
    s.kill_analyzer();
    let out = std::process::Command::new(bin("dwcp-analyzer"))
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--db")
        .arg(s.analyzer_db())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.start_analyzer();
    let up = Instant::now();
    // The first batch after the restart holds a newer version than the restored database: a new
    // epoch, which every filter adopts from that batch's answer.
    let took = eventually(Duration::from_secs(10), || {
        (0..20).all(|_| internal_track(&s).as_deref() == Some("canary"))
    })
    .expect("the restored state was never adopted");
    println!(
        "restored database adopted by the running filters {:?} after the companion listened",
        up.elapsed()
    );
    // One sync period (1 s) + the time of the 20 checks and scheduling on a loaded host.
    assert!(took <= Duration::from_millis(2_000), "took {took:?}");
}
