//! `make bench-api`: the API under load while ingest runs. Starts `dwcp-analyzer serve` (10 rollouts,
//! an audit log of a few thousand events), then N sidecars (default 1 000) post one batch per second
//! each, in three interleaved runs: ingest alone, ingest with R clients (default 50) paging through
//! events (`?limit=100&before=…`) and reading status (`/v1/rollouts`, `/v1/rollouts/{name}`) in a
//! closed loop; rounds alternate the two. Prints, per run, the batches/s offered and achieved, p50/p99
//! ingest latency and the readers' requests/s and p99; then the medians over rounds, the ratio of p99
//! with readers to p99 alone, and MET/MISSED against the bound: p99 with readers ≤ 1.2 × p99 alone
//! (`BOUND`), and both runs achieving ≥ 95 % of the offered batches/s with no ingest error. Load
//! generator and companion share this host's cores (and others' load: `uptime` is printed); the
//! reader clients run at nice `READER_NICE` (default 19: they stand for clients on other hosts), and
//! `MAX_READS_PER_S` sets the companion's read budget (`[api] max_reads_per_s`, default 0 = none).

use dwcp_core::decision::Track;
use dwcp_core::telemetry::Accumulator;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn batch_body(vm: &str, seq: u64, rollouts: &[String], i: usize) -> Vec<u8> {
    let segs: Vec<String> = ["beta", "enterprise", "internal", "premium", "standard"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut a = Accumulator::new(rollouts.to_vec(), segs);
    for r in [i % rollouts.len(), (i + 1) % rollouts.len()] {
        for s in 0..5 {
            for k in 0..20u64 {
                a.record(r, Track::Stable, s, Some(1), false, 8_000 + k * 700);
            }
            a.record(r, Track::Canary, s, Some(1), false, 9_000 + s as u64 * 300);
        }
    }
    serde_json::to_vec(&a.take_batch(vm, seq, 0, 0)).unwrap_or_default()
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0
}

struct Run {
    offered_per_s: f64,
    ingest_us: Vec<u64>,
    ingest_errors: u64,
    batches_per_s: f64,
    read_us: Vec<u64>,
    read_errors: u64,
    reads_per_s: f64,
}

fn ingest(
    url: &str,
    sidecars: usize,
    seq_base: u64,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(Vec<u64>, u64)>> {
    let threads = 48usize;
    let rollouts: Vec<String> = (0..10).map(|i| format!("svc-{i}")).collect();
    (0..threads)
        .map(|t| {
            let (url, stop, rollouts) = (url.to_string(), stop.clone(), rollouts.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mine: Vec<usize> = (t..sidecars).step_by(threads).collect();
                let (mut lat, mut errors, mut n) = (Vec::new(), 0, 0u64);
                let start = Instant::now();
                // Sidecar i posts at i/sidecars of each second (spread, as real sidecars are).
                'outer: for round in 0u64.. {
                    for &i in &mine {
                        let due = start
                            + Duration::from_secs_f64(round as f64 + i as f64 / sidecars as f64);
                        while Instant::now() < due {
                            if stop.load(Ordering::Relaxed) {
                                break 'outer;
                            }
                            std::thread::sleep(
                                (due - Instant::now()).min(Duration::from_millis(20)),
                            );
                        }
                        if stop.load(Ordering::Relaxed) {
                            break 'outer;
                        }
                        n += 1;
                        let body = batch_body(
                            &format!("bench-{i}"),
                            seq_base + round * 10_000 + n,
                            &rollouts,
                            i,
                        );
                        let t0 = Instant::now();
                        let r = agent
                            .post(&format!("{url}/v1/telemetry"))
                            .set("authorization", &format!("Bearer {TOKEN}"))
                            .set("content-type", "application/json")
                            .send_bytes(&body);
                        lat.push(t0.elapsed().as_micros() as u64);
                        if r.is_err() {
                            errors += 1;
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect()
}

/// What a reader keeps of a page (the rest is skipped, still checked to be JSON).
#[derive(serde::Deserialize)]
struct Cursor {
    #[serde(default)]
    next_before: Option<i64>,
}

/// Lowers this thread's CPU priority by `nice` (Linux: per thread).
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: plain syscalls on this thread's own id, no memory passed.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let own = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (own + nice).min(19));
    }
}

fn readers(
    url: &str,
    n: usize,
    nice: i32,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(Vec<u64>, u64)>> {
    (0..n)
        .map(|k| {
            let (url, stop) = (url.to_string(), stop.clone());
            std::thread::spawn(move || {
                lower_priority(nice);
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let (mut lat, mut errors) = (Vec::new(), 0);
                let mut before: Option<i64> = None;
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let path = match i % 4 {
                        0 => "/v1/rollouts".to_string(),
                        1 => format!("/v1/rollouts/svc-{}", i % 10),
                        _ => format!(
                            "/v1/rollouts/svc-{}/events?limit=100{}",
                            k % 3,
                            before.map_or(String::new(), |b| format!("&before={b}"))
                        ),
                    };
                    let t0 = Instant::now();
                    match agent
                        .get(&format!("{url}{path}"))
                        .set("authorization", &format!("Bearer {TOKEN}"))
                        .call()
                    {
                        // The whole body is read and checked as JSON; only the cursor is kept
                        // (a client's own decoding is not the companion's work).
                        Ok(r) => match r.into_json::<Cursor>() {
                            Ok(c) if path.contains("events") => before = c.next_before,
                            Ok(_) => {}
                            Err(_) => errors += 1,
                        },
                        Err(_) => errors += 1,
                    }
                    lat.push(t0.elapsed().as_micros() as u64);
                }
                (lat, errors)
            })
        })
        .collect()
}

fn run(
    url: &str,
    sidecars: usize,
    (n_readers, reader_nice): (usize, i32),
    secs: u64,
    seq_base: u64,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let ing = ingest(url, sidecars, seq_base, stop.clone());
    let rd = readers(url, n_readers, reader_nice, stop.clone());
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let collect = |hs: Vec<std::thread::JoinHandle<(Vec<u64>, u64)>>| {
        let (mut all, mut err) = (Vec::new(), 0);
        for h in hs {
            if let Ok((l, e)) = h.join() {
                all.extend(l);
                err += e;
            }
        }
        (all, err)
    };
    let (ingest_us, ingest_errors) = collect(ing);
    let (read_us, read_errors) = collect(rd);
    let secs = start.elapsed().as_secs_f64();
    Run {
        offered_per_s: sidecars as f64,
        batches_per_s: ingest_us.len() as f64 / secs,
        reads_per_s: read_us.len() as f64 / secs,
        ingest_us,
        ingest_errors,
        read_us,
        read_errors,
    }
}

fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (sidecars, n_readers, secs, rounds) = (
        env("SIDECARS", 1000) as usize,
        env("READERS", 50) as usize,
        env("SECONDS", 10),
        env("ROUNDS", 3),
    );
    let dir = std::env::temp_dir().join(format!("dwcp-bench-api-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18081);
    let mut toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndb = \"{}\"\ntoken = \"{TOKEN}\"\n",
        dir.join("a.db").display()
    );
    for i in 0..10 {
        toml.push_str(&format!("[[rollout]]\nname = \"svc-{i}\"\nautostart = true\nskip_shadow = true\nphase_seconds = 86400\n"));
    }
    // The companion's read budget ([api] max_reads_per_s; 0 = none), printed with the results.
    let read_budget = env("MAX_READS_PER_S", 0);
    toml = format!("{toml}[api]\nmax_reads_per_s = {read_budget}\n");
    let cfg = dir.join("a.toml");
    let _ = std::fs::write(&cfg, toml);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("dwcp-analyzer")))
        .unwrap_or_default();
    let mut child = match Command::new(&exe)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", exe.display());
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
    // An audit log to page through: pause/resume pairs on three rollouts.
    let agent = ureq::agent();
    for k in 0..3 {
        for _ in 0..env("EVENT_PAIRS", 300) {
            for a in ["pause", "resume"] {
                let _ = agent
                    .post(&format!("{url}/v1/rollouts/svc-{k}/{a}"))
                    .set("authorization", &format!("Bearer {TOKEN}"))
                    .call();
            }
        }
    }
    let bound = std::env::var("BOUND")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.2);
    // The reader clients stand for dashboards and CLIs on other hosts: on this one they run at a
    // lower priority (READER_NICE, 0 = the companion's own) so their CPU is not the companion's; 19,
    // as 50 threads at nice 10 would together still outweigh several at 0. The ingest clients (the
    // sidecars) keep the default priority.
    let reader_nice = env("READER_NICE", 19) as i32;
    println!("uptime at start: {}", uptime());
    println!(
        "companion read budget: {} ([api] max_reads_per_s, MAX_READS_PER_S)",
        if read_budget == 0 {
            "none".to_string()
        } else {
            format!("{read_budget} reads/s")
        }
    );
    println!("reader clients at nice +{reader_nice} (READER_NICE), companion read threads at nice +{} (its ingest at 0)", dwcp_analyzer::readpool::READ_NICE);
    println!("{sidecars} sidecars × 1 batch/s, {n_readers} readers (events pages of 100, status), {secs} s per run, {rounds} rounds");
    println!(
        "{:<6} {:<17} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>9} {:>6}",
        "round",
        "run",
        "offered",
        "achieved",
        "p50 ms",
        "p99 ms",
        "errors",
        "reads/s",
        "read p99",
        "errors"
    );
    let seq = AtomicU64::new(1);
    // [alone, with readers]: p99, p50, achieved batches/s, ingest errors; reads/s with readers.
    let (mut p99, mut p50, mut achieved) = ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    let (mut errors, mut reads) = (0u64, Vec::new());
    for round in 0..rounds {
        // Alternating which run goes first: drift in the machine's load falls on both.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let (name, r) = [("ingest alone", 0), ("ingest + readers", n_readers)][k];
            let mut x = run(
                &url,
                sidecars,
                (r, reader_nice),
                secs,
                seq.fetch_add(1_000_000_000, Ordering::Relaxed),
            );
            let (m50, q99) = (pct(&mut x.ingest_us, 0.5), pct(&mut x.ingest_us, 0.99));
            p99[k].push(q99);
            p50[k].push(m50);
            achieved[k].push(x.batches_per_s / x.offered_per_s);
            errors += x.ingest_errors;
            if r > 0 {
                reads.push(x.reads_per_s);
            }
            let rp = pct(&mut x.read_us, 0.99);
            println!(
                "{round:<6} {name:<17} {:>8.0} {:>9.0} {m50:>8.2} {q99:>8.2} {:>6} {:>8.0} {rp:>9.2} {:>6}",
                x.offered_per_s, x.batches_per_s, x.ingest_errors, x.reads_per_s, x.read_errors
            );
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (alone, with) = (med(&mut p99[0]), med(&mut p99[1]));
    let ratio = with / alone.max(1e-9);
    let (a0, a1) = (med(&mut achieved[0]), med(&mut achieved[1]));
    println!(
        "medians over {rounds} rounds: p50 alone {:.2} ms, with readers {:.2} ms; p99 alone {alone:.2} ms, with {n_readers} readers {with:.2} ms (×{ratio:.2}); achieved/offered alone {:.1} %, with readers {:.1} %; reads/s {:.0}",
        med(&mut p50[0]),
        med(&mut p50[1]),
        a0 * 100.0,
        a1 * 100.0,
        med(&mut reads)
    );
    let met = ratio <= bound && a0 >= 0.95 && a1 >= 0.95 && errors == 0;
    println!(
        "{}: p99 with readers ≤ {bound} × p99 alone ({ratio:.2}), ≥ 95 % of {sidecars} batches/s achieved in both runs ({:.1} %, {:.1} %), {errors} ingest errors",
        if met { "MET" } else { "MISSED" },
        a0 * 100.0,
        a1 * 100.0
    );
    println!("uptime at end: {}", uptime());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("(uptime: {e})"))
}
