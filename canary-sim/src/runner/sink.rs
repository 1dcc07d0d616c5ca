//! Where a simulated second's requests go when the runner builds each second's window itself (the fast
//! path of the original cases; sidecar cases go through the ledger in [`super::fleet`]).

use super::window::TrackScratch;
use crate::traffic::Scenario;
use dwcp_core::rollout::{Input, Rollout, SegmentWindow, Window};

/// Per segment (stable, canary) scratch; keyless requests count as stable requests of their segment (a
/// window built here has no notion of "not bucketed": use sidecars for keyless cases).
pub(crate) struct Sink(Vec<(TrackScratch, TrackScratch)>);

impl Sink {
    pub(crate) fn new(sc: &Scenario) -> Self {
        Sink(
            sc.segments
                .iter()
                .map(|_| (TrackScratch::new(), TrackScratch::new()))
                .collect(),
        )
    }

    /// One request of segment `seg`; `bucket` is its latency bucket.
    #[inline]
    pub(crate) fn add(&mut self, seg: usize, canary: bool, error: bool, bucket: usize) {
        if let Some((st, ca)) = self.0.get_mut(seg) {
            if canary {
                ca.add(bucket, error);
            } else {
                st.add(bucket, error);
            }
        }
    }

    /// Ends the second at `now`: the window reaches the rollout `r`.
    pub(crate) fn flush(&mut self, r: &mut Rollout, sc: &Scenario, shares: &[f64], now: u64) {
        let mut w = Window {
            current_phase: true,
            ..Default::default()
        };
        for (((name, _), (st, ca)), sh) in sc.segments.iter().zip(&mut self.0).zip(shares) {
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
    }
}
