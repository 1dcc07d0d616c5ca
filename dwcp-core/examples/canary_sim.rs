//! Seeded simulation of canary judgment over the pure core (issue 3, "Must show 1").
//!
//! ```text
//! cargo run --release -p dwcp-core --example canary_sim            # 1 000 runs per case
//! cargo run --release -p dwcp-core --example canary_sim -- 200     # fewer runs
//! SIM_SEED=7 SIM_THREADS=2 cargo run --release -p dwcp-core --example canary_sim
//! ```
//!
//! Traffic model (per simulated second; one `Input::Window` then one `Input::Tick`, as the companion does):
//! * arrivals: Poisson with a bursty rate — base 200 req/s × an AR(1) log-normal factor (σ 0.3, ρ 0.8)
//!   × occasional spikes (×3 for ~10 s, 0.5 % chance per second);
//! * segment mix internal 5 %, beta 5 %, premium 10 %, enterprise 10 %, standard 70 %; each request goes to
//!   the canary with its segment's share from `RolloutSpec::shares(phase)` (so the canary's request share
//!   is the traffic-weighted mix: 11.8 % in the 1 % phase, 15 % in 5 %, …); the window's
//!   `expected_canary` is Σ_seg requests_seg × share_seg;
//! * errors: 1 % on both tracks; latency log-normal, median 20 ms, σ 0.5 (p99 ≈ 64 ms), histogrammed
//!   with the core's log buckets;
//! * ladder: the spec defaults without shadow (1 → 5 → 10 → 25 → 50 → 100 %), 10 min per phase,
//!   min requests per track 1 000 / 1 000 / 2 000 / 5 000 / 10 000.
//!
//! Every run is seeded from `SIM_SEED` (default 1), the case number and the run number (`run_seed`), so
//! results do not depend on the number of threads.
#![allow(clippy::disallowed_methods)] // reads the clock only to print the wall time

use dwcp_core::histogram::{value_of, Histogram, GAMMA};
use dwcp_core::rollout::{Command, Input, Rollout, RolloutSpec, Status, TrackAgg, Window};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Segment mix of the simulated traffic.
pub const SEGMENTS: [(&str, f64); 5] = [
    ("internal", 0.05),
    ("beta", 0.05),
    ("premium", 0.10),
    ("enterprise", 0.10),
    ("standard", 0.70),
];

/// What goes wrong with the canary, from the onset on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regression {
    None,
    /// Canary error rate = base × factor.
    ErrorMult(f64),
    /// Canary error rate = this (a crash: 0.5).
    ErrorRate(f64),
    /// Canary latency tail widened so its p99 is `factor ×` stable's (median unchanged).
    TailP99(f64),
}

/// When the regression starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Onset {
    /// From the deploy: the canary is bad from its first request.
    Start,
    /// At the beginning of phase `i` (index in the ladder without shadow: 0 = 1 %, 1 = 5 %, …).
    PhaseStart(usize),
    /// In the middle half of phase `i`, at a uniformly random second.
    MidPhase(usize),
    /// In the middle half of a uniformly random phase among 1 % … 50 %.
    MidRandomPhase,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Mean total request rate (req/s) before burst modulation.
    pub base_rps: f64,
    /// When set, the total rate follows the phase so the canary receives this many req/s on average.
    pub canary_rps: Option<f64>,
    /// Burst modulation of the rate on/off.
    pub bursty: bool,
    pub error_rate: f64,
    pub median_ms: f64,
    pub sigma: f64,
    /// Minimum duration of each phase, seconds.
    pub phase_s: u64,
    pub regression: Regression,
    pub onset: Onset,
    /// Stop (without abort) when the rollout leaves this phase.
    pub stop_after_phase: Option<usize>,
    /// Stop this many seconds after the onset (a bound for hopeless cases).
    pub max_after_onset_s: Option<u64>,
    /// Hard bound on simulated seconds.
    pub max_s: u64,
    pub segments: Vec<(&'static str, f64)>,
}

impl Scenario {
    /// Healthy A/A traffic with the defaults above.
    pub fn healthy() -> Self {
        Self {
            base_rps: 200.0,
            canary_rps: None,
            bursty: true,
            error_rate: 0.01,
            median_ms: 20.0,
            sigma: 0.5,
            phase_s: 600,
            regression: Regression::None,
            onset: Onset::Start,
            stop_after_phase: None,
            max_after_onset_s: None,
            max_s: 4 * 3600,
            segments: SEGMENTS.to_vec(),
        }
    }
}

/// The spec of SPEC.md 3 without the shadow phase, `phase_s` per phase.
pub fn sim_spec(phase_s: u64) -> RolloutSpec {
    let mut s = RolloutSpec::default_for("sim");
    s.phases = RolloutSpec::default_phases(phase_s * 1000)
        .into_iter()
        .filter(|p| !p.shadow)
        .collect();
    s
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub aborted: bool,
    pub succeeded: bool,
    /// When the rollback was decided (ms of simulated time).
    pub decided_ms: Option<u64>,
    /// When the regression started (None: never, e.g. A/A or stopped before it).
    pub onset_ms: Option<u64>,
    /// Phase index at the end of the run (the abort's phase when aborted).
    pub phase: usize,
    /// Phase index the regression started in.
    pub onset_phase: Option<usize>,
    pub trigger: String,
    pub end_ms: u64,
}

impl RunResult {
    /// Aborted after the regression started: a detection.
    pub fn detected(&self) -> bool {
        matches!((self.decided_ms, self.onset_ms), (Some(d), Some(o)) if self.aborted && d > o)
    }
    /// Aborted before any regression: a false abort.
    pub fn false_abort(&self) -> bool {
        self.aborted && !self.detected()
    }
    /// Time from the onset to the rollback decision, ms.
    pub fn time_to_abort_ms(&self) -> Option<u64> {
        match (self.detected(), self.decided_ms, self.onset_ms) {
            (true, Some(d), Some(o)) => Some(d - o),
            _ => None,
        }
    }
}

/// SplitMix64: the seed of run `run` of case `case` under master seed `seed`.
pub fn run_seed(seed: u64, case: u64, run: u64) -> u64 {
    let mut z = seed
        .wrapping_add(case.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(run.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Standard normals by Box–Muller, one spare kept.
struct Normal {
    spare: Option<f64>,
}

impl Normal {
    fn sample(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

/// Φ⁻¹(p), Acklam's rational approximation (relative error < 1.2e-9).
fn inv_norm(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Latency sampling by inverse CDF: 2^16 equiprobable slices of log-normal(ln median, σ), each mapped
/// to the core histogram's bucket of its midpoint quantile (p ∈ [7.6e-6, 1 − 7.6e-6], |z| ≤ 4.3).
struct LatencyTable {
    bucket: Vec<u16>,
}

impl LatencyTable {
    const BITS: u32 = 16;

    fn new(median_ms: f64, sigma: f64) -> Self {
        let n = 1usize << Self::BITS;
        let mu = (median_ms * 1000.0).ln();
        let ln_g = GAMMA.ln();
        let bucket = (0..n)
            .map(|i| {
                let z = inv_norm((i as f64 + 0.5) / n as f64);
                ((mu + sigma * z) / ln_g)
                    .ceil()
                    .clamp(1.0, (MAX_BUCKET - 1) as f64) as u16
            })
            .collect();
        Self { bucket }
    }

    #[inline]
    fn sample(&self, bits: u64) -> usize {
        usize::from(self.bucket[(bits >> (64 - Self::BITS)) as usize])
    }
}

/// ln Γ(x) for x ≥ 1 (Stirling series after shifting to x ≥ 10).
fn ln_gamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= x.ln();
        x += 1.0;
    }
    let x2 = x * x;
    acc + (x - 0.5) * x.ln() - x + 0.5 * (std::f64::consts::TAU).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x2 * x2 * x)
}

/// Poisson(λ): Knuth below 10, Hörmann's PTRS above.
fn poisson(rng: &mut ChaCha8Rng, lam: f64) -> u64 {
    if lam <= 0.0 {
        return 0;
    }
    if lam < 10.0 {
        let l = (-lam).exp();
        let mut k = 0u64;
        let mut p = rng.gen::<f64>();
        while p > l {
            k += 1;
            p *= rng.gen::<f64>();
        }
        return k;
    }
    let slam = lam.sqrt();
    let loglam = lam.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.gen::<f64>() - 0.5;
        let v: f64 = rng.gen();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
            <= -lam + k * loglam - ln_gamma(k + 1.0)
        {
            return k as u64;
        }
    }
}

/// Burst modulation of the arrival rate: an AR(1) log-normal factor with mean ≈ 1 and rare spikes.
struct Burst {
    x: f64,
    spike_left: u32,
}

impl Burst {
    const SIGMA: f64 = 0.3;
    const RHO: f64 = 0.8;

    fn new(rng: &mut ChaCha8Rng, n: &mut Normal) -> Self {
        Self {
            x: Self::SIGMA * n.sample(rng),
            spike_left: 0,
        }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng, n: &mut Normal) -> f64 {
        self.x =
            Self::RHO * self.x + (1.0 - Self::RHO * Self::RHO).sqrt() * Self::SIGMA * n.sample(rng);
        if self.spike_left > 0 {
            self.spike_left -= 1;
        } else if rng.gen::<f64>() < 0.005 {
            // Geometric duration, mean 10 s.
            self.spike_left = 1;
            while rng.gen::<f64>() < 0.9 {
                self.spike_left += 1;
            }
        }
        let spike = if self.spike_left > 0 { 3.0 } else { 1.0 };
        (self.x - Self::SIGMA * Self::SIGMA / 2.0).exp() * spike
    }
}

/// One track's window, accumulated per request into bucket counts (the core's log buckets).
struct TrackScratch {
    counts: Vec<u64>,
    lo: usize,
    hi: usize,
    requests: u64,
    errors: u64,
}

const MAX_BUCKET: usize = 2048;

impl TrackScratch {
    fn new() -> Self {
        Self {
            counts: vec![0; MAX_BUCKET],
            lo: MAX_BUCKET,
            hi: 0,
            requests: 0,
            errors: 0,
        }
    }

    #[inline]
    fn add(&mut self, bucket: usize, error: bool) {
        self.counts[bucket] += 1;
        self.lo = self.lo.min(bucket);
        self.hi = self.hi.max(bucket);
        self.requests += 1;
        self.errors += u64::from(error);
    }

    /// The window's `TrackAgg`; resets the scratch.
    fn take(&mut self) -> TrackAgg {
        let mut h = Histogram::new();
        if self.requests > 0 {
            let mut sum = 0.0;
            let buckets: BTreeMap<i32, u64> = self.counts[self.lo..=self.hi]
                .iter_mut()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(j, c)| {
                    let i = (self.lo + j) as i32;
                    let c = std::mem::take(c);
                    sum += value_of(i) * c as f64;
                    (i, c)
                })
                .collect();
            h.buckets = buckets;
            h.count = self.requests;
            h.sum = sum as u64;
        }
        let t = TrackAgg {
            requests: self.requests,
            errors: self.errors,
            latency_us: h,
        };
        self.lo = MAX_BUCKET;
        self.hi = 0;
        self.requests = 0;
        self.errors = 0;
        t
    }
}

/// Canary share (fraction) per segment of `SEGMENTS` order at the rollout's current state.
fn segment_shares(r: &Rollout, segments: &[(&'static str, f64)]) -> Vec<f64> {
    let shares = r.shares();
    segments
        .iter()
        .map(|(s, _)| f64::from(shares.get(*s).copied().unwrap_or(0)) / 10_000.0)
        .collect()
}

/// Simulates one rollout under `sc` with the RNG seeded by `seed`.
pub fn run(sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = Normal { spare: None };
    let spec = sim_spec(sc.phase_s);
    let live_phases = spec.phases.len().saturating_sub(1).max(1); // all but 100 %
    let mut r = Rollout::new(spec);
    r.step(
        Input::Command {
            command: Command::Start,
            actor: "sim".into(),
        },
        0,
    );

    // Onset: which phase, at what offset into it.
    let phase_ms = sc.phase_s * 1000;
    // Mid-phase onsets fall at a uniformly random millisecond of the phase's middle half.
    let mid = |rng: &mut ChaCha8Rng| phase_ms / 4 + rng.gen_range(0..=phase_ms / 2);
    let (onset_phase, onset_offset_ms) = match sc.regression {
        Regression::None => (None, 0),
        _ => match sc.onset {
            Onset::Start => (Some(0), 0),
            Onset::PhaseStart(p) => (Some(p), 0),
            Onset::MidPhase(p) => (Some(p), mid(&mut rng)),
            Onset::MidRandomPhase => {
                let p = rng.gen_range(0..live_phases);
                (Some(p), mid(&mut rng))
            }
        },
    };
    let mut onset_ms = (onset_phase == Some(r.phase)).then_some(onset_offset_ms);

    let total_w: f64 = sc.segments.iter().map(|s| s.1).sum();
    let cum: Vec<f64> = sc
        .segments
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s.1 / total_w;
            Some(*acc)
        })
        .collect();
    let mut shares = segment_shares(&r, &sc.segments);
    let mut phase = r.phase;

    // Latency: log-normal; the regressed tail keeps the median and widens σ so that p99 is `factor ×`
    // stable's: σ' = σ + ln factor / z_0.99.
    let (err_bad, sigma_bad) = match sc.regression {
        Regression::None => (sc.error_rate, sc.sigma),
        Regression::ErrorMult(f) => ((sc.error_rate * f).min(1.0), sc.sigma),
        Regression::ErrorRate(p) => (p, sc.sigma),
        Regression::TailP99(f) => (sc.error_rate, sc.sigma + f.ln() / 2.326_348),
    };

    let lat_ok = LatencyTable::new(sc.median_ms, sc.sigma);
    let lat_bad = LatencyTable::new(sc.median_ms, sigma_bad);
    // Probabilities as 32-bit thresholds: one u64 draw per request for segment + canary, one for
    // error + latency.
    let thr = |p: f64| (p.clamp(0.0, 1.0) * 4_294_967_296.0) as u64;
    let cum_thr: Vec<u64> = cum.iter().map(|c| thr(*c)).collect();
    let mut share_thr: Vec<u64> = shares.iter().map(|s| thr(*s)).collect();
    let (err_ok_thr, err_bad_thr) = (thr(sc.error_rate), thr(err_bad));
    let mut burst = Burst::new(&mut rng, &mut normal);
    let mut st = TrackScratch::new();
    let mut ca = TrackScratch::new();
    let mut res = RunResult {
        aborted: false,
        succeeded: false,
        decided_ms: None,
        onset_ms: None,
        phase: 0,
        onset_phase,
        trigger: String::new(),
        end_ms: 0,
    };
    let mut now = 0;
    for sec in 1..=sc.max_s {
        now = sec * 1000;
        let t0 = now - 1000;
        // Requests arrive uniformly within the window; those at or after the onset are regressed.
        let bad_from: Option<u64> = onset_ms.filter(|o| *o < now).map(|o| o.saturating_sub(t0));
        if let (Some(o), Some(m)) = (onset_ms, sc.max_after_onset_s) {
            if t0 >= o + m * 1000 {
                break;
            }
        }
        let canary_share: f64 = sc
            .segments
            .iter()
            .zip(&shares)
            .map(|(s, sh)| s.1 / total_w * sh)
            .sum();
        let mean_rate = match sc.canary_rps {
            Some(c) if canary_share > 0.0 => c / canary_share,
            _ => sc.base_rps,
        };
        let rate = if sc.bursty {
            mean_rate * burst.next(&mut rng, &mut normal)
        } else {
            mean_rate
        };
        let n = poisson(&mut rng, rate);
        let mut expected = 0.0;
        let mut per_seg = [0u64; 8];
        for _ in 0..n {
            let a: u64 = rng.gen();
            let (u_seg, u_can) = (a >> 32, a & 0xFFFF_FFFF);
            let seg = cum_thr
                .iter()
                .position(|c| u_seg < *c)
                .unwrap_or(cum_thr.len() - 1);
            per_seg[seg.min(7)] += 1;
            let canary = u_can < share_thr[seg];
            // Arrival time within the window (ms); only drawn when the onset falls inside it.
            let bad = match bad_from {
                Some(0) => true,
                Some(from) => rng.gen_range(0..1000) >= from,
                None => false,
            };
            let (e_thr, lat) = if canary && bad {
                (err_bad_thr, &lat_bad)
            } else {
                (err_ok_thr, &lat_ok)
            };
            let b: u64 = rng.gen();
            let error = (b & 0xFFFF_FFFF) < e_thr;
            let b = lat.sample(b);
            if canary {
                ca.add(b, error);
            } else {
                st.add(b, error);
            }
        }
        for (c, sh) in per_seg.iter().zip(&shares) {
            expected += *c as f64 * sh;
        }
        let w = Window {
            stable: st.take(),
            canary: ca.take(),
            expected_canary: expected,
            current_phase: true,
            ..Default::default()
        };
        r.step(Input::Window(w), now);
        if r.status != Status::RolledBack {
            r.step(Input::Tick, now);
        }
        if r.status == Status::RolledBack {
            res.aborted = true;
            res.decided_ms = r.decided_at_ms;
            res.trigger = r
                .last_verdict
                .as_ref()
                .map(|v| v.trigger.clone())
                .unwrap_or_default();
            break;
        }
        if r.phase != phase {
            if sc.stop_after_phase == Some(phase) {
                break;
            }
            phase = r.phase;
            shares = segment_shares(&r, &sc.segments);
            share_thr = shares.iter().map(|s| thr(*s)).collect();
            if onset_ms.is_none() && onset_phase == Some(phase) {
                onset_ms = Some(now + onset_offset_ms);
            }
        }
        if r.status == Status::Succeeded {
            res.succeeded = true;
            break;
        }
    }
    res.onset_ms = onset_ms.filter(|o| *o < now);
    res.phase = r.phase;
    res.end_ms = now;
    res
}

/// Runs `runs` seeded rollouts of a case on `threads` threads; results in run order.
pub fn run_many(sc: &Scenario, seed: u64, case: u64, runs: u64, threads: usize) -> Vec<RunResult> {
    let threads = threads.max(1) as u64;
    let mut out: Vec<Option<RunResult>> = vec![None; runs as usize];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..runs)
                        .filter(|i| i % threads == t)
                        .map(|i| (i, run(sc, run_seed(seed, case, i))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(v) = h.join() {
                for (i, r) in v {
                    out[i as usize] = Some(r);
                }
            }
        }
    });
    out.into_iter().flatten().collect()
}

/// Wilson score interval (95 %) for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Sorted times to abort (ms) of the detected runs.
pub fn times_to_abort(rs: &[RunResult]) -> Vec<u64> {
    let mut t: Vec<u64> = rs.iter().filter_map(RunResult::time_to_abort_ms).collect();
    t.sort_unstable();
    t
}

const PHASE_NAMES: [&str; 6] = ["1%", "5%", "10%", "25%", "50%", "100%"];

fn secs(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "—".into(),
        |v| {
            if v < 100_000 {
                format!("{:.1} s", v as f64 / 1000.0)
            } else {
                format!("{:.0} s", v as f64 / 1000.0)
            }
        },
    )
}

fn pct(k: u64, n: u64) -> String {
    let (lo, hi) = wilson(k, n);
    format!(
        "{:>5.1}% [{:.1}, {:.1}]",
        100.0 * k as f64 / n.max(1) as f64,
        lo * 100.0,
        hi * 100.0
    )
}

/// "trigger×count" of the aborts, by trigger.
fn triggers(rs: &[RunResult], pred: impl Fn(&RunResult) -> bool) -> String {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rs.iter().filter(|r| pred(r)) {
        *m.entry(r.trigger.as_str()).or_insert(0) += 1;
    }
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// "phase:count" of the detections, by phase of the abort.
fn phases(rs: &[RunResult]) -> String {
    let mut m: BTreeMap<usize, u64> = BTreeMap::new();
    for r in rs.iter().filter(|r| r.detected()) {
        *m.entry(r.phase).or_insert(0) += 1;
    }
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{}:{v}", PHASE_NAMES.get(*k).copied().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(label: &str, rs: &[RunResult]) -> String {
    let n = rs.len() as u64;
    let det = rs.iter().filter(|r| r.detected()).count() as u64;
    let fa = rs.iter().filter(|r| r.false_abort()).count() as u64;
    let t = times_to_abort(rs);
    format!(
        "| {label} | {n} | {} | {} | {} | {} | {} | {fa}{} | {} | {} |",
        pct(det, n),
        secs(percentile(&t, 0.5)),
        secs(percentile(&t, 0.95)),
        secs(t.last().copied()),
        secs(t.first().copied()),
        if fa > 0 {
            format!(" ({})", triggers(rs, RunResult::false_abort))
        } else {
            String::new()
        },
        phases(rs),
        triggers(rs, RunResult::detected),
    )
}

fn main() {
    let wall = std::time::Instant::now();
    let seed: u64 = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .or_else(|| std::env::var("SIM_RUNS").ok().and_then(|s| s.parse().ok()))
        .unwrap_or(1_000);
    // Runs per regression / aim case: second argument or SIM_REG_RUNS, default half the A/A runs.
    let reg_runs: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            std::env::var("SIM_REG_RUNS")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(runs.div_ceil(2));
    // SIM_CASES=1,5,8 runs only those case numbers (1 = A/A).
    let only: Option<Vec<u64>> = std::env::var("SIM_CASES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let want = |id: u64| only.as_ref().is_none_or(|o| o.contains(&id));
    let threads: usize = std::env::var("SIM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(2)));
    let alpha = sim_spec(600).guardrails.alpha;

    println!("canary_sim — seeded simulation of the rollout judgment (dwcp-core::rollout)");
    println!(
        "SIM_SEED={seed}  A/A runs={runs}  runs per regression case={reg_runs}  threads={threads}  (run i of case c: ChaCha8Rng::seed_from_u64(run_seed({seed}, c, i)))"
    );
    println!(
        "traffic: Poisson, base 200 req/s × bursty factor (AR(1) log-normal σ 0.3 + ×3 spikes); segments internal 5 / beta 5 / premium 10 / enterprise 10 / standard 70 %;"
    );
    println!(
        "         errors 1 %; latency log-normal median 20 ms σ 0.5 (p99 ≈ 64 ms); 1 s windows (Window then Tick)."
    );
    let spec = sim_spec(600);
    let ladder: Vec<String> = spec
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sh = spec.shares(i);
            let mix: f64 = SEGMENTS
                .iter()
                .map(|(s, w)| w * f64::from(sh.get(*s).copied().unwrap_or(0)) / 10_000.0)
                .sum();
            format!("{} (canary gets {:.1} % of requests)", p.name, mix * 100.0)
        })
        .collect();
    println!("ladder: {} ; 10 min per phase, min requests per track 1000/1000/2000/5000/10000; α = {alpha}", ladder.join(" → "));
    println!();

    // (a) A/A: 1 000 healthy rollouts at 200 req/s; plus a low-traffic batch (5 canary req/s).
    let aa_cases = [
        (
            1,
            "(a) A/A, 200 req/s, full ladder 1→100 %",
            Scenario::healthy(),
            runs,
        ),
        (
            13,
            "(a') A/A, low traffic: 5 canary req/s in every phase",
            Scenario {
                canary_rps: Some(5.0),
                ..Scenario::healthy()
            },
            reg_runs,
        ),
    ];
    let mut verdicts = Vec::new();
    println!("## (a) healthy A/A rollouts");
    println!();
    println!("| case | runs | false aborts | rate [95% Wilson CI] | reached 100% | median rollout time | aborts by trigger |");
    println!("|---|---|---|---|---|---|---|");
    for (id, label, sc, n_runs) in aa_cases.iter().filter(|c| want(c.0)) {
        let aa = run_many(sc, seed, *id, *n_runs, threads);
        let n = aa.len() as u64;
        let fa = aa.iter().filter(|r| r.aborted).count() as u64;
        let ok = aa.iter().filter(|r| r.succeeded).count() as u64;
        let (_, hi) = wilson(fa, n);
        let mut durations: Vec<u64> = aa
            .iter()
            .filter(|r| r.succeeded)
            .map(|r| r.end_ms)
            .collect();
        durations.sort_unstable();
        println!(
            "| {label} | {n} | {fa} | {} | {ok} | {} | {} |",
            pct(fa, n),
            percentile(&durations, 0.5)
                .map_or("—".into(), |v| format!("{:.1} min", v as f64 / 60_000.0)),
            triggers(&aa, |r| r.aborted)
        );
        verdicts.push(format!(
            "{label}: false-abort rate {:.2} % (95 % Wilson CI upper bound {:.2} %) vs α = {:.0} %: {}",
            100.0 * fa as f64 / n.max(1) as f64,
            hi * 100.0,
            alpha * 100.0,
            if (fa as f64) <= alpha * n as f64 {
                "MET"
            } else {
                "MISSED"
            }
        ));
    }
    println!();
    for v in &verdicts {
        println!("{v}");
    }
    println!();

    // Regressions.
    let mut cases: Vec<(u64, &str, Scenario)> = Vec::new();
    let from_start = |reg| Scenario {
        regression: reg,
        onset: Onset::Start,
        ..Scenario::healthy()
    };
    cases.push((
        2,
        "(b) 2× error rate, from deploy",
        from_start(Regression::ErrorMult(2.0)),
    ));
    cases.push((
        3,
        "(c) 1.5× error rate, from deploy",
        from_start(Regression::ErrorMult(1.5)),
    ));
    cases.push((
        4,
        "(d) 2× p99 (tail; median same), from deploy",
        from_start(Regression::TailP99(2.0)),
    ));
    cases.push((
        5,
        "(e) 50 % errors crash, mid-phase (random phase 1–50 %)",
        Scenario {
            regression: Regression::ErrorRate(0.5),
            onset: Onset::MidRandomPhase,
            ..Scenario::healthy()
        },
    ));
    cases.push((
        6,
        "(b') 2× error rate, mid-phase (random phase 1–50 %)",
        Scenario {
            regression: Regression::ErrorMult(2.0),
            onset: Onset::MidRandomPhase,
            ..Scenario::healthy()
        },
    ));
    println!("## Regressions (time to abort measured from the regression's onset)");
    println!();
    println!("| case | runs | detected [95% CI] | median | p95 | max | min | aborts before onset | phase of abort | trigger |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (id, label, sc) in cases.iter().filter(|c| want(c.0)) {
        let rs = run_many(sc, seed, *id, reg_runs, threads);
        println!("{}", row(label, &rs));
    }
    println!();

    // Aim 1: 50 % errors at 5 canary req/s, aborted in under 5 s.
    println!("## Aims");
    println!();
    println!("| case | runs | detected [95% CI] | median | p95 | max | min | aborts before onset | phase of abort | trigger |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let crash5 = |onset| Scenario {
        canary_rps: Some(5.0),
        regression: Regression::ErrorRate(0.5),
        onset,
        max_after_onset_s: Some(600),
        ..Scenario::healthy()
    };
    let aim1 = [
        (
            7,
            "crash 50 %, 5 canary req/s, from deploy",
            crash5(Onset::Start),
        ),
        (
            11,
            "crash 50 %, 5 canary req/s, mid 1 % phase",
            crash5(Onset::MidPhase(0)),
        ),
        (
            12,
            "crash 50 %, 5 canary req/s, mid 5 % phase",
            crash5(Onset::MidPhase(1)),
        ),
        (
            8,
            "crash 50 %, 5 canary req/s, mid-phase (random phase 1–50 %)",
            crash5(Onset::MidRandomPhase),
        ),
    ];
    let mut aim1_lines = Vec::new();
    for (id, label, sc) in aim1.iter().filter(|c| want(c.0)) {
        let rs = run_many(sc, seed, *id, reg_runs, threads);
        println!("{}", row(label, &rs));
        let t = times_to_abort(&rs);
        let under5 = rs
            .iter()
            .filter(|r| r.time_to_abort_ms().is_some_and(|t| t < 5_000))
            .count() as u64;
        let n = rs.len() as u64;
        let met = under5 as f64 >= 0.95 * n as f64;
        aim1_lines.push(format!(
            "AIM 1 ({label}): a 50 %-errors canary at 5 canary requests/s is aborted in under 5 s — {under5}/{n} = {} within 5 s, median {}, p95 {}: {}",
            pct(under5, n).trim(),
            secs(percentile(&t, 0.5)),
            secs(percentile(&t, 0.95)),
            if met { "MET" } else { "MISSED" }
        ));
    }

    // Aim 2: 2× errors from the start of the 5 % phase, caught before that phase ends.
    let two_x = |segments: Vec<(&'static str, f64)>| Scenario {
        regression: Regression::ErrorMult(2.0),
        onset: Onset::PhaseStart(1),
        stop_after_phase: Some(1),
        segments,
        ..Scenario::healthy()
    };
    let aim2 = [
        (
            9,
            "2× errors at the 5 % phase start, segment mix (canary 15 %)",
            two_x(SEGMENTS.to_vec()),
        ),
        (
            10,
            "2× errors at the 5 % phase start, standard only (canary 5 %)",
            two_x(vec![("standard", 1.0)]),
        ),
    ];
    let mut aim2_lines = Vec::new();
    for (id, label, sc) in aim2.iter().filter(|c| want(c.0)) {
        let rs = run_many(sc, seed, *id, reg_runs, threads);
        println!("{}", row(label, &rs));
        let n = rs.len() as u64;
        let caught = rs.iter().filter(|r| r.detected() && r.phase == 1).count() as u64;
        let (lo, _) = wilson(caught, n);
        let met = caught as f64 >= 0.95 * n as f64;
        aim2_lines.push(format!(
            "AIM 2 ({label}): a 2× error regression (1 % → 2 %) in the 5 % phase is caught with ≥ 95 % probability before that phase ends — {caught}/{n} = {} (95 % CI lower bound {:.1} %): {}",
            pct(caught, n).trim(),
            lo * 100.0,
            if met { "MET" } else { "MISSED" }
        ));
    }
    println!();
    for l in aim1_lines.iter().chain(&aim2_lines) {
        println!("{l}");
    }
    println!();
    println!("wall time {:.1} s", wall.elapsed().as_secs_f64());
}
