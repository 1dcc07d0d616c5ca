//! # Arrival patterns
//!
//! Four seeded streams with the same mean CPU load, so patterns differ in shape, not in volume:
//!
//! * `steady` — Poisson arrivals at the base rate; three workload classes (CPU-heavy, memory-heavy,
//!   balanced) with durations 3–20 ticks.
//! * `bursty` — a two-state Markov-modulated Poisson process: quiet at half the rate, bursts at
//!   2.25× (bursts start with probability 0.10 per tick and end with 0.25), same long-run mean.
//! * `diurnal` — the rate follows `1 + 0.7 sin(2πt / (ticks/2))`: two "days" per episode.
//! * `heavy_tailed` — Pareto(α = 1.3) durations capped at 120 ticks and one workload in ten large
//!   (a quarter to a half of a big node); the rate is lowered (×0.8) so the mean load roughly matches.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::Demand;

/// The arrival pattern of an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Steady,
    Bursty,
    Diurnal,
    HeavyTailed,
}

impl Pattern {
    pub const ALL: [Pattern; 4] = [
        Pattern::Steady,
        Pattern::Bursty,
        Pattern::Diurnal,
        Pattern::HeavyTailed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Bursty => "bursty",
            Self::Diurnal => "diurnal",
            Self::HeavyTailed => "heavy_tailed",
        }
    }
    fn stream_id(self) -> u64 {
        match self {
            Self::Steady => 1,
            Self::Bursty => 2,
            Self::Diurnal => 3,
            Self::HeavyTailed => 4,
        }
    }
}

/// One arriving workload before it gets an id and a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Raw shard draw; the environment reduces it modulo the agents.
    pub shard: usize,
    pub demand: Demand,
    pub duration: u32,
    pub slack: u32,
}

/// The seeded arrival process of one episode.
#[derive(Debug, Clone)]
pub struct Arrivals {
    pattern: Pattern,
    rate: f64,
    ticks: u32,
    max_slack: u32,
    burst: bool,
    rng: ChaCha8Rng,
}

impl Arrivals {
    pub fn new(pattern: Pattern, rate: f64, ticks: u32, max_slack: u32, seed: u64) -> Self {
        Self {
            pattern,
            rate: rate.max(0.0),
            ticks: ticks.max(1),
            max_slack: max_slack.max(1),
            burst: false,
            rng: crate::env::stream(seed, pattern.stream_id()),
        }
    }

    /// The workloads arriving at `tick` (call once per tick, in order).
    pub fn draw(&mut self, tick: u32) -> Vec<Spec> {
        let lambda = match self.pattern {
            Pattern::Steady => self.rate,
            Pattern::Bursty => {
                let flip = if self.burst { 0.25 } else { 0.10 };
                if self.rng.gen_bool(flip) {
                    self.burst = !self.burst;
                }
                self.rate * if self.burst { 2.25 } else { 0.5 }
            }
            Pattern::Diurnal => {
                let phase = std::f64::consts::TAU * f64::from(tick) / (f64::from(self.ticks) / 2.0);
                self.rate * (1.0 + 0.7 * phase.sin())
            }
            Pattern::HeavyTailed => self.rate * 0.8,
        };
        let n = poisson(&mut self.rng, lambda);
        (0..n).map(|_| self.workload()).collect()
    }

    fn workload(&mut self) -> Spec {
        let r = &mut self.rng;
        let shard = r.gen_range(0..1usize << 16);
        let slack = r.gen_range(1..=self.max_slack);
        let mut demand: Demand = match r.gen_range(0..3) {
            0 => [r.gen_range(4..=8), r.gen_range(2..=8), r.gen_range(1..=3)],
            1 => [r.gen_range(1..=3), r.gen_range(8..=16), r.gen_range(1..=3)],
            _ => [r.gen_range(2..=5), r.gen_range(4..=10), r.gen_range(2..=5)],
        };
        let mut duration = r.gen_range(3..=20);
        if self.pattern == Pattern::HeavyTailed {
            let u: f64 = r.gen_range(f64::EPSILON..1.0);
            duration = (3.0 * u.powf(-1.0 / 1.3)).min(120.0) as u32;
            if r.gen_bool(0.1) {
                demand = [
                    r.gen_range(8..=16),
                    r.gen_range(16..=32),
                    r.gen_range(3..=8),
                ];
            }
        }
        Spec {
            shard,
            demand,
            duration: duration.max(1),
            slack,
        }
    }
}

/// Knuth's Poisson sampler (λ is small here: at most a few tens).
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let l = (-lambda).exp();
    let mut k = 0u32;
    let mut p = 1.0;
    loop {
        p *= rng.gen_range(0.0..1.0);
        if p <= l || k >= 1000 {
            return k;
        }
        k += 1;
    }
}
