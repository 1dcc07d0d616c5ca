//! `make bench-ingest`: simulated filters posting telemetry batches to a real companion process.
//!
//! Starts `dwcp-analyzer serve` pinned to CPU 0 with one tokio worker (10 rollouts), then simulates N
//! sidecars (default 1 000) each posting one batch per second (cells for 2 rollouts × 2 tracks × 5
//! segments, realistic histograms) from CPU 1. Prints sustained batches/s, companion CPU per batch (from
//! /proc) and p50/p99 ingest latency; then a flat-out run to show the headroom.

use dwcp_core::decision::Track;
use dwcp_core::telemetry::Accumulator;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn proc_cpu_secs(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>();
            Some((rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0)
}

fn batch_body(vm: &str, seq: u64, rollouts: &[String], i: usize) -> Vec<u8> {
    let segs: Vec<String> = ["beta", "enterprise", "internal", "premium", "standard"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut a = Accumulator::new(rollouts.to_vec(), segs);
    for r in [i % rollouts.len(), (i + 1) % rollouts.len()] {
        for s in 0..5 {
            for k in 0..20u64 {
                a.record(
                    r,
                    Track::Stable,
                    s,
                    Some(1),
                    k == 0 && s == 4,
                    8_000 + k * 700,
                );
            }
            a.record(r, Track::Canary, s, Some(1), false, 9_000 + s as u64 * 300);
        }
    }
    serde_json::to_vec(&a.take_batch(vm, seq, 0, 0)).unwrap_or_default()
}

struct Run {
    sent: u64,
    secs: f64,
    cpu: f64,
    lat_us: Vec<u64>,
    errors: u64,
}

fn run(
    url: &str,
    pid: u32,
    sidecars: usize,
    rate_per_sidecar: Option<f64>,
    secs: u64,
    rollouts: &[String],
    seq: &AtomicU64,
) -> Run {
    let threads = 48usize;
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let c0 = proc_cpu_secs(pid);
    let start = Instant::now();
    let mut hs = Vec::new();
    for t in 0..threads {
        let (stop, lat, errors, sent, url, rollouts) = (
            stop.clone(),
            lat.clone(),
            errors.clone(),
            sent.clone(),
            url.to_string(),
            rollouts.to_vec(),
        );
        let base = seq.fetch_add(1_000_000, Ordering::Relaxed);
        hs.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            // This thread plays sidecars t, t+threads, …; each posts once per period.
            let mine: Vec<usize> = (t..sidecars).step_by(threads).collect();
            let period = rate_per_sidecar.map(|r| Duration::from_secs_f64(1.0 / r));
            let mut n = 0u64;
            let mut local = Vec::new();
            'outer: loop {
                let round = Instant::now();
                for &i in &mine {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    n += 1;
                    let body = batch_body(&format!("bench-{i}"), base + n, &rollouts, i);
                    let t0 = Instant::now();
                    let r = agent
                        .post(&format!("{url}/v1/telemetry"))
                        .set("authorization", "Bearer bench-token")
                        .set("content-type", "application/json")
                        .send_bytes(&body);
                    local.push(t0.elapsed().as_micros() as u64);
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(p) = period {
                    if let Some(rest) = p.checked_sub(round.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            }
            lat.lock().unwrap_or_else(|p| p.into_inner()).extend(local);
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = proc_cpu_secs(pid) - c0;
    let mut l = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    l.sort_unstable();
    Run {
        sent: sent.load(Ordering::Relaxed),
        secs,
        cpu,
        lat_us: l,
        errors: errors.load(Ordering::Relaxed),
    }
}

fn pct(v: &[u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0
}

fn main() {
    let sidecars: usize = std::env::var("SIDECARS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("dwcp-bench-ingest-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080);
    let rollouts: Vec<String> = (0..10).map(|i| format!("svc-{i}")).collect();
    let mut toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndb = \"{}\"\ntoken = \"bench-token\"\n",
        dir.join("a.db").display()
    );
    for r in &rollouts {
        toml.push_str(&format!("[[rollout]]\nname = \"{r}\"\nautostart = true\nskip_shadow = true\nphase_seconds = 86400\n"));
    }
    let cfg = dir.join("a.toml");
    let _ = std::fs::write(&cfg, toml);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("dwcp-analyzer")))
        .unwrap_or_default();
    let mut child = match Command::new("taskset")
        .args(["-c", "0"])
        .arg(&exe)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("TOKIO_WORKER_THREADS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {} under taskset: {e}", exe.display());
            std::process::exit(69);
        }
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(&format!("{url}/healthz")).call().is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            eprintln!("companion did not start");
            let _ = child.kill();
            std::process::exit(69);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Pin the load generator to CPU 1.
    let _ = Command::new("taskset")
        .args(["-pc", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    let seq = AtomicU64::new(1);
    println!("companion pinned to CPU 0 with 1 tokio worker; 10 rollouts × 2 tracks × 5 segments; load from CPU 1");
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>10} {:>8}",
        "run", "batches/s", "CPU us/batch", "p50 ms", "p99 ms", "errors"
    );
    for (name, rate) in [
        (format!("{sidecars} sidecars x 1 batch/s"), Some(1.0)),
        ("flat out (headroom)".to_string(), None),
    ] {
        let r = run(&url, child.id(), sidecars, rate, secs, &rollouts, &seq);
        let bps = r.sent as f64 / r.secs;
        println!(
            "{name:<34} {bps:>10.0} {:>12.1} {:>10.2} {:>10.2} {:>8}",
            r.cpu / r.sent.max(1) as f64 * 1e6,
            pct(&r.lat_us, 0.5),
            pct(&r.lat_us, 0.99),
            r.errors
        );
        if rate.is_some() {
            println!(
                "  companion CPU while serving {sidecars} sidecars: {:.0}% of one core",
                r.cpu / r.secs * 100.0
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
