//! One simulated second of traffic, accumulated into the `Window` the companion would send.

use crate::traffic::dist::MAX_BUCKET;
use dwcp_core::histogram::{value_of, Buckets, Histogram};
use dwcp_core::rollout::{Rollout, TrackAgg};

/// One track's window, accumulated per request into bucket counts (the core's log buckets).
pub(crate) struct TrackScratch {
    counts: Vec<u64>,
    lo: usize,
    hi: usize,
    requests: u64,
    errors: u64,
}

impl TrackScratch {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; MAX_BUCKET],
            lo: MAX_BUCKET,
            hi: 0,
            requests: 0,
            errors: 0,
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, bucket: usize, error: bool) {
        self.counts[bucket] += 1;
        self.lo = self.lo.min(bucket);
        self.hi = self.hi.max(bucket);
        self.requests += 1;
        self.errors += u64::from(error);
    }

    /// The window's `TrackAgg`; resets the scratch.
    pub(crate) fn take(&mut self) -> TrackAgg {
        let mut h = Histogram::new();
        if self.requests > 0 {
            let mut sum = 0.0;
            let buckets: Buckets = self.counts[self.lo..=self.hi]
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
pub(crate) fn segment_shares(r: &Rollout, segments: &[(&'static str, f64)]) -> Vec<f64> {
    let shares = r.shares();
    segments
        .iter()
        .map(|(s, _)| f64::from(shares.get(*s).copied().unwrap_or(0)) / 10_000.0)
        .collect()
}
