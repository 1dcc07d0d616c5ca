//! Telemetry: what a filter VM counts per (rollout, track, segment), and the batch it ships to the
//! companion every sync period. Batches carry the VM id and a sequence number so the companion can merge
//! the per-worker streams (Envoy runs one VM per worker thread) and drop replays.

use crate::decision::Track;
use crate::histogram::Histogram;
use crate::shadow::{MismatchSample, ShadowStats, MAX_SAMPLES_PER_BATCH};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The wire protocol this release speaks: 1 added `protocol` itself (batches and states without it are
/// protocol 0, the first release). Bump it when a field a peer must understand is added. A first-release
/// companion refuses batches with any field it does not know (this one included): upgrade the companion
/// before the filters when leaving the first release.
/// 2 added epochs (state and batch) and exactly-once delivery (a batch is resent unchanged, same
/// `seq`, until acknowledged; it is never merged into a newer one).
pub const PROTOCOL_VERSION: u32 = 2;

/// One (rollout, track, segment) cell of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub rollout: String,
    pub track: Track,
    pub segment: String,
    pub requests: u64,
    pub errors: u64,
    /// Request-headers-to-response-end latency, µs.
    pub latency_us: Histogram,
    /// Whether these requests were *bucketed*: a user key was hashed against the segment's canary share
    /// of the state the filter routed with. `false`: the track was not randomised (no key, bad header,
    /// stale or no state, kill switch, rollout off); the companion counts and shows these requests but
    /// never judges them, since their track says nothing about the version. Absent (filters before this
    /// field): `true`, the old meaning of every cell.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub bucketed: bool,
    /// The errors of bucketed requests by user bucket: `(bucket, errors)`, at most
    /// [`MAX_ERROR_UNITS`] buckets per cell (errors beyond them are listed under no bucket). The companion
    /// counts each bucket's errors once per phase in the error test: users are sticky, so one failing
    /// client must weigh as one randomised unit, not as all its requests. Absent (older filters): every
    /// error counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_units: Vec<(u32, u32)>,
}

/// Distinct user buckets with errors listed per cell and batch.
pub const MAX_ERROR_UNITS: usize = 1024;

/// Adds `n` errors of `bucket` to `units`, a sorted list bounded by [`MAX_ERROR_UNITS`] (a new bucket
/// beyond the bound is not listed: its errors count in full).
fn add_unit(units: &mut Vec<(u32, u32)>, bucket: u32, n: u32) {
    match units.binary_search_by_key(&bucket, |u| u.0) {
        Ok(i) => units[i].1 = units[i].1.saturating_add(n),
        Err(i) if units.len() < MAX_ERROR_UNITS => units.insert(i, (bucket, n)),
        Err(_) => {}
    }
}

fn yes() -> bool {
    true
}

// serde's `skip_serializing_if` takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_yes(b: &bool) -> bool {
    *b
}

/// The batch a filter VM POSTs to `/v1/telemetry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The sender's [`PROTOCOL_VERSION`] (absent in batches of the first release: 0).
    #[serde(default)]
    pub protocol: u32,
    /// Unique per VM instance (per worker and per VM start).
    pub vm: String,
    /// Increments by one per batch of this VM; a batch resent after a lost acknowledgement keeps it, so
    /// (`vm`, `seq`) is the batch's identity and the companion counts it once.
    pub seq: u64,
    /// The companion epoch of `state_version` (0: a filter before protocol 2, or no state yet).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// Version of the dynamic state the VM was routing with.
    pub state_version: u64,
    /// Version of the dynamic state the VM routes with when the batch is cut (≥ `state_version`, which
    /// is the oldest version of the window). Lets the companion show which state every VM has adopted.
    /// Absent in batches of older filters (then 0).
    #[serde(default)]
    pub routing_version: u64,
    /// The VM's clock when the batch was cut (ms since the epoch).
    #[serde(default)]
    pub sent_at_ms: u64,
    #[serde(default)]
    pub cells: Vec<Cell>,
    /// Decision reasons and filter-level events (`bad_header`, `no_key`, `stale`, …) since the last batch.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Shadow comparisons per rollout.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shadow: BTreeMap<String, ShadowStats>,
    /// A bounded sample of mismatches, as evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<MismatchSample>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
            && self.counters.values().all(|c| *c == 0)
            && self.shadow.values().all(ShadowStats::is_empty)
            && self.samples.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellAcc {
    pub requests: u64,
    pub errors: u64,
    pub latency_us: Histogram,
    /// `(bucket, errors)`, sorted, see [`Cell::error_units`].
    pub error_units: Vec<(u32, u32)>,
}

/// Dense per-VM accumulator indexed by (rollout, track, segment, bucketed).
#[derive(Debug, Clone)]
pub struct Accumulator {
    rollouts: Vec<String>,
    segments: Vec<String>,
    cells: Vec<CellAcc>,
    pub counters: BTreeMap<&'static str, u64>,
    /// Shadow comparisons per rollout since the last cut.
    pub shadow: BTreeMap<String, ShadowStats>,
    /// Mismatch samples since the last cut (at most [`MAX_SAMPLES_PER_BATCH`] per rollout).
    pub samples: Vec<MismatchSample>,
}

impl Accumulator {
    pub fn new(rollouts: Vec<String>, segments: Vec<String>) -> Self {
        let n = rollouts.len() * 2 * segments.len() * 2;
        Self {
            rollouts,
            segments,
            cells: vec![CellAcc::default(); n],
            counters: BTreeMap::new(),
            shadow: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

    /// The shadow counters of a rollout.
    pub fn shadow_mut(&mut self, rollout: &str) -> &mut ShadowStats {
        self.shadow.entry(rollout.to_string()).or_default()
    }

    /// Keeps a mismatch sample unless this rollout already has its share for the batch.
    pub fn sample(&mut self, s: MismatchSample) {
        push_sample(&mut self.samples, s);
    }

    fn index(&self, rollout: usize, track: Track, segment: usize, bucketed: bool) -> Option<usize> {
        (rollout < self.rollouts.len() && segment < self.segments.len()).then(|| {
            ((rollout * 2 + track.index()) * self.segments.len() + segment) * 2
                + usize::from(!bucketed)
        })
    }

    /// Counts one request of `rollout`'s `segment` on `track`. `bucket`: the user's bucket when the
    /// track was drawn from it against the segment's share; `None`: not bucketed (see
    /// [`Cell::bucketed`]).
    pub fn record(
        &mut self,
        rollout: usize,
        track: Track,
        segment: usize,
        bucket: Option<u32>,
        error: bool,
        latency_us: u64,
    ) {
        if let Some(c) = self
            .index(rollout, track, segment, bucket.is_some())
            .and_then(|i| self.cells.get_mut(i))
        {
            c.requests += 1;
            c.errors += u64::from(error);
            c.latency_us.record(latency_us);
            if let (true, Some(b)) = (error, bucket) {
                add_unit(&mut c.error_units, b, 1);
            }
        }
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_insert(0) += 1;
    }

    /// Cuts a batch of everything recorded since the last cut and resets the accumulator.
    pub fn take_batch(&mut self, vm: &str, seq: u64, state_version: u64, now_ms: u64) -> Batch {
        let segs = self.segments.len();
        let mut cells = Vec::new();
        for (i, c) in self.cells.iter_mut().enumerate() {
            if c.requests == 0 {
                continue;
            }
            let bucketed = i.is_multiple_of(2);
            let i = i / 2;
            let seg = i % segs.max(1);
            let rt = i / segs.max(1);
            let (r, track) = (
                rt / 2,
                if rt.is_multiple_of(2) {
                    Track::Stable
                } else {
                    Track::Canary
                },
            );
            let acc = std::mem::take(c);
            cells.push(Cell {
                rollout: self.rollouts.get(r).cloned().unwrap_or_default(),
                track,
                segment: self.segments.get(seg).cloned().unwrap_or_default(),
                requests: acc.requests,
                errors: acc.errors,
                latency_us: acc.latency_us,
                bucketed,
                error_units: acc.error_units,
            });
        }
        let counters = std::mem::take(&mut self.counters)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Batch {
            protocol: PROTOCOL_VERSION,
            vm: vm.to_string(),
            seq,
            epoch: 0,
            state_version,
            routing_version: state_version,
            sent_at_ms: now_ms,
            cells,
            counters,
            shadow: std::mem::take(&mut self.shadow)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            samples: std::mem::take(&mut self.samples),
        }
    }
}

/// Appends `s` unless its rollout already has `MAX_SAMPLES_PER_BATCH` samples.
fn push_sample(samples: &mut Vec<MismatchSample>, s: MismatchSample) {
    if samples.iter().filter(|x| x.rollout == s.rollout).count() < MAX_SAMPLES_PER_BATCH {
        samples.push(s);
    }
}

#[cfg(test)]
mod tests;

fn is_zero(v: &u64) -> bool {
    *v == 0
}
