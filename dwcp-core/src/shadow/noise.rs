//! Noise estimation in the style of Diffy: a second copy of the request goes to stable, and what two
//! stable answers disagree on is noise, not a regression.
//!
//! A difference between the primary and the shadow at path `p` is noise when
//! - the primary and the second stable answer of the *same* request also differ at `p`, or
//! - `p` differed between two stable answers in at least `noise_min_rate` of this worker's noise
//!   comparisons so far (a field like a millisecond timestamp differs often, but not every time).
//!
//! A mismatch is counted as noise only if every one of its differences is noise; the judge uses
//! mismatches minus noise. Memory is bounded: at most [`MAX_NOISE_PATHS`] paths per rollout per worker.

use super::{Diff, Outcome, ShadowSettings};
use std::collections::HashMap;

/// Most distinct noisy paths remembered per rollout per worker.
pub const MAX_NOISE_PATHS: usize = 256;

/// Per rollout, per worker: how often each path differed between two stable answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseModel {
    /// Noise comparisons seen (second stable answer received).
    pub compared: u64,
    /// Path → comparisons in which the two stable answers differed there.
    pub paths: HashMap<String, u64>,
}

impl NoiseModel {
    /// Learns from one stable-vs-stable comparison.
    pub fn observe(&mut self, stable_diffs: &[Diff]) {
        self.compared += 1;
        for d in stable_diffs {
            if let Some(n) = self.paths.get_mut(&d.path) {
                *n += 1;
            } else if self.paths.len() < MAX_NOISE_PATHS {
                self.paths.insert(d.path.clone(), 1);
            }
        }
    }

    /// Share of noise comparisons in which `path` differed between two stable answers.
    pub fn rate(&self, path: &str) -> f64 {
        if self.compared == 0 {
            return 0.0;
        }
        self.paths
            .get(path)
            .map_or(0.0, |n| *n as f64 / self.compared as f64)
    }

    /// Splits the differences of `o` (primary vs shadow) into regressions and noise. `stable` is the
    /// comparison of the primary with a second stable answer to the same request, when there is one.
    pub fn classify(&mut self, s: &ShadowSettings, o: &mut Outcome, stable: Option<&Outcome>) {
        if let Some(st) = stable {
            o.stable_compared = true;
            o.stable_differs = !st.kinds.is_empty();
            self.observe(&st.diffs);
        }
        if !o.mismatch() {
            return;
        }
        let same_request = |p: &str| stable.is_some_and(|st| st.diffs.iter().any(|d| d.path == p));
        let (noise, real): (Vec<Diff>, Vec<Diff>) = std::mem::take(&mut o.diffs)
            .into_iter()
            .partition(|d| same_request(&d.path) || self.rate(&d.path) >= s.noise_min_rate);
        // With the diff list cut at MAX_DIFFS, unseen differences may be real: never call it noise.
        let complete = noise.len() + real.len() < super::MAX_DIFFS;
        o.noise = complete && real.is_empty() && !noise.is_empty();
        o.noise_paths = noise.into_iter().map(|d| d.path).collect();
        o.diffs = real;
    }
}
