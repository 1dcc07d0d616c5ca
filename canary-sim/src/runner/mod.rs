//! Drives `dwcp_core::rollout` with simulated windows: one `Input::Window` then one `Input::Tick` per
//! simulated second, as the companion does.
//!
//! Ladder: the spec defaults without shadow (1 → 5 → 10 → 25 → 50 → 100 %), `Scenario::phase_s` per
//! phase, min requests per track 1 000 / 1 000 / 2 000 / 5 000 / 10 000.
//!
//! Every run is seeded from the master seed, the case number and the run number ([`run_seed`]), so
//! results do not depend on the number of threads.

mod fleet;
mod sink;
mod window;

use crate::traffic::dist::{poisson, Burst, LatencyTable, Normal};
use crate::traffic::{Onset, Regression, Scenario};
use dwcp_core::rollout::{Command, Input, Rollout, RolloutSpec, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sink::Sink;
use window::segment_shares;

pub use fleet::{run_fleet, STEP_MS};

/// The default ladder (1 → 5 → 10 → 25 → 50 → 100 %) without the shadow phase, `phase_s` per phase.
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
    /// The rollback's reason, as the judge wrote it (empty when not aborted).
    pub evidence: String,
    /// Telemetry batches the ledger refused (sidecar cases; must be 0).
    pub batches_refused: u64,
}

impl RunResult {
    /// A run that has not started.
    pub fn empty() -> Self {
        Self {
            aborted: false,
            succeeded: false,
            decided_ms: None,
            onset_ms: None,
            phase: 0,
            onset_phase: None,
            trigger: String::new(),
            end_ms: 0,
            evidence: String::new(),
            batches_refused: 0,
        }
    }

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

/// Simulates one rollout under `sc` with the RNG seeded by `seed`: through sidecars and the ledger
/// ([`run_fleet`]) when `sc.sidecars ≥ 1`, else from windows built here.
pub fn run(sc: &Scenario, seed: u64) -> RunResult {
    if sc.sidecars > 0 {
        return run_fleet(sc, seed);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = Normal::new();
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

    // Latency: log-normal; the regressed canary's error rate and σ from the regression.
    let (_, sigma_bad) = sc.regression.degraded(sc.error_rate, sc.sigma);

    let lat_ok = LatencyTable::new(sc.median_ms, sc.sigma);
    let lat_bad = LatencyTable::new(sc.regression.degraded_median(sc.median_ms), sigma_bad);
    let lat_slow = LatencyTable::new(sc.median_ms * sc.slow_factor, sc.sigma);
    let lat_bad_slow = LatencyTable::new(
        sc.regression.degraded_median(sc.median_ms) * sc.slow_factor,
        sigma_bad,
    );
    // Probabilities as 32-bit thresholds: one u64 draw per request for segment + canary, one for
    // error + latency.
    let thr = |p: f64| (p.clamp(0.0, 1.0) * 4_294_967_296.0) as u64;
    let cum_thr: Vec<u64> = cum.iter().map(|c| thr(*c)).collect();
    let mut share_thr: Vec<u64> = shares.iter().map(|s| thr(*s)).collect();
    // Per segment (healthy, regressed) error thresholds; a segment-only regression leaves the others.
    let err_thr: Vec<(u64, u64)> = sc
        .segments
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let base = sc
                .segment_error_rates
                .get(i)
                .copied()
                .unwrap_or(sc.error_rate);
            let hit = sc.regression_segment.is_none_or(|s| s == *name);
            let bad = if hit {
                sc.regression.degraded(base, sc.sigma).0
            } else {
                base
            };
            (thr(base), thr(bad))
        })
        .collect();
    let seg_hit: Vec<bool> = sc
        .segments
        .iter()
        .map(|(name, _)| sc.regression_segment.is_none_or(|s| s == *name))
        .collect();
    let (keyless_thr, keyless_err_thr) = (thr(sc.keyless), thr(sc.keyless_error_rate));
    let slow_thr = thr(sc.slow_share);
    let mut burst = Burst::new(&mut rng, &mut normal);
    let mut sink = Sink::new(sc);
    // Each failing client's bucket (uniform in [0, 1)); drawn once: clients are sticky.
    let failing: Vec<f64> = (0..sc.failing_clients).map(|_| rng.gen::<f64>()).collect();
    let failing_seg = sc.segments.len().saturating_sub(1);
    let mut res = RunResult {
        onset_phase,
        ..RunResult::empty()
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
            .sum::<f64>()
            * (1.0 - sc.keyless);
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
        for _ in 0..n {
            let a: u64 = rng.gen();
            let (u_seg, u_can) = (a >> 32, a & 0xFFFF_FFFF);
            let seg = cum_thr
                .iter()
                .position(|c| u_seg < *c)
                .unwrap_or(cum_thr.len() - 1);
            let b: u64 = rng.gen();
            let (u_err, u_key) = (b & 0xFFFF_FFFF, b >> 32);
            let keyless = u_key < keyless_thr;
            let canary = !keyless && u_can < share_thr[seg];
            // Arrival time within the window (ms); only drawn when the onset falls inside it.
            let bad = match bad_from {
                Some(0) => true,
                Some(from) => rng.gen_range(0..1000) >= from,
                None => false,
            };
            let hit = bad && seg_hit[seg] && (canary || sc.regression.hits_stable());
            let (ok_thr, bad_thr) = err_thr.get(seg).copied().unwrap_or((0, 0));
            let e_thr = match (keyless, canary && bad && seg_hit[seg]) {
                (true, _) => keyless_err_thr,
                (false, true) => bad_thr,
                (false, false) => ok_thr,
            };
            let error = u_err < e_thr;
            let c: u64 = rng.gen();
            let slow = slow_thr > 0 && (c & 0xFFFF_FFFF) < slow_thr;
            let lat = match (hit, slow) {
                (false, false) => &lat_ok,
                (true, false) => &lat_bad,
                (false, true) => &lat_slow,
                (true, true) => &lat_bad_slow,
            };
            let bucket = lat.sample(rng.gen());
            sink.add(seg, canary, error, bucket);
        }
        for u in &failing {
            let canary = *u < shares.get(failing_seg).copied().unwrap_or(0.0);
            for _ in 0..poisson(&mut rng, sc.failing_client_rps) {
                let bucket = lat_ok.sample(rng.gen());
                sink.add(failing_seg, canary, true, bucket);
            }
        }
        sink.flush(&mut r, sc, &shares, now);
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
            res.evidence = r
                .last_verdict
                .as_ref()
                .map(|v| v.reason.clone())
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
