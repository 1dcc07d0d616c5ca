//! `make bench-consensus`: PBFT (n = 4, 16) and T-PBFT (n = 16, c = 4 and 7) with 512-byte
//! transactions and real ed25519 signatures over loopback TCP — in one process, and PBFT n = 4
//! as four `dwcp-node` processes — then the T-PBFT/PBFT ratios and the targets, MET or MISSED.
//! Transactions go in as client-side groups of up to `BENCH_GROUP` (default 64; `node/src/txgroup.rs`:
//! one client signature per group); PBFT n = 4 with one signature per transaction (groups of 1) is
//! measured in the same run as the baseline. Each row is the median (by tx/s) of `BENCH_REPEAT` runs (default 3), with the range. The machine is shared (other builds and benchmarks
//! run on it): the load average is printed before and after.
//! The T-PBFT/PBFT(16) ratios are printed twice: with batches of up to 512 requests (both engines
//! then spend most of their time moving and hashing transaction bytes, which every node must
//! receive in either engine) and with batches of one request (each decision's own votes and
//! signatures limit decisions/s; one group in flight per node).
//! `BENCH_TXS_4` / `BENCH_TXS_16` / `BENCH_TXS_BASE` / `BENCH_TXS_DEC` set the transactions per
//! run (defaults 300 000 / 8 000 / 8 000 / 8 000), `BENCH_WINDOW` the transactions outstanding in the whole cluster
//! (default 4096, split evenly over the nodes).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use dwcp_node::bench::{combine_by_kind, in_process, kinds, row, Load, Measured, Setup, HEADER};
use dwcp_node::load::LoadResult;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// `BENCH_WINDOW` transactions outstanding in the whole cluster (default 4096), split evenly.
fn load(total: u64, n: u32, group: usize) -> Load {
    Load {
        total_txs: total,
        tx_size: 512,
        window: (env_u64("BENCH_WINDOW", 4096) / u64::from(n)).max(1) as usize,
        batch_max: 512,
        group,
        retransmit_ms: env_u64("BENCH_RETRANSMIT_MS", 1000),
        epoch_len: 64,
        timeout: Duration::from_secs(180),
    }
}

/// A base port with `n` consecutive free ports after it.
fn free_ports(n: u16) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if base > 65000 - n {
            continue;
        }
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    anyhow::bail!("no free port range")
}

fn processes(n: u32, l: Load) -> anyhow::Result<Measured> {
    let bin = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("dwcp-node");
    let dir = std::env::temp_dir().join(format!("dwcp-bench-{}", std::process::id()));
    let base = free_ports(n as u16)?;
    let st = Command::new(&bin)
        .args(["keygen", "--n", &n.to_string(), "--dir"])
        .arg(&dir)
        .args(["--base-port", &base.to_string(), "--engine", "pbft"])
        .args(["--batch-max", &l.batch_max.to_string()])
        .status()
        .with_context(|| {
            format!(
                "{} (build it: cargo build --release -p dwcp-node)",
                bin.display()
            )
        })?;
    anyhow::ensure!(st.success(), "keygen failed");
    let per = l.total_txs / u64::from(n);
    let mut kids = Vec::new();
    for i in 0..n {
        let cfg: PathBuf = dir.join(format!("node{i}.toml"));
        kids.push(
            Command::new(&bin)
                .arg("run")
                .arg("--config")
                .arg(&cfg)
                .args(["--txs", &per.to_string()])
                .args(["--expect-total", &(per * u64::from(n)).to_string()])
                .args(["--window", &l.window.to_string()])
                .args(["--tx-size", &l.tx_size.to_string()])
                .args(["--group", &l.group.to_string()])
                .args(["--timeout-s", &l.timeout.as_secs().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let mut results = Vec::new();
    let mut sent: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut dropped = 0;
    for k in kids {
        let out = k.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().context("a node printed nothing")?;
        let v: serde_json::Value = serde_json::from_str(line)?;
        let r = &v["result"];
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let u = |k: &str| r[k].as_u64().unwrap_or(0);
        // Each process reports its own quantiles; pooling needs the samples, so the row's
        // p50/p99 are the medians of the per-process p50/p99.
        results.push((
            LoadResult {
                node: u("node") as u32,
                own_submitted: u("own_submitted"),
                own_committed: u("own_committed"),
                committed: u("committed"),
                decisions: u("decisions"),
                elapsed_s: f("elapsed_s"),
                latencies_ms: Vec::new(),
                p50_ms: f("p50_ms"),
                p99_ms: f("p99_ms"),
                timed_out: r["timed_out"].as_bool().unwrap_or(true),
            },
            (f("p50_ms"), f("p99_ms")),
        ));
        if let Some(m) = v["sent"].as_object() {
            for (k, cb) in m {
                let e = sent.entry(k.clone()).or_default();
                e.0 += cb[0].as_u64().unwrap_or(0);
                e.1 += cb[1].as_u64().unwrap_or(0);
            }
        }
        dropped += v["dropped_full"].as_u64().unwrap_or(0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut p50s: Vec<f64> = results.iter().map(|(_, q)| q.0).collect();
    let mut p99s: Vec<f64> = results.iter().map(|(_, q)| q.1).collect();
    p50s.sort_by(f64::total_cmp);
    p99s.sort_by(f64::total_cmp);
    let rs: Vec<LoadResult> = results.into_iter().map(|(r, _)| r).collect();
    let mut m = combine_by_kind(
        &Setup::Pbft { n }.label(),
        "processes",
        per * u64::from(n),
        &rs,
        &sent,
        dropped,
    );
    m.p50_ms = dwcp_node::load::quantile(&p50s, 0.5);
    m.p99_ms = dwcp_node::load::quantile(&p99s, 0.5);
    Ok(m)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

/// Run `f` `reps` times; the run with the median tx/s, noting the range of the runs.
fn median(
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<Measured>,
) -> anyhow::Result<Measured> {
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        runs.push(f()?);
    }
    runs.sort_by(|a, b| a.tx_per_s.total_cmp(&b.tx_per_s));
    let spread = format!(
        "{:.0}–{:.0}",
        runs.first().map_or(f64::NAN, |m| m.tx_per_s),
        runs.last().map_or(f64::NAN, |m| m.tx_per_s)
    );
    let all_done = runs
        .iter()
        .all(|m| m.committed == m.expected && !m.timed_out);
    let mut m = runs.swap_remove(runs.len() / 2);
    if !all_done {
        m.timed_out = true; // some repetition did not commit everything
    }
    m.spread = spread;
    Ok(m)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn main() -> anyhow::Result<()> {
    let t4 = env_u64("BENCH_TXS_4", 300_000);
    let t16 = env_u64("BENCH_TXS_16", 8_000);
    let tbase = env_u64("BENCH_TXS_BASE", 8_000);
    let tdec = env_u64("BENCH_TXS_DEC", 8_000);
    let group = env_u64("BENCH_GROUP", 64).max(1) as usize;
    let reps = env_u64("BENCH_REPEAT", 3).max(1) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    println!(
        "consensus benchmark: 512-byte transactions, ed25519 signatures, loopback TCP, batches ≤ 512 \
         requests, client groups ≤ {group} transactions; each row the median (by tx/s) of {reps} runs, \
         the tx/s range of the runs last; shared 2-core machine, load average {} at start",
        loadavg()
    );
    println!("{HEADER}");
    let mut rows = Vec::new();
    for (setup, total) in [
        (Setup::Pbft { n: 4 }, t4),
        (Setup::Pbft { n: 16 }, t16),
        (Setup::Tpbft { n: 16, c: 4 }, t16),
        (Setup::Tpbft { n: 16, c: 7 }, t16),
    ] {
        let m = median(reps, || {
            rt.block_on(in_process(setup, load(total, setup.n(), group)))
        })?;
        println!("{}", row(&m));
        rows.push(m);
    }
    let p = median(reps, || processes(4, load(t4, 4, group)))?;
    println!("{}", row(&p));
    println!("baseline, same run: one signature per transaction (groups of 1)");
    let mut b = median(reps, || {
        rt.block_on(in_process(Setup::Pbft { n: 4 }, load(tbase, 4, 1)))
    })?;
    b.setup.push_str(" g=1");
    println!("{}", row(&b));
    let mut bp = median(reps, || processes(4, load(tbase, 4, 1)))?;
    bp.setup.push_str(" g=1");
    println!("{}", row(&bp));
    println!(
        "consensus-bound, same run: batches of one request (one client group), one group in flight \
         per node, so each decision's own cost (votes, signatures) is what limits decisions/s"
    );
    let mut one = Vec::new();
    for setup in [Setup::Pbft { n: 16 }, Setup::Tpbft { n: 16, c: 4 }] {
        let mut l = load(tdec, setup.n(), group);
        // One group in flight per node: 16 requests outstanding, which PBFT(16) orders one per
        // decision well inside its view timeout (with the throughput window it falls into view
        // changes, and the ratio would measure that collapse instead).
        l.batch_max = 1;
        l.window = group;
        let mut m = median(reps, || rt.block_on(in_process(setup, l)))?;
        m.setup.push_str(" b=1");
        println!("{}", row(&m));
        one.push(m);
    }
    let (pb16, t4c, t7c) = (&rows[1], &rows[2], &rows[3]);
    println!();
    println!("messages (bytes) per decision by kind:");
    for m in [&rows[0], &p, pb16, t4c, t7c, &one[0], &one[1]] {
        println!("  {:<18} {:<10} {}", m.setup, m.mode, kinds(m));
    }
    println!();
    for (name, t, pb16) in [
        ("T-PBFT(16,c=4)", t4c, pb16),
        ("T-PBFT(16,c=7)", t7c, pb16),
        ("T-PBFT(16,c=4) b=1", &one[1], &one[0]),
    ] {
        println!(
            "{name} / PBFT(16){}: decisions/s ×{:.2}, tx/s ×{:.2}, msgs/decision ×{:.3}, bytes/decision ×{:.3}, p50 ×{:.2}",
            if name.ends_with("b=1") { " b=1" } else { "" },
            t.decisions_per_s / pb16.decisions_per_s,
            t.tx_per_s / pb16.tx_per_s,
            t.messages_per_decision / pb16.messages_per_decision,
            t.bytes_per_decision / pb16.bytes_per_decision,
            t.p50_ms / pb16.p50_ms,
        );
    }
    println!();
    let all_done = rows
        .iter()
        .chain([&p, &b, &bp])
        .chain(&one)
        .all(|m| m.committed == m.expected && !m.timed_out);
    println!(
        "target PBFT n=4 over TCP (processes) ≥ 20000 tx/s: {:.0} tx/s (×{:.1} the per-transaction-signature baseline {:.0} tx/s) — {}",
        p.tx_per_s,
        p.tx_per_s / bp.tx_per_s,
        bp.tx_per_s,
        verdict(p.tx_per_s >= 20_000.0)
    );
    for (what, t, pb) in [
        ("batches ≤ 512 requests", t4c, pb16),
        ("batches of 1 request", &one[1], &one[0]),
    ] {
        let r = t.decisions_per_s / pb.decisions_per_s;
        println!(
            "target T-PBFT(16,c=4) ≥ 3× decisions/s of PBFT(16), {what}: ×{r:.2} ({:.1} vs {:.1}) — {}",
            t.decisions_per_s,
            pb.decisions_per_s,
            verdict(r >= 3.0)
        );
        let r = t.messages_per_decision / pb.messages_per_decision;
        println!(
            "target T-PBFT(16,c=4) ≤ 1/8 messages/decision of PBFT(16), {what}: ×{r:.3} ({:.1} vs {:.1}; 1/8 = 0.125) — {}",
            t.messages_per_decision,
            pb.messages_per_decision,
            verdict(r <= 0.125)
        );
    }
    println!(
        "every run committed everything it submitted: {}",
        if all_done { "yes" } else { "NO" }
    );
    println!(
        "run time {:.0} s; load average {} at the end",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    Ok(())
}
