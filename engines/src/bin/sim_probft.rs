//! `sim_probft`: ProBFT measurements (`make sim-probft`).
//!
//! * `safety [VIEWS] [THREADS] [vrf|ideal] [O] [L]` (defaults 10000 2 vrf and the library's
//!   `o`, `l`): for n ∈ {16, 64, 100, 256} and two Byzantine shares — the maximum
//!   `f = ⌊(n − 1)/3⌋` and `f = ⌊n/5⌋` — runs VIEWS views of the sample-only model
//!   (`dwcp_engines::probft::montecarlo`: equivocating leader plus colluders, adversarial
//!   delivery, real ECVRF samples) and prints the rate of conflicting decisions with its 95 %
//!   Wilson interval, the model's analytic union bound for the same o, l, and the share of views
//!   that decide without attack. Wall time per row.
//! * `msgs [SLOTS]` (default 20): messages per decision of ProBFT and PBFT in the in-process
//!   simulator at n ∈ {16, 64, 100} (reliable 1 ms links, no faults, mock signatures for both;
//!   ProBFT's VRF is real), all message kinds and the core phases, the ratio, simulated commit
//!   latency and wall time.
//!
//! A command, not a library: it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use dwcp_engines::pbft::{self, PbftConfig};
use dwcp_engines::probft::montecarlo::{union_bound, wilson, Model, SampleSource, Tally};
use dwcp_engines::probft::{self, ProbftConfig, DEFAULT_L, DEFAULT_O};
use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::{FaultModel, Simulator};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("safety") | None => safety(&args),
        Some("msgs") => msgs(&args),
        Some(other) => {
            eprintln!("unknown command {other}: use `safety` or `msgs`");
            std::process::exit(2);
        }
    }
}

fn safety(args: &[String]) {
    let views: u64 = arg(args, 2, 10_000);
    let threads: u64 = arg(args, 3, 2).max(1);
    let source = match args.get(4).map(String::as_str) {
        Some("ideal") => SampleSource::Ideal,
        _ => SampleSource::Vrf,
    };
    let o: f64 = arg(args, 5, DEFAULT_O);
    let l: f64 = arg(args, 6, DEFAULT_L);
    println!(
        "ProBFT safety Monte-Carlo: {views} views per row, o = {o}, l = {l}, samples from {source:?}, {threads} threads"
    );
    println!(
        "{:>4} {:>4} {:>4} {:>4} {:>10} {:>9} {:>22} {:>12} {:>10} {:>10} {:>8}",
        "n",
        "f",
        "s",
        "q",
        "conflicts",
        "rate",
        "95% Wilson",
        "union bound",
        "live>=1",
        "live all",
        "wall s"
    );
    let mut rows: Vec<(u32, u32, u32, Tally, f64, usize, usize)> = Vec::new();
    for n in [16u32, 64, 100, 256] {
        let fs = vec![(n - 1) / 3, n / 5];
        let t0 = Instant::now();
        let model = Model::new(n, fs.clone(), o, l, source, 0x5eed);
        let per = views.div_ceil(threads);
        let mut total = vec![Tally::default(); fs.len()];
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|k| {
                    let m = &model;
                    let first = k * per;
                    let count = per.min(views.saturating_sub(first));
                    s.spawn(move || m.run(first, count))
                })
                .collect();
            for h in hs {
                if let Ok(t) = h.join() {
                    for (a, b) in total.iter_mut().zip(t) {
                        a.add(&b);
                    }
                }
            }
        });
        let wall = t0.elapsed().as_secs_f64();
        for (k, (f, t)) in fs.iter().zip(total).enumerate() {
            rows.push((
                k as u32,
                n,
                *f,
                t,
                wall,
                model.sample_size(),
                model.quorum(),
            ));
        }
    }
    for (label, share) in [
        ("f = floor((n-1)/3), the maximum", 0u32),
        ("f = floor(n/5)", 1),
    ] {
        println!("-- {label}");
        let mut prev: Option<f64> = None;
        for (k, n, f, t, wall, s, q) in rows.iter().filter(|r| r.0 == share) {
            let _ = k;
            let rate = t.conflicts as f64 / t.views as f64;
            let (lo, hi) = wilson(t.conflicts, t.views, 1.96);
            let trend = match prev {
                Some(p) if rate < p => "falls",
                Some(p) if rate > p => "RISES",
                Some(_) => "same",
                None => "",
            };
            prev = Some(rate);
            println!(
                "{:>4} {:>4} {:>4} {:>4} {:>10} {:>9.5} [{:>9.5}, {:>9.5}] {:>12.3e} {:>10.4} {:>10.4} {:>8.1} {}",
                n,
                f,
                s,
                q,
                t.conflicts,
                rate,
                lo,
                hi,
                union_bound(*n, *f, o, l),
                t.live_one as f64 / t.views as f64,
                t.live_all as f64 / t.views as f64,
                wall,
                trend
            );
        }
    }
    println!("(wall s: both rows of an n share one run: the samples are computed once per view)");
}

fn msgs(args: &[String]) {
    let slots: u64 = arg(args, 2, 20);
    println!("messages per decision, in-process simulator, reliable 1 ms links, no faults, {slots} decisions per run");
    println!(
        "{:>4} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12}",
        "n",
        "probft all",
        "probft core",
        "pbft all",
        "pbft core",
        "ratio all",
        "ratio core",
        "probft wall",
        "pbft wall"
    );
    for n in [16u32, 64, 100] {
        let f = (n - 1) / 3;
        // ProBFT: one slot every 20 ms, every replica given a value.
        let t0 = Instant::now();
        let cfg = ProbftConfig::new(n, f);
        let mut built = probft::build(1, cfg, Scheme::Mock);
        let nodes = std::mem::take(&mut built.nodes);
        let mut sim = Simulator::new(1, FaultModel::reliable(), nodes, false).max_steps(50_000_000);
        for slot in 0..slots {
            for node in 0..n {
                sim.input(
                    slot * 20,
                    node,
                    probft::Submit {
                        slot,
                        value: format!("slot {slot} of {node}").into_bytes(),
                    },
                );
            }
        }
        let r = sim.run_until(slots * 20 + 20_000);
        let pro_wall = t0.elapsed().as_secs_f64();
        let decided: u64 = r.committed.values().sum();
        let pro_all: u64 = r.messages.values().map(|m| m.count).sum();
        let pro_core: u64 = ["propose", "prepare", "commit"]
            .iter()
            .filter_map(|k| r.messages.get(k))
            .map(|m| m.count)
            .sum();
        let complete = decided == slots * u64::from(n);
        // PBFT: one request per batch, one every 20 ms, from replica 1.
        let t1 = Instant::now();
        let mut pcfg = PbftConfig::new(n, f);
        pcfg.batch_max = 1;
        let mut pb = pbft::build(1, pcfg, Scheme::Mock);
        let nodes = std::mem::take(&mut pb.nodes);
        let mut psim =
            Simulator::new(1, FaultModel::reliable(), nodes, false).max_steps(50_000_000);
        for k in 0..slots {
            psim.input(
                k * 20,
                1,
                pbft::Submit {
                    id: k,
                    payload: format!("tx {k}").into_bytes(),
                },
            );
        }
        let pr = psim.run_until(slots * 20 + 20_000);
        let pbft_wall = t1.elapsed().as_secs_f64();
        let pdecided = pr.committed.get(&0).copied().unwrap_or(0);
        let pbft_all: u64 = pr.messages.values().map(|m| m.count).sum();
        let pbft_core: u64 = ["pre-prepare", "prepare", "commit"]
            .iter()
            .filter_map(|k| pr.messages.get(k))
            .map(|m| m.count)
            .sum();
        let (pa, pc) = (
            pro_all as f64 / slots as f64,
            pro_core as f64 / slots as f64,
        );
        let (ba, bc) = (
            pbft_all as f64 / pdecided.max(1) as f64,
            pbft_core as f64 / pdecided.max(1) as f64,
        );
        println!(
            "{:>4} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>9.1}% {:>9.1}% {:>11.2}s {:>11.2}s{}{}",
            n,
            pa,
            pc,
            ba,
            bc,
            100.0 * pa / ba,
            100.0 * pc / bc,
            pro_wall,
            pbft_wall,
            if complete {
                ""
            } else {
                "  (ProBFT: not every replica decided every slot!)"
            },
            if pdecided == slots {
                ""
            } else {
                "  (PBFT: not every request committed!)"
            },
        );
        if n == 100 {
            let verdict = |r: f64| if r <= 25.0 { "MET" } else { "MISSED" };
            println!(
                "target at n = 100: ProBFT ≤ 25 % of PBFT's messages per decision: all kinds {:.1}% {}, core phases {:.1}% {}",
                100.0 * pa / ba,
                verdict(100.0 * pa / ba),
                100.0 * pc / bc,
                verdict(100.0 * pc / bc)
            );
        }
        let per_kind =
            |m: &std::collections::BTreeMap<&'static str, dwcp_engines::sim::MsgStats>, d: u64| {
                m.iter()
                    .map(|(k, v)| format!("{k} {:.0}", v.count as f64 / d.max(1) as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
        println!("     ProBFT per decision: {}", per_kind(&r.messages, slots));
        println!(
            "     PBFT per decision: {}",
            per_kind(&pr.messages, pdecided)
        );
    }
}
