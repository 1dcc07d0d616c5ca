//! Production traffic through the product's own ingest path, in 250 ms steps: users (Zipf request
//! counts, sticky segment and bucket) send requests to sidecars; each sidecar reports at its own cadence
//! (its own offset on a 250 ms grid, a share of slow reporters) with a real `dwcp_core::telemetry::Accumulator` cut into
//! a `Batch`; a real `dwcp_core::ledger::Ledger` validates, credits, slices and judges them and ticks
//! every second as the companion does. A sidecar routes with the state it last fetched, adopted when it
//! reports, so requests after a promotion are routed (and credited) with the old shares until then.
//!
//! Speed without changing what the ledger sees: sidecars whose reports fall on the same 250 ms instant
//! (the same offset and period) are one *report group* with one accumulator: the ledger merges
//! batches of one instant into the same slice anyway, so the group's batch is their sum. A run
//! therefore costs the same for 10 or 1 000 sidecars; what differs is how requests spread over report
//! instants (few sidecars: few instants).

use super::RunResult;
use crate::traffic::dist::{poisson, Burst, LatencyTable, Normal, MAX_BUCKET};
use crate::traffic::users::Population;
use crate::traffic::{Onset, Regression, Scenario};
use dwcp_core::decision::Track;
use dwcp_core::histogram::value_of;
use dwcp_core::ledger::{reconcile, Definition, Ledger};
use dwcp_core::rollout::{Rollout, Status};
use dwcp_core::telemetry::Accumulator;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The rollout's name inside the ledger.
const NAME: &str = "sim";
/// Simulation step and report grid, ms.
pub const STEP_MS: u64 = 250;
/// The companion's tick (default `tick_ms`).
const TICK_MS: u64 = 1_000;
/// Report period of the slow reporters, ms.
const SLOW_SYNC_MS: u64 = 5_000;

/// Sidecars reporting at the same instants, with the state they last fetched.
struct Group {
    period_ms: u64,
    offset_ms: u64,
    acc: Accumulator,
    seq: u64,
    vm: String,
    version: u64,
    /// Canary share (bp) per segment of the adopted state.
    share_bp: Vec<u32>,
}

fn shares_bp(r: &Rollout, segments: &[(&'static str, f64)]) -> Vec<u32> {
    let s = r.shares();
    segments
        .iter()
        .map(|(n, _)| s.get(*n).copied().unwrap_or(0))
        .collect()
}

/// Simulates one rollout of `sc` (with `sc.sidecars ≥ 1`) seeded by `seed`.
pub fn run_fleet(sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = Normal::new();
    let mut spec = super::sim_spec(sc.phase_s);
    spec.name = NAME.to_string();
    let live_phases = spec.phases.len().saturating_sub(1).max(1);
    let defs = [Definition {
        spec,
        autostart: true,
    }];
    let (rollouts, _) = reconcile(BTreeMap::new(), &defs, 0);
    let mut ledger = Ledger::new(rollouts, 1, false, 60_000);
    let rollout = |l: &Ledger| l.rollouts.get(NAME).cloned();
    let Some(r0) = rollout(&ledger) else {
        return RunResult::empty();
    };

    let phase_ms = sc.phase_s * 1000;
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
    let mut onset_ms = (onset_phase == Some(0)).then_some(onset_offset_ms);

    let total_w: f64 = sc.segments.iter().map(|s| s.1).sum();
    let seg_cum: Vec<f64> = sc
        .segments
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s.1 / total_w;
            Some(*acc)
        })
        .collect();
    let seg_names: Vec<String> = sc.segments.iter().map(|(s, _)| s.to_string()).collect();
    let users = (sc.users > 0).then(|| {
        Population::new(
            &mut rng,
            sc.users as usize,
            sc.zipf_exponent,
            &seg_cum,
            sc.failing_clients as usize,
            sc.failing_pool as usize,
        )
    });

    // Report groups: each sidecar's period and offset on the 250 ms grid.
    let mut group_key: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: Vec<u16> = Vec::with_capacity(sc.sidecars as usize);
    let shares0 = shares_bp(&r0, &sc.segments);
    for _ in 0..sc.sidecars.max(1) {
        let period = if rng.gen::<f64>() < sc.slow_sidecars {
            SLOW_SYNC_MS
        } else {
            sc.sync_ms.max(STEP_MS) / STEP_MS * STEP_MS
        };
        let offset = rng.gen_range(0..period / STEP_MS) * STEP_MS;
        let g = *group_key.entry((period, offset)).or_insert_with(|| {
            groups.push(Group {
                period_ms: period,
                offset_ms: offset,
                acc: Accumulator::new(vec![NAME.to_string()], seg_names.clone()),
                seq: 0,
                vm: format!("group-{}", groups.len()),
                version: ledger.version,
                share_bp: shares0.clone(),
            });
            groups.len() - 1
        });
        group_of.push(g as u16);
    }

    let (_, sigma_bad) = sc.regression.degraded(sc.error_rate, sc.sigma);
    let lat_ok = LatencyTable::new(sc.median_ms, sc.sigma);
    let lat_bad = LatencyTable::new(sc.regression.degraded_median(sc.median_ms), sigma_bad);
    let lat_slow = LatencyTable::new(sc.median_ms * sc.slow_factor, sc.sigma);
    let lat_bad_slow = LatencyTable::new(
        sc.regression.degraded_median(sc.median_ms) * sc.slow_factor,
        sigma_bad,
    );
    let err_p: Vec<(f64, f64, bool)> = sc
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
            (base, bad, hit)
        })
        .collect();
    // A latency bucket's recorded value (µs), computed once per run instead of per request.
    let us_of: Vec<u64> = (0..MAX_BUCKET)
        .map(|b| value_of(b as i32).round() as u64)
        .collect();
    let mut burst = Burst::new(&mut rng, &mut normal);
    let mut burst_factor = 1.0;
    // Without a population: the old model's failing clients (standard, own bucket, at a fixed rate).
    let failing: Vec<u32> = if users.is_none() {
        (0..sc.failing_clients)
            .map(|_| rng.gen_range(0..10_000))
            .collect()
    } else {
        Vec::new()
    };
    let failing_seg = sc.segments.len().saturating_sub(1);

    let mut res = RunResult::empty();
    res.onset_phase = onset_phase;
    let mut phase = r0.phase;
    let mut canary_share = mix_share(sc, &shares0, total_w);
    let mut now;
    let mut step: u64 = 0;
    'run: loop {
        step += 1;
        now = step * STEP_MS;
        let t0 = now - STEP_MS;
        if now > sc.max_s * 1000 {
            break;
        }
        if let (Some(o), Some(m)) = (onset_ms, sc.max_after_onset_s) {
            if t0 >= o + m * 1000 {
                break;
            }
        }
        if t0.is_multiple_of(1000) && sc.bursty {
            burst_factor = burst.next(&mut rng, &mut normal);
        }
        let mean_rate = match sc.canary_rps {
            Some(c) if canary_share > 0.0 => c / canary_share,
            _ => sc.base_rps,
        };
        let n = poisson(&mut rng, mean_rate * burst_factor * STEP_MS as f64 / 1000.0);
        let bad_from = onset_ms.filter(|o| *o < now);
        for _ in 0..n {
            let keyless = rng.gen::<f64>() < sc.keyless;
            let (seg, bucket, fails) = match (&users, keyless) {
                (Some(p), false) => p.user(p.pick(rng.gen())),
                _ => {
                    let u: f64 = rng.gen();
                    let seg = seg_cum.iter().position(|c| u < *c).unwrap_or(failing_seg);
                    (seg, rng.gen_range(0..10_000), false)
                }
            };
            let g = usize::from(group_of[rng.gen_range(0..group_of.len())]);
            let canary = !keyless && bucket < groups[g].share_bp[seg];
            let bad = bad_from.is_some_and(|o| o <= t0 || rng.gen_range(t0..now) >= o);
            let (base, worse, hit_seg) = err_p[seg];
            let p_err = match (keyless, canary && bad && hit_seg) {
                (true, _) => sc.keyless_error_rate,
                (false, true) => worse,
                (false, false) => base,
            };
            let error = fails || rng.gen::<f64>() < p_err;
            let slow = sc.slow_share > 0.0 && rng.gen::<f64>() < sc.slow_share;
            let hit = bad && hit_seg && (canary || sc.regression.hits_stable());
            let lat = match (hit, slow) {
                (false, false) => &lat_ok,
                (true, false) => &lat_bad,
                (false, true) => &lat_slow,
                (true, true) => &lat_bad_slow,
            };
            let us = us_of[lat.sample(rng.gen())];
            let track = if canary { Track::Canary } else { Track::Stable };
            let unit = match (keyless, sc.mark_keyless) {
                (false, _) => Some(bucket),
                (true, true) => None,
                // Filters before the mark counted keyless requests as bucketed; they had no bucket,
                // so each is its own unit.
                (true, false) => Some(10_000 + rng.gen_range(0..1u32 << 20)),
            };
            groups[g].acc.record(0, track, seg, unit, error, us);
        }
        for b in &failing {
            let n = poisson(&mut rng, sc.failing_client_rps * STEP_MS as f64 / 1000.0);
            for _ in 0..n {
                let g = usize::from(group_of[rng.gen_range(0..group_of.len())]);
                let canary = *b < groups[g].share_bp[failing_seg];
                let track = if canary { Track::Canary } else { Track::Stable };
                let us = us_of[lat_ok.sample(rng.gen())];
                groups[g]
                    .acc
                    .record(0, track, failing_seg, Some(*b), true, us);
            }
        }
        // Reports due at `now`, then the companion's tick.
        for g in groups.iter_mut() {
            if now % g.period_ms != g.offset_ms {
                continue;
            }
            let b = g.acc.take_batch(&g.vm, g.seq + 1, g.version, now);
            if !b.cells.is_empty() {
                g.seq += 1;
                if ledger.ingest(b, now).is_err() {
                    res.batches_refused += 1;
                }
            }
            // The sidecar fetches the state it routes with from now on.
            if let Some(r) = ledger.rollouts.get(NAME) {
                g.version = ledger.version;
                g.share_bp = shares_bp(r, &sc.segments);
            }
        }
        if now.is_multiple_of(TICK_MS) {
            ledger.tick(now);
        }
        let Some(r) = ledger.rollouts.get(NAME) else {
            break;
        };
        if r.status == Status::RolledBack {
            res.aborted = true;
            res.decided_ms = r.decided_at_ms;
            if let Some(v) = &r.last_verdict {
                res.trigger = v.trigger.clone();
                res.evidence = v.reason.clone();
            }
            res.phase = r.phase;
            break 'run;
        }
        if r.phase != phase {
            if sc.stop_after_phase == Some(phase) {
                res.phase = r.phase;
                break;
            }
            phase = r.phase;
            canary_share = mix_share(sc, &shares_bp(r, &sc.segments), total_w);
            if onset_ms.is_none() && onset_phase == Some(phase) {
                onset_ms = Some(r.phase_started_ms + onset_offset_ms);
            }
        }
        res.phase = r.phase;
        if r.status == Status::Succeeded {
            res.succeeded = true;
            break;
        }
    }
    res.onset_ms = onset_ms.filter(|o| *o < now);
    res.end_ms = now;
    res
}

/// The canary's share of all requests (keyless ones on stable) at these segment shares.
fn mix_share(sc: &Scenario, share_bp: &[u32], total_w: f64) -> f64 {
    sc.segments
        .iter()
        .zip(share_bp)
        .map(|(s, b)| s.1 / total_w * f64::from(*b) / 10_000.0)
        .sum::<f64>()
        * (1.0 - sc.keyless)
}
