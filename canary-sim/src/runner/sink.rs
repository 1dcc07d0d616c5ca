//! Where a simulated second's requests go: straight into a window the runner builds (the fast path of
//! the original cases), or through the product's own ingest path — per-sidecar
//! `dwcp_core::telemetry::Accumulator`s cut into `Batch`es and fed to a real `dwcp_core::ledger::Ledger`,
//! which merges them into time slices, credits them to the state version they were routed under and
//! steps the rollout exactly as the companion does.

use super::window::TrackScratch;
use crate::traffic::Scenario;
use dwcp_core::decision::Track;
use dwcp_core::histogram::value_of;
use dwcp_core::ledger::{reconcile, Definition, Ledger};
use dwcp_core::rollout::{Input, Rollout, SegmentWindow, Window};
use dwcp_core::telemetry::Accumulator;
use std::collections::BTreeMap;

/// The rollout's name inside the ledger.
const NAME: &str = "sim";

pub(crate) enum Sink {
    /// Per segment (stable, canary) scratch; keyless requests count as stable requests of their
    /// segment (a window built here has no notion of "not bucketed": use sidecars for keyless cases).
    Direct(Vec<(TrackScratch, TrackScratch)>),
    Ledger(Box<Fleet>),
}

pub(crate) struct Fleet {
    ledger: Ledger,
    sidecars: Vec<Accumulator>,
    seq: Vec<u64>,
    mark_keyless: bool,
    /// Batches the ledger refused (a bug of the simulation if ever > 0; the smoke test checks).
    pub(crate) refused: u64,
}

impl Sink {
    /// Batches refused by the ledger so far (always 0 for direct windows).
    pub(crate) fn refused(&self) -> u64 {
        match self {
            Sink::Direct(_) => 0,
            Sink::Ledger(f) => f.refused,
        }
    }

    pub(crate) fn new(sc: &Scenario, r: &Rollout) -> Self {
        if sc.sidecars == 0 {
            return Sink::Direct(
                sc.segments
                    .iter()
                    .map(|_| (TrackScratch::new(), TrackScratch::new()))
                    .collect(),
            );
        }
        let mut spec = r.spec.clone();
        spec.name = NAME.to_string();
        let defs = [Definition {
            spec,
            autostart: true,
        }];
        let (rollouts, _) = reconcile(BTreeMap::new(), &defs, 0);
        let ledger = Ledger::new(rollouts, 1, false, 60_000);
        let segments: Vec<String> = sc.segments.iter().map(|(s, _)| s.to_string()).collect();
        let n = sc.sidecars as usize;
        Sink::Ledger(Box::new(Fleet {
            ledger,
            sidecars: (0..n)
                .map(|_| Accumulator::new(vec![NAME.to_string()], segments.clone()))
                .collect(),
            seq: vec![0; n],
            mark_keyless: sc.mark_keyless,
            refused: 0,
        }))
    }

    /// One request of segment `seg` from the user bucket `unit` (0..10 000, canary exactly when below
    /// the segment's share); `bucket` is its latency bucket; `draw` picks the sidecar that served it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn add(
        &mut self,
        seg: usize,
        canary: bool,
        bucketed: bool,
        error: bool,
        bucket: usize,
        unit: u32,
        draw: u64,
    ) {
        match self {
            Sink::Direct(scratch) => {
                if let Some((st, ca)) = scratch.get_mut(seg) {
                    if canary {
                        ca.add(bucket, error);
                    } else {
                        st.add(bucket, error);
                    }
                }
            }
            Sink::Ledger(f) => {
                let i = (draw % f.sidecars.len() as u64) as usize;
                let track = if canary { Track::Canary } else { Track::Stable };
                let unit = if bucketed {
                    Some(unit)
                } else {
                    // Filters before the mark counted keyless requests as bucketed; they had no
                    // bucket, so each is its own unit.
                    (!f.mark_keyless).then_some(10_000 + (draw >> 40) as u32)
                };
                let us = value_of(bucket as i32).round() as u64;
                f.sidecars[i].record(0, track, seg, unit, error, us);
            }
        }
    }

    /// Ends the second at `now`: the window (direct) or every sidecar's batch (ledger) reaches the
    /// rollout `r`. Returns whether the rollout was also ticked (the ledger ticks; direct does not).
    pub(crate) fn flush(
        &mut self,
        r: &mut Rollout,
        sc: &Scenario,
        shares: &[f64],
        now: u64,
    ) -> bool {
        match self {
            Sink::Direct(scratch) => {
                let mut w = Window {
                    current_phase: true,
                    ..Default::default()
                };
                for (((name, _), (st, ca)), sh) in sc.segments.iter().zip(scratch).zip(shares) {
                    let sw = SegmentWindow {
                        error_units: None,
                        share_bp: (sh * 10_000.0).round() as u32,
                        stable: st.take(),
                        canary: ca.take(),
                    };
                    w.expected_canary += (sw.stable.requests + sw.canary.requests) as f64 * sh;
                    w.stable.merge(&sw.stable);
                    w.canary.merge(&sw.canary);
                    w.segments.insert(name.to_string(), sw);
                }
                r.step(Input::Window(w), now);
                false
            }
            Sink::Ledger(f) => {
                // The ledger's rollout and the runner's are swapped in for the second and back out.
                let Some(slot) = f.ledger.rollouts.get_mut(NAME) else {
                    return false;
                };
                std::mem::swap(slot, r);
                let version = f.ledger.version;
                for (i, acc) in f.sidecars.iter_mut().enumerate() {
                    let b = acc.take_batch(&format!("sidecar-{i}"), f.seq[i] + 1, version, now);
                    if b.cells.is_empty() {
                        continue;
                    }
                    f.seq[i] += 1;
                    if f.ledger.ingest(b, now).is_err() {
                        f.refused += 1;
                    }
                }
                f.ledger.tick(now);
                if let Some(slot) = f.ledger.rollouts.get_mut(NAME) {
                    std::mem::swap(slot, r);
                }
                true
            }
        }
    }
}
