//! Per-rollout shadow counters shipped in telemetry batches, and the bounded mismatch samples sent as
//! evidence.

use super::{truncate, Answer, Diff, MismatchKind, Outcome};
use crate::histogram::Histogram;
use crate::rollout::ShadowAgg;
use serde::{Deserialize, Serialize};

/// Per-rollout shadow counters of one VM batch window; merged by addition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowStats {
    /// Copies sent to the shadow cluster.
    pub requests: u64,
    pub compared: u64,
    /// Comparisons with at least one mismatch.
    pub mismatches: u64,
    pub mismatch_status: u64,
    pub mismatch_headers: u64,
    pub mismatch_body: u64,
    /// Mismatches whose every difference is noise (two stable answers differ there too).
    pub noise: u64,
    /// Comparisons that also had a second stable answer (noise copy).
    pub noise_compared: u64,
    /// ... in which the two stable answers differed.
    pub stable_differs: u64,
    pub shadow_errors: u64,
    pub primary_errors: u64,
    /// Shadow slower than the primary by more than the tolerance.
    pub slower: u64,
    /// max(0, shadow − primary), µs.
    pub latency_delta_us: Histogram,
    pub skipped_body_too_big: u64,
    pub skipped_not_eligible: u64,
    pub skipped_in_flight: u64,
    /// The user's request ended without a response (client gone, reset): nothing to compare.
    pub skipped_primary_incomplete: u64,
    /// Side call not dispatched, reset, timed out or refused (Envoy's local 503/504).
    pub side_call_failed: u64,
    /// The second (noise) copy to stable failed or was not dispatched: that comparison has no noise
    /// estimate of its own.
    pub noise_call_failed: u64,
}

impl ShadowStats {
    pub fn record(&mut self, o: &Outcome) {
        self.compared += 1;
        self.mismatches += u64::from(o.mismatch());
        self.noise += u64::from(o.mismatch() && o.noise);
        self.noise_compared += u64::from(o.stable_compared);
        self.stable_differs += u64::from(o.stable_differs);
        self.mismatch_status += u64::from(o.kinds.contains(&MismatchKind::Status));
        self.mismatch_headers += u64::from(o.kinds.contains(&MismatchKind::Header));
        self.mismatch_body += u64::from(o.kinds.contains(&MismatchKind::Body));
        self.shadow_errors += u64::from(o.shadow_error);
        self.primary_errors += u64::from(o.primary_error);
        self.slower += u64::from(o.slower);
        self.latency_delta_us
            .record(o.latency_delta_us.max(0) as u64);
    }

    pub fn merge(&mut self, o: &ShadowStats) {
        self.requests += o.requests;
        self.compared += o.compared;
        self.mismatches += o.mismatches;
        self.mismatch_status += o.mismatch_status;
        self.mismatch_headers += o.mismatch_headers;
        self.mismatch_body += o.mismatch_body;
        self.noise += o.noise;
        self.noise_compared += o.noise_compared;
        self.stable_differs += o.stable_differs;
        self.shadow_errors += o.shadow_errors;
        self.primary_errors += o.primary_errors;
        self.slower += o.slower;
        self.latency_delta_us.merge(&o.latency_delta_us);
        self.skipped_body_too_big += o.skipped_body_too_big;
        self.skipped_not_eligible += o.skipped_not_eligible;
        self.skipped_in_flight += o.skipped_in_flight;
        self.skipped_primary_incomplete += o.skipped_primary_incomplete;
        self.side_call_failed += o.side_call_failed;
        self.noise_call_failed += o.noise_call_failed;
    }

    pub fn is_empty(&self) -> bool {
        *self == ShadowStats::default()
    }

    /// What the rollout judge consumes.
    pub fn to_agg(&self) -> ShadowAgg {
        ShadowAgg {
            compared: self.compared,
            mismatches: self.mismatches,
            noise: self.noise,
            shadow_errors: self.shadow_errors,
            primary_errors: self.primary_errors,
            slower: self.slower,
            latency_delta_us: self.latency_delta_us.clone(),
        }
    }
}

/// A mismatch kept as evidence: request line, kinds, differing paths with both values (truncated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MismatchSample {
    pub rollout: String,
    /// `GET /path?query` (path truncated).
    pub request: String,
    pub kinds: Vec<MismatchKind>,
    pub primary_status: u16,
    pub shadow_status: u16,
    pub latency_delta_ms: f64,
    /// The differences that are not noise.
    pub diffs: Vec<Diff>,
    /// Paths that also differed but are noise (two stable answers disagree there too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise_paths: Vec<String>,
}

impl MismatchSample {
    pub fn new(
        rollout: &str,
        method: &str,
        path: &str,
        p: &Answer,
        s: &Answer,
        o: &Outcome,
    ) -> Self {
        Self {
            rollout: rollout.to_string(),
            request: truncate(&format!("{method} {path}")),
            kinds: o.kinds.iter().copied().collect(),
            primary_status: p.status,
            shadow_status: s.status,
            latency_delta_ms: o.latency_delta_us as f64 / 1000.0,
            diffs: o.diffs.clone(),
            noise_paths: o.noise_paths.clone(),
        }
    }
}
