//! A mergeable, log-bucketed latency histogram (DDSketch-style) with bounded relative error.
//!
//! A value `v ≥ 1` (microseconds) goes to bucket `i = ceil(ln v / ln γ)` with `γ = 1.02`; the bucket is
//! reported by its geometric midpoint, so any quantile is within `(γ−1)/(γ+1) ≈ 1 %` of a true sample value
//! (the spec allows 2 %). Buckets are plain counts keyed by index, so `merge` is addition: associative and
//! commutative, which lets per-VM histograms be merged by the companion in any order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Growth factor between bucket bounds.
pub const GAMMA: f64 = 1.02;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations of 0 µs.
    #[serde(default)]
    pub zero: u64,
    /// Bucket index → count.
    #[serde(default)]
    pub buckets: BTreeMap<i32, u64>,
    #[serde(default)]
    pub count: u64,
    /// Sum of recorded values (µs), for the mean.
    #[serde(default)]
    pub sum: u64,
}

/// Index of the bucket holding `v` (v ≥ 1).
pub fn index_of(v: u64) -> i32 {
    ((v as f64).ln() / GAMMA.ln()).ceil() as i32
}

/// Representative value of bucket `i`: the geometric midpoint of `(γ^(i−1), γ^i]`.
pub fn value_of(i: i32) -> f64 {
    GAMMA.powi(i) * 2.0 / (1.0 + GAMMA)
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        if v == 0 {
            self.zero += n;
        } else {
            *self.buckets.entry(index_of(v)).or_insert(0) += n;
        }
        self.count += n;
        self.sum = self.sum.saturating_add(v.saturating_mul(n));
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        self.zero += other.zero;
        for (i, c) in &other.buckets {
            *self.buckets.entry(*i).or_insert(0) += c;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in µs, or `None` when empty. Rank is `ceil(q·n)` (lower quantile).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        if rank <= self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (i, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(value_of(*i));
            }
        }
        self.buckets.keys().next_back().map(|i| value_of(*i))
    }

    /// Number of observations strictly above `threshold` µs, counting a bucket as above when its whole
    /// range is above (a conservative count: never inflates "slow").
    pub fn count_above(&self, threshold: f64) -> u64 {
        // Buckets are ordered and the bound grows with the index: walk down from the top (the judge
        // asks for the few buckets above a tail threshold every window).
        self.buckets
            .iter()
            .rev()
            .take_while(|(i, _)| GAMMA.powi(**i - 1) >= threshold)
            .map(|(_, c)| *c)
            .sum()
    }

    /// Number of observations at or below `le` µs (bucket upper bound ≤ le), for Prometheus-style
    /// cumulative buckets.
    pub fn count_le(&self, le: f64) -> u64 {
        self.zero
            + self
                .buckets
                .iter()
                .filter(|(i, _)| GAMMA.powi(**i) <= le)
                .map(|(_, c)| *c)
                .sum::<u64>()
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

#[cfg(test)]
mod tests;
