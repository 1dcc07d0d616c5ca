//! Feeding a window into the rollout's sequential tests: which requests may be tested, and at which
//! null share.
//!
//! The tests' null ("an error / slow request / request is the canary's with probability `s`") is exact
//! only for randomised requests at the share they were assigned. So, when the window is split by
//! segment, each segment whose assigned share is strictly between 0 and 100 % is one stratum with that
//! share, and the strata of a window are combined under one shared effect size
//! ([`crate::stats::ErrorTest::observe_strata`]); segments at 0 % or 100 % (shadow phase, internal/beta always on
//! canary, kill switch) are counted in [`Untested`] and never judged, as are requests the filters did not
//! bucket at all (no key, bad header, stale state: `Window::unbucketed`). A segment with a higher base error
//! rate on both versions then cannot look like a canary regression. Windows without a segment split
//! (older callers) use the window's pooled share.

use super::{Rollout, SegmentWindow, TrackAgg, Window};

/// `(canary, stable, share)` strata of one window, from `f(track)` counts.
fn strata(
    parts: &[(&TrackAgg, &TrackAgg, f64)],
    f: impl Fn(&TrackAgg) -> u64,
) -> Vec<(u64, u64, f64)> {
    parts.iter().map(|(c, s, sh)| (f(c), f(s), *sh)).collect()
}

impl Rollout {
    pub(super) fn observe_tests(&mut self, w: &Window) {
        self.untested.merge(&w.unbucketed);
        let mut parts: Vec<(&TrackAgg, &TrackAgg, f64)> = Vec::new();
        // The error test's strata: errors by user bucket once per phase where the filters list them.
        let mut error_strata: Vec<(u64, u64, f64)> = Vec::new();
        if w.segments.is_empty() {
            let total = w.stable.requests + w.canary.requests;
            if total > 0 {
                let share = w.canary.requests as f64 / total as f64;
                parts.push((&w.canary, &w.stable, share));
                error_strata.push((w.canary.errors, w.stable.errors, share));
            }
        } else {
            for (name, sw) in &w.segments {
                let SegmentWindow {
                    share_bp,
                    stable,
                    canary,
                    ..
                } = sw;
                if *share_bp == 0 || *share_bp >= 10_000 {
                    self.untested.add(
                        name,
                        stable.requests + canary.requests,
                        stable.errors + canary.errors,
                    );
                } else {
                    let share = f64::from(*share_bp) / 10_000.0;
                    parts.push((canary, stable, share));
                    let [se, ce] = sw.test_errors();
                    error_strata.push((ce, se, share));
                    let n = (ce + se) as f64;
                    let e = self.segment_errors.entry(name.clone()).or_default();
                    e.errors += ce + se;
                    e.canary_errors += ce;
                    e.expected_canary_errors += n * share;
                    e.variance += n * share * (1.0 - share);
                }
            }
        }
        self.error_test.observe_strata(&error_strata);
        // Throughput: requests against the assigned share. Pooled windows use the filters' expected count.
        if w.segments.is_empty() {
            let total = w.stable.requests + w.canary.requests;
            if total > 0 {
                let s = w.expected_canary / total as f64;
                self.throughput_test
                    .observe(w.canary.requests, w.stable.requests, s);
            }
        } else {
            self.throughput_test
                .observe_strata(&strata(&parts, |t| t.requests));
        }
        // Latency: requests of both tracks slower than past stable p99 × tolerance (the reference
        // *before* this window), once the reference is trusted, fed to the "whose is it?" test.
        let g = self.guardrails();
        if self.stable_reference.count < g.min_stable_for_p99 {
            return;
        }
        let Some(p99) = self.stable_reference.quantile(0.99) else {
            return;
        };
        let bound = (p99 * g.latency_tolerance).max(p99 + g.latency_floor_ms * 1000.0);
        let slow: Vec<(u64, u64, f64)> = if w.segments.is_empty() {
            let (cl, sl) = (&w.canary.latency_us, &w.stable.latency_us);
            let n = cl.count + sl.count;
            if n == 0 {
                return;
            }
            vec![(
                cl.count_above(bound),
                sl.count_above(bound),
                cl.count as f64 / n as f64,
            )]
        } else {
            // Null share: the stratum's realised request share, not the assigned one. Users, not
            // requests, are randomised: a heavy user on canary moves the request share far from the
            // assigned one. Given which requests each track served, and latency that does not depend
            // on the version, the slice's slow requests are a uniformly random subset of its requests,
            // so each is canary with probability `n_c / n` (a hypergeometric count, dominated in
            // convex order by the binomial the likelihood ratio assumes: still a supermartingale).
            parts
                .iter()
                .map(|(c, st, _)| {
                    let n = c.requests + st.requests;
                    let share = if n > 0 {
                        c.requests as f64 / n as f64
                    } else {
                        0.0
                    };
                    (
                        c.latency_us.count_above(bound),
                        st.latency_us.count_above(bound),
                        share,
                    )
                })
                .collect()
        };
        self.latency_test.observe_strata(&slow);
    }
}
