//! Guarded-call benchmark: `cargo run --release -p dwcp-engines --example breaker_bench`.
//!
//! Measures, uncontended and in one process: a bare call (baseline), a call guarded by a
//! [`CircuitBreaker`] (`acquire` + `record`), and a call guarded through the Manager (component
//! lookup by name + breaker). Target: a guarded call costs < 100 ns.
#![allow(clippy::disallowed_methods)] // an example: it reads the clock to measure

use std::hint::black_box;
use std::time::Instant;

use dwcp_engines::manager::{
    BreakerConfig, CircuitBreaker, Component, ComponentSpec, Health, Manager, ManagerConfig,
};

struct Noop;

impl Component for Noop {
    fn start(&mut self, _: u64) -> Result<(), String> {
        Ok(())
    }
    fn stop(&mut self, _: u64) {}
    fn health(&mut self, _: u64) -> Health {
        Health {
            healthy: true,
            detail: String::new(),
            memory_bytes: 0,
        }
    }
}

fn work(x: u64) -> bool {
    black_box(x) % 1000 != 999
}

fn time(label: &str, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..iters / 10 {
        f(i);
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        for i in 0..iters {
            f(i);
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / iters as f64);
    }
    println!("{label:<40} {best:>8.2} ns/call (best of 5 x {iters})");
    best
}

fn main() {
    let iters = 5_000_000;
    let base = time("bare call (baseline)", iters, |i| {
        black_box(work(i));
    });
    let mut b = CircuitBreaker::new(BreakerConfig::default());
    let guarded = time("breaker acquire + call + record", iters, |i| {
        if let Ok(p) = b.acquire(i) {
            let ok = work(i);
            b.record(i, p, black_box(ok));
        }
    });
    let mut m = Manager::new(ManagerConfig::default(), 1);
    let spec = ComponentSpec {
        name: "codec".into(),
        deps: vec![],
        critical: false,
    };
    if m.register(spec, Box::new(Noop)).is_err() || m.start(0).is_err() {
        eprintln!("setup failed");
        std::process::exit(1);
    }
    let managed = time("manager acquire + call + record (by name)", iters, |i| {
        if let Ok(p) = m.acquire("codec", i) {
            let ok = work(i);
            black_box(m.record("codec", i, p, ok));
        }
    });
    println!(
        "guard overhead: breaker {:.2} ns, manager {:.2} ns (target < 100 ns): {}",
        guarded - base,
        managed - base,
        if managed - base < 100.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
