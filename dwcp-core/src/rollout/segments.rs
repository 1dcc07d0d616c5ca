//! Per-segment verdicts, for `status` and the API: which segments are judged at all, and how each
//! randomised segment's canary errors compare with what its assigned shares imply.
//!
//! The error test pools the segments (strata under one effect size), so a segment's line is evidence,
//! not a test of its own: `excess` when its canary errors stand 2 standard deviations or more above the
//! null (the segments an error rollback names), `ok` otherwise, `untested` when its requests are not
//! randomised now (share 0 % or 100 %, e.g. internal and beta always on canary) and none of its
//! requests was ever tested.

use super::Rollout;
use serde::{Deserialize, Serialize};

/// One segment's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentVerdict {
    pub segment: String,
    /// Canary share (bp) the filters apply now.
    pub share_bp: u32,
    /// `excess`, `ok` or `untested`.
    pub state: String,
    /// Error units in the test over the run, and the canary's.
    pub errors: u64,
    pub canary_errors: u64,
    /// The canary's errors if both versions failed alike.
    pub expected_canary_errors: f64,
    pub z: f64,
    /// Requests of the segment kept out of the tests (not randomised).
    pub untested_requests: u64,
}

/// z from which a segment's canary errors are an excess (and named by an error rollback).
pub const EXCESS_Z: f64 = 2.0;

impl Rollout {
    /// A verdict per segment of the spec (and any other segment seen), in name order.
    pub fn segment_verdicts(&self) -> Vec<SegmentVerdict> {
        let shares = self.shares();
        let mut names: Vec<&String> = self
            .spec
            .segments
            .keys()
            .chain(self.segment_errors.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let share_bp = shares.get(name).copied().unwrap_or(0);
                let e = self.segment_errors.get(name).cloned().unwrap_or_default();
                let z = e.z();
                let tested = self.segment_errors.contains_key(name);
                let state = if !tested {
                    "untested"
                } else if z >= EXCESS_Z {
                    "excess"
                } else {
                    "ok"
                };
                SegmentVerdict {
                    segment: name.clone(),
                    share_bp,
                    state: state.into(),
                    errors: e.errors,
                    canary_errors: e.canary_errors,
                    expected_canary_errors: e.expected_canary_errors,
                    z,
                    untested_requests: self.untested.by_segment.get(name).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}
