//! Noise estimation in the style of Diffy: a second copy of the request goes to stable, and what two
//! stable answers disagree on is noise, not a regression.
//!
//! A difference between the primary and the shadow at path `p` is noise when
//! - the primary and the second stable answer of the *same* request also differ at `p`, or
//! - `p` differed between two stable answers in at least `noise_min_rate` of this worker's noise
//!   comparisons so far (a field that differs often, but not every time), or
//! - `p` has differed between stable answers at all, and the shadow differs there at most
//!   `noise_min_rate` more often than stable does (Diffy's "raw minus noise" rule: a millisecond
//!   timestamp that now and then ticks over between two answers).
//!
//! A path that never differed between two stable answers is never noise. A mismatch is counted as noise
//! only if every one of its differences is noise; the judge uses mismatches minus noise. Memory is
//! bounded: at most [`MAX_NOISE_PATHS`] paths per rollout per worker, in each of the two tables.

use super::{Diff, Outcome, ShadowSettings};
use std::collections::HashMap;

/// Most distinct paths remembered per rollout per worker (per table).
pub const MAX_NOISE_PATHS: usize = 256;

/// Per rollout, per worker: how often each path differed between two stable answers, and between the
/// primary and the shadow, over the comparisons that had a second stable answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseModel {
    /// Noise comparisons seen (second stable answer received).
    pub compared: u64,
    /// Path → comparisons in which the two stable answers differed there.
    pub paths: HashMap<String, u64>,
    /// Path → comparisons (with a second stable answer) in which the primary and the shadow differed.
    pub raw: HashMap<String, u64>,
}

fn bump(m: &mut HashMap<String, u64>, path: &str) {
    if let Some(n) = m.get_mut(path) {
        *n += 1;
    } else if m.len() < MAX_NOISE_PATHS {
        m.insert(path.to_string(), 1);
    }
}

impl NoiseModel {
    /// Learns from one stable-vs-stable comparison.
    pub fn observe(&mut self, stable_diffs: &[Diff]) {
        self.compared += 1;
        for d in stable_diffs {
            bump(&mut self.paths, &d.path);
        }
    }

    /// Share of noise comparisons in which `path` differed between two stable answers.
    pub fn rate(&self, path: &str) -> f64 {
        self.share(&self.paths, path)
    }

    /// Share of noise comparisons in which `path` differed between the primary and the shadow.
    pub fn raw_rate(&self, path: &str) -> f64 {
        self.share(&self.raw, path)
    }

    fn share(&self, m: &HashMap<String, u64>, path: &str) -> f64 {
        if self.compared == 0 {
            return 0.0;
        }
        m.get(path)
            .map_or(0.0, |n| *n as f64 / self.compared as f64)
    }

    /// Whether a difference at `path` is noise by the learned rates (not counting the same request).
    pub fn noisy(&self, s: &ShadowSettings, path: &str) -> bool {
        let noise = self.rate(path);
        noise >= s.noise_min_rate
            || (self.paths.contains_key(path) && self.raw_rate(path) - noise <= s.noise_min_rate)
    }

    /// Splits the differences of `o` (primary vs shadow) into regressions and noise. `stable` is the
    /// comparison of the primary with a second stable answer to the same request, when there is one.
    pub fn classify(&mut self, s: &ShadowSettings, o: &mut Outcome, stable: Option<&Outcome>) {
        if let Some(st) = stable {
            o.stable_compared = true;
            o.stable_differs = !st.kinds.is_empty();
            self.observe(&st.diffs);
            for d in &o.diffs {
                bump(&mut self.raw, &d.path);
            }
        }
        if !o.mismatch() {
            return;
        }
        let same_request = |p: &str| stable.is_some_and(|st| st.diffs.iter().any(|d| d.path == p));
        let (noise, real): (Vec<Diff>, Vec<Diff>) = std::mem::take(&mut o.diffs)
            .into_iter()
            .partition(|d| same_request(&d.path) || self.noisy(s, &d.path));
        // With the diff list cut at MAX_DIFFS, unseen differences may be real: never call it noise.
        let complete = noise.len() + real.len() < super::MAX_DIFFS;
        o.noise = complete && real.is_empty() && !noise.is_empty();
        o.noise_paths = noise.into_iter().map(|d| d.path).collect();
        o.diffs = real;
    }
}
