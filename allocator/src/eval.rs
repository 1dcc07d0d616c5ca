//! # Evaluation: the learned policy against the baselines, on identical streams
//!
//! Every policy runs the same episodes (same arrival streams: the stream depends on the seed and
//! episode only). Per evaluation seed, each metric is averaged over its episodes; the table reports
//! the mean over seeds with a 95 % Student-t interval, and the paired per-seed difference to
//! best-fit with its own 95 % interval. Evaluation seeds are offset from training seeds so the
//! policy is never scored on an episode it trained on.

use serde::Serialize;

use crate::arrivals::Pattern;
use crate::baselines::{Baseline, Probe};
use crate::env::{stream, Action, Env, EnvConfig, EpisodeStats};
use crate::observe::Scale;
use crate::policy::{Model, Scratch};

/// First evaluation seed (training episode seeds come from `train::episode_seed`, a different mix).
pub const EVAL_SEED_BASE: u64 = 1_000_000;

/// Something that places workloads.
#[derive(Debug, Clone, Copy)]
pub enum Placer<'a> {
    Baseline(Baseline),
    Maddpg(&'a Model),
    /// A diagnostic rule (see [`Probe`]).
    Probe(Probe),
}

impl Placer<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Baseline(b) => b.name(),
            Self::Maddpg(_) => "maddpg",
            Self::Probe(p) => p.name(),
        }
    }
}

/// Outcome of one episode plus the guard's fallbacks.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub stats: EpisodeStats,
    pub fallbacks: u64,
    pub decisions: u64,
    /// Decisions that differ from what best-fit would have done in the same state.
    pub off_best_fit: u64,
}

/// Seed of evaluation episode `ep` of evaluation seed `s`.
pub fn eval_episode_seed(s: u64, ep: u32) -> u64 {
    (EVAL_SEED_BASE + s) << 20 | u64::from(ep)
}

/// Play one episode with `placer`; checks the environment's invariants after every tick.
pub fn run_episode(
    cfg: &EnvConfig,
    pattern: Pattern,
    seed: u64,
    placer: Placer<'_>,
) -> Result<Run, String> {
    let mut env = Env::new(cfg.clone(), pattern, seed);
    let scale = Scale::new(env.cluster(), cfg.max_slack, cfg.max_queue);
    let mut rng = stream(seed, 200);
    let mut scratch = Scratch::default();
    let mut run = Run::default();
    loop {
        for agent in 0..cfg.agents {
            let Some(head) = env.head(agent) else {
                continue;
            };
            let action = match placer {
                Placer::Baseline(b) => b
                    .choose(env.cluster(), head.demand, &mut rng)
                    .map_or(Action::Defer, Action::Place),
                Placer::Probe(p) => p
                    .choose(env.cluster(), head.demand, head.slack)
                    .map_or(Action::Defer, Action::Place),
                Placer::Maddpg(m) => {
                    let d = m.decide(agent, env.cluster(), Some(&head), &scale, &mut scratch);
                    run.decisions += 1;
                    run.fallbacks += u64::from(d.fallback.is_some());
                    let bf = crate::baselines::best_fit(env.cluster(), head.demand)
                        .map_or(Action::Defer, Action::Place);
                    run.off_best_fit += u64::from(d.action != bf);
                    d.action
                }
            };
            env.act(agent, action);
        }
        let before = env.tick();
        let (_, done) = env.end_round();
        if env.tick() != before {
            env.check_invariants()?;
        }
        if done {
            break;
        }
    }
    run.stats = env.stats().clone();
    Ok(run)
}

/// Mean and 95 % interval half-width (Student t) of a sample.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub half: f64,
}

impl Interval {
    pub fn of(x: &[f64]) -> Self {
        let n = x.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                half: f64::NAN,
            };
        }
        let mean = x.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Self {
                mean,
                half: f64::NAN,
            };
        }
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Self {
            mean,
            half: t975(n - 1) * (var / n as f64).sqrt(),
        }
    }
    pub fn lo(&self) -> f64 {
        self.mean - self.half
    }
    pub fn hi(&self) -> f64 {
        self.mean + self.half
    }
}

/// Two-sided 95 % Student t quantile for `df` degrees of freedom (table to 30, then normal-ish).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        d if d <= 30 => T[d - 1],
        d if d <= 60 => 2.000,
        _ => 1.96,
    }
}

/// Per-seed means of the four metrics, plus the fallback rate.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SeedMetrics {
    pub success: f64,
    pub sla_miss: f64,
    pub utilisation: f64,
    pub jain: f64,
    pub fallback_rate: f64,
    /// Share of the learned policy's decisions that differ from best-fit's in the same state.
    pub off_best_fit_rate: f64,
}

impl SeedMetrics {
    pub fn get(&self, metric: &str) -> f64 {
        match metric {
            "success" => self.success,
            "sla_miss" => self.sla_miss,
            "utilisation" => self.utilisation,
            "jain" => self.jain,
            "off_best_fit" => self.off_best_fit_rate,
            _ => self.fallback_rate,
        }
    }
}

pub const METRICS: [&str; 4] = ["success", "sla_miss", "utilisation", "jain"];

/// Run `episodes` episodes for each of `seeds` evaluation seeds; one [`SeedMetrics`] per seed.
pub fn evaluate(
    cfg: &EnvConfig,
    pattern: Pattern,
    seeds: u64,
    episodes: u32,
    placer: Placer<'_>,
) -> Result<Vec<SeedMetrics>, String> {
    let mut out = Vec::new();
    for s in 0..seeds {
        let mut m = SeedMetrics::default();
        let (mut fb, mut dec, mut off) = (0u64, 0u64, 0u64);
        for ep in 0..episodes {
            let run = run_episode(cfg, pattern, eval_episode_seed(s, ep), placer)?;
            m.success += run.stats.success_rate();
            m.sla_miss += run.stats.sla_miss_rate();
            m.utilisation += run.stats.utilisation();
            m.jain += run.stats.jain_fairness();
            fb += run.fallbacks;
            dec += run.decisions;
            off += run.off_best_fit;
        }
        let e = f64::from(episodes.max(1));
        m.success /= e;
        m.sla_miss /= e;
        m.utilisation /= e;
        m.jain /= e;
        let share = |x: u64| if dec == 0 { 0.0 } else { x as f64 / dec as f64 };
        m.fallback_rate = share(fb);
        m.off_best_fit_rate = share(off);
        out.push(m);
    }
    Ok(out)
}

/// The paired per-seed difference `a − b` of one metric, with its interval.
pub fn paired_diff(a: &[SeedMetrics], b: &[SeedMetrics], metric: &str) -> Interval {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.get(metric) - y.get(metric))
        .collect();
    Interval::of(&d)
}
