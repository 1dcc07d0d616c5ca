//! Compression Selector evaluation: `cargo run --release -p dwcp-engines --example compression_eval`.
//!
//! Generates the seeded corpus (`SIM_SEED` overrides the seed), measures every codec on every
//! item (the oracle), trains the model on the training split, and prints, for the held-out split
//! over a grid of links: mean regret vs the oracle and agreement with it for the model and for
//! fixed-codec baselines (same run), and the model's decision latency with a 4 KiB probe.
#![allow(clippy::disallowed_methods)] // an example: it reads the clock to measure

use std::time::Instant;

use dwcp_engines::compression::{corpus, Selector, Stopwatch};

struct Clock(Instant);

impl Stopwatch for Clock {
    fn now_ns(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

fn main() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024u64);
    let items = corpus::generate(seed, 360, 4 << 10, 256 << 10);
    let (train, test) = corpus::split(seed, items, 30);
    println!(
        "seed {seed}: {} training items, {} held-out items",
        train.len(),
        test.len()
    );
    let mut clock = Clock(Instant::now());
    let t0 = Instant::now();
    let selector = match Selector::train_and_evaluate(&train, &test, 3, &mut clock, 1 << 30) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seed {seed}: training failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "oracle + training + evaluation took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let Some(ev) = selector.evaluation() else {
        return;
    };
    println!("held-out cases (items x links): {}", ev.cases);
    println!("{:<16} {:>12} {:>10}", "policy", "mean regret", "agreement");
    for s in std::iter::once(&ev.model).chain(ev.baselines.iter()) {
        println!(
            "{:<16} {:>11.2}% {:>9.1}%",
            s.policy,
            s.mean_regret * 100.0,
            s.agreement * 100.0
        );
    }
    println!("per class (model):");
    for (class, s) in &ev.per_class {
        println!(
            "  {:<12} regret {:>6.2}%  agreement {:>5.1}%",
            class,
            s.mean_regret * 100.0,
            s.agreement * 100.0
        );
    }
    println!("oracle's choices: {:?}", ev.oracle_choices);
    println!(
        "decision latency (probe {} B): mean {:.2} us, p99 {:.2} us",
        ev.probe_bytes,
        ev.decision_ns_mean / 1e3,
        ev.decision_ns_p99 as f64 / 1e3
    );
    let ok = ev.model.mean_regret <= 0.10
        && ev.model.agreement >= 0.80
        && ev.decision_ns_mean <= 20_000.0;
    println!(
        "targets (regret <= 10 %, agreement >= 80 %, decision <= 20 us): {}",
        if ok { "met" } else { "NOT met" }
    );
}
