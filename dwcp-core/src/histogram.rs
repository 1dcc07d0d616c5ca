//! A mergeable, log-bucketed latency histogram (DDSketch-style) with bounded relative error.
//!
//! A value `v ≥ 1` (microseconds) goes to bucket `i = ceil(ln v / ln γ)` with `γ = 1.02`; the bucket is
//! reported by its geometric midpoint, so any quantile is within `(γ−1)/(γ+1) ≈ 1 %` of a true sample value
//! (the spec allows 2 %). Buckets are plain counts keyed by index, so `merge` is addition: associative and
//! commutative, which lets per-VM histograms be merged by the companion in any order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
    pub buckets: Buckets,
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
            self.buckets.add(index_of(v), n);
        }
        self.count += n;
        self.sum = self.sum.saturating_add(v.saturating_mul(n));
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        self.zero += other.zero;
        self.buckets.merge(&other.buckets);
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
        for (i, c) in self.buckets.iter() {
            seen += c;
            if seen >= rank {
                return Some(value_of(i));
            }
        }
        self.buckets.iter().next_back().map(|(i, _)| value_of(i))
    }

    /// Number of observations strictly above `threshold` µs, counting a bucket as above when its whole
    /// range is above (a conservative count: never inflates "slow").
    pub fn count_above(&self, threshold: f64) -> u64 {
        // Buckets are ordered and the bound grows with the index: walk down from the top (the judge
        // asks for the few buckets above a tail threshold every window).
        self.buckets
            .iter()
            .rev()
            .take_while(|(i, _)| GAMMA.powi(*i - 1) >= threshold)
            .map(|(_, c)| c)
            .sum()
    }

    /// Number of observations at or below `le` µs (bucket upper bound ≤ le), for Prometheus-style
    /// cumulative buckets.
    pub fn count_le(&self, le: f64) -> u64 {
        self.zero
            + self
                .buckets
                .iter()
                .filter(|(i, _)| GAMMA.powi(*i) <= le)
                .map(|(_, c)| c)
                .sum::<u64>()
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// A histogram's bucket counts: (index, count) pairs sorted by index, each index once, no zero
/// counts from recording (a decoded batch may carry them; they are kept, as the map kept them).
///
/// A sorted vector rather than a `BTreeMap`: a request's `record` is a binary search over the few
/// dozen buckets a latency distribution occupies (an insert only for a value in a new bucket), and
/// `merge` — which the companion does for every cell of every batch and window — is one linear pass
/// with no allocation once the buckets exist. On the wire it is the same JSON object as the map was
/// (`{"310": 4, …}`), so filters and companions of either representation read each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets(Vec<(i32, u64)>);

impl Buckets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to bucket `i`.
    #[inline]
    pub fn add(&mut self, i: i32, n: u64) {
        match self.0.binary_search_by_key(&i, |e| e.0) {
            Ok(at) => self.0[at].1 += n,
            Err(at) => self.0.insert(at, (i, n)),
        }
    }

    /// Sets bucket `i` to `n` (as `BTreeMap::insert`).
    pub fn insert(&mut self, i: i32, n: u64) {
        match self.0.binary_search_by_key(&i, |e| e.0) {
            Ok(at) => self.0[at].1 = n,
            Err(at) => self.0.insert(at, (i, n)),
        }
    }

    pub fn get(&self, i: i32) -> Option<u64> {
        self.0
            .binary_search_by_key(&i, |e| e.0)
            .ok()
            .map(|at| self.0[at].1)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (index, count) in increasing index order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + ExactSizeIterator + '_ {
        self.0.iter().copied()
    }

    /// Counts in increasing index order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.0.iter().map(|e| e.1)
    }

    /// Adds every count of `other`: in place when `other`'s indices are all present already (the
    /// common case once a histogram has seen a distribution), else one merge of the two sorted runs.
    pub fn merge(&mut self, other: &Buckets) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        let mut at = 0;
        let all_present = other.0.iter().all(|(i, _)| {
            while at < self.0.len() && self.0[at].0 < *i {
                at += 1;
            }
            at < self.0.len() && self.0[at].0 == *i
        });
        if all_present {
            let mut at = 0;
            for (i, c) in &other.0 {
                while self.0[at].0 < *i {
                    at += 1;
                }
                self.0[at].1 += c;
            }
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0, x.1 + y.1));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    out.push(**x);
                    a.next();
                }
                (Some(_), Some(y)) => {
                    out.push(**y);
                    b.next();
                }
                (Some(x), None) => {
                    out.push(**x);
                    a.next();
                }
                (None, Some(y)) => {
                    out.push(**y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.0 = out;
    }
}

impl FromIterator<(i32, u64)> for Buckets {
    /// From (index, count) pairs in any order; a repeated index keeps the last count (as a map).
    fn from_iter<T: IntoIterator<Item = (i32, u64)>>(iter: T) -> Self {
        let map: BTreeMap<i32, u64> = iter.into_iter().collect();
        Self(map.into_iter().collect())
    }
}

impl Serialize for Buckets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(i, c)| (i, c)))
    }
}

impl<'de> Deserialize<'de> for Buckets {
    /// Exactly what the map accepted (a repeated key keeps the last value), read straight into the
    /// vector: the companion decodes one per cell of every batch, and the encoder writes them sorted.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Buckets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of bucket index to count")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Buckets, A::Error> {
                let mut v: Vec<(i32, u64)> =
                    Vec::with_capacity(m.size_hint().unwrap_or(0).min(4096));
                while let Some(e) = m.next_entry::<i32, u64>()? {
                    v.push(e);
                }
                if v.windows(2).all(|w| w[0].0 < w[1].0) {
                    return Ok(Buckets(v));
                }
                // Out of order or repeated: a stable sort keeps input order among equal indices,
                // so the last of them is the value kept.
                v.sort_by_key(|e| e.0);
                let mut out: Vec<(i32, u64)> = Vec::with_capacity(v.len());
                for e in v {
                    match out.last_mut() {
                        Some(l) if l.0 == e.0 => *l = e,
                        _ => out.push(e),
                    }
                }
                Ok(Buckets(out))
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests;
