//! `dwcp-sim-consensus`: Monte-Carlo sweeps of the reference protocol (`make sim-consensus`).
//!
//! * `speed [N] [VIEWS] [VIEWS_PER_SEED] [THREADS] [mock|ed25519]` (defaults 256 10000 100 2
//!   mock): runs `VIEWS / VIEWS_PER_SEED` seeds (seed = 1, 2, …, or `SIM_SEED` for the first) of
//!   [`sweep_run`] and prints simulated events per second, wall time, seeds per second and any
//!   violation with its seed. Exits non-zero on a violation.
//! * `trace-hash SEED`: prints the trace hash of [`pinned_run`] (the tests check it from a
//!   second process).
//!
//! A command, not a library: it reads the wall clock to report speed.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::rbc::sweep::{pinned_run, sweep_run};

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("trace-hash") => {
            let seed = arg(&args, 2, 7);
            println!("{}", pinned_run(seed).trace_hash);
        }
        Some("speed") | None => speed(&args),
        Some(other) => {
            eprintln!("unknown command {other}: use `speed` or `trace-hash SEED`");
            std::process::exit(2);
        }
    }
}

fn speed(args: &[String]) {
    let n = arg(args, 2, 256) as u32;
    let views = arg(args, 3, 10_000);
    let per_seed = arg(args, 4, 100).max(1);
    let threads = arg(args, 5, 2).max(1);
    let scheme = match args.get(6).map(String::as_str) {
        Some("ed25519") => Scheme::Ed25519,
        _ => Scheme::Mock,
    };
    let first: u64 = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds = views.div_ceil(per_seed);
    let next = AtomicU64::new(0);
    let steps = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let kinds: Mutex<BTreeMap<&'static str, (u64, u64)>> = Mutex::new(BTreeMap::new());
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= seeds {
                    break;
                }
                let seed = first + k;
                let t = Instant::now();
                let r = sweep_run(seed, n, per_seed, scheme);
                steps.fetch_add(r.steps, Ordering::Relaxed);
                let msgs: u64 = r.messages.values().map(|m| m.count).sum();
                if let Ok(mut k) = kinds.lock() {
                    for (kind, m) in &r.messages {
                        let e = k.entry(kind).or_default();
                        e.0 += m.count;
                        e.1 += m.bytes;
                    }
                }
                eprintln!(
                    "seed {seed}: {} events, {msgs} messages, {:.2} s{}",
                    r.steps,
                    t.elapsed().as_secs_f64(),
                    if r.truncated { " TRUNCATED" } else { "" }
                );
                if !r.violations.is_empty() || r.truncated {
                    if let Ok(mut f) = failures.lock() {
                        f.push((seed, r.violations.clone(), r.truncated));
                    }
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    let total = steps.load(Ordering::Relaxed);
    println!(
        "sweep: n={n} views={} ({seeds} seeds x {per_seed}) crypto={scheme:?} threads={threads}",
        seeds * per_seed
    );
    println!(
        "  {total} simulated events in {wall:.1} s wall: {:.0} events/s, {:.2} s per seed",
        total as f64 / wall,
        wall * threads as f64 / seeds as f64
    );
    match cpu {
        Some(cpu) => println!(
            "  CPU {cpu:.1} s (user+system of this process): {:.0} events per CPU second",
            total as f64 / cpu
        ),
        None => println!("  CPU time not available (no /proc/self/stat)"),
    }
    let views_run = (seeds * per_seed) as f64;
    for (kind, (count, bytes)) in kinds.into_inner().unwrap_or_default() {
        println!(
            "  {kind}: {count} messages ({:.0} per view), {bytes} bytes",
            count as f64 / views_run
        );
    }
    let failures = failures.into_inner().unwrap_or_default();
    for (seed, v, truncated) in &failures {
        println!("  FAIL seed {seed} (replay: SIM_SEED={seed}) truncated={truncated}: {v:?}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, fields 14 and 15,
/// in `USER_HZ` = 100 ticks per second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
