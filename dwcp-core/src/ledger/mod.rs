//! The ingest ledger: everything the companion decides about telemetry and routing, as a pure state
//! machine (no clock, no I/O; `now_ms` is an input). The companion's `controller.rs` wraps it with SQLite,
//! the clock and HTTP, and persists what each call returns.
//!
//! * **Batch validation** ([`validate`]): a batch is taken whole or refused whole; cells, shadow stats
//!   and samples of a rollout the ledger does not know are skipped and counted
//!   ([`Counters::unknown`]), never a reason to refuse the batch (rolling upgrades).
//! * **Crediting** ([`credit`]): a batch is labelled with the oldest state version used in its window;
//!   its requests count for the current phase only if that version is not older than the phase, and its
//!   expected canary count uses the shares of that version.
//! * **Routing state**: the versioned [`DynamicState`] served to filters; the version is bumped whenever
//!   routing changes (a rollout's status or phase, the kill switch).
//! * **Time slices**: batches are merged per rollout and per state version into slices of [`SLICE_MS`]
//!   (closed by the first batch after that long, and by every tick) before the rollout judges them, so
//!   the evidence is the same whether 1 or 1 000 sidecars report it.
//! * **Evidence**: promotions and rollbacks carry the rollout's latest shadow mismatch samples.

pub mod credit;
mod outputs;
pub mod reconcile;
pub mod validate;

use crate::decision::Track;
use crate::rollout::{Command, Event, EventKind, Input, Rollout, Status, TrackAgg, Window};
use crate::shadow::{MismatchSample, ShadowStats};
use crate::signals::Trigger;
use crate::state::{DynamicState, RolloutState};
use crate::telemetry::{Batch, PROTOCOL_VERSION};
pub use credit::{Credit, SharesByRollout, VmSeen, Vms};
pub use outputs::{Counters, Ingested, Part, SavedShadow, Stepped, Totals};
pub use reconcile::{reconcile, Definition};
use std::collections::{BTreeMap, HashMap, VecDeque};
pub use validate::{validate, BatchError};

/// Shadow mismatch samples kept per rollout as evidence.
pub const SHADOW_SAMPLES_KEPT: usize = 32;
/// Distinct unknown rollouts counted by name; beyond that they are counted under [`OTHER_ROLLOUTS`].
pub const MAX_UNKNOWN_ROLLOUTS: usize = 256;
/// The name unknown rollouts beyond [`MAX_UNKNOWN_ROLLOUTS`] are counted under.
pub const OTHER_ROLLOUTS: &str = "(other)";
/// The segment a cell naming a segment its rollout does not define is counted under (share 0: never
/// judged), so free-form segment names cannot grow the totals or `/metrics` without bound.
pub const OTHER_SEGMENT: &str = "(other)";

/// Batches are merged into time slices of this length before a rollout judges them (see the module doc).
pub const SLICE_MS: u64 = 500;

/// A rollout's open time slice: when it opened, and its windows by the state version they were routed
/// under (each version has its own shares, so windows of different versions are not merged).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Slice {
    opened_ms: u64,
    windows: BTreeMap<u64, Window>,
    /// Restored from storage: each window's `current_phase` was decided when it was stored (the
    /// versions a phase started at are not kept across restarts), not when the slice closes.
    #[serde(default)]
    restored: bool,
}

/// The companion's state, without its I/O.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub rollouts: BTreeMap<String, Rollout>,
    /// The companion's epoch (see [`DynamicState::epoch`]); versions are ordered within it.
    pub epoch: u64,
    pub version: u64,
    pub kill_all: bool,
    credit: Credit,
    vms: Vms,
    /// Cumulative counts per (rollout, segment).
    pub totals: BTreeMap<(String, String), Totals>,
    pub counters: Counters,
    /// Latest mismatch samples per rollout (at most [`SHADOW_SAMPLES_KEPT`]), evidence of decisions.
    pub shadow_samples: BTreeMap<String, VecDeque<MismatchSample>>,
    /// Cumulative shadow counters per rollout.
    pub shadow_totals: BTreeMap<String, ShadowStats>,
    max_future_skew_ms: u64,
    /// Open time slices per rollout.
    slices: BTreeMap<String, Slice>,
    /// Per rollout: the phase and the (segment, track, user bucket) units that already had an error in
    /// it (each counts once per phase in the error test). Not persisted: after a restart a unit may count
    /// once more.
    error_units: BTreeMap<String, UnitsSeen>,
}

/// The (segment, track, user bucket) units of one rollout that had an error in its current phase.
#[derive(Debug, Clone, Default)]
struct UnitsSeen {
    phase: usize,
    count: usize,
    by_segment: HashMap<String, std::collections::HashSet<(Track, u32)>>,
}

/// Units remembered per rollout and phase; beyond it every error counts (bounded memory).
pub const MAX_ERROR_UNITS_SEEN: usize = 200_000;

impl Ledger {
    /// A ledger serving `version` with these rollouts (every phase taken to start at `version`).
    pub fn new(
        rollouts: BTreeMap<String, Rollout>,
        version: u64,
        kill_all: bool,
        max_future_skew_ms: u64,
    ) -> Self {
        let mut l = Ledger {
            rollouts,
            epoch: 0,
            version,
            kill_all,
            credit: Credit::default(),
            vms: Vms::default(),
            totals: BTreeMap::new(),
            counters: Counters::default(),
            shadow_samples: BTreeMap::new(),
            shadow_totals: BTreeMap::new(),
            max_future_skew_ms,
            slices: BTreeMap::new(),
            error_units: BTreeMap::new(),
        };
        for name in l.rollouts.keys() {
            l.credit.phase_started(name, version);
        }
        l.record_shares();
        l
    }

    /// Starts a new epoch (a fresh or restored database, or a filter proved the database went back in
    /// time): filters adopt the next state whatever version they hold. Routing is unchanged.
    pub fn set_epoch(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.version += 1;
            self.record_shares();
        }
    }

    /// Restores what an earlier run knew of a VM (its last taken sequence number), so a batch resent
    /// after a lost acknowledgement is still recognised across a companion restart.
    pub fn restore_vm(&mut self, vm: &str, seen: VmSeen) {
        let _ = self.vms.take(vm, seen);
        self.vms.clear_dirty();
    }

    /// The VMs whose last taken sequence number changed since the last call (to persist with the
    /// rollouts they were credited to), and the VMs evicted from the bounded table.
    pub fn take_dirty_vms(&mut self) -> (Vec<(String, VmSeen)>, Vec<String>) {
        self.vms.take_dirty()
    }

    /// Restores a rollout's shadow totals and samples saved by an earlier run.
    pub fn restore_shadow(&mut self, rollout: &str, saved: SavedShadow) {
        self.shadow_totals.insert(rollout.to_string(), saved.totals);
        self.shadow_samples
            .insert(rollout.to_string(), saved.samples.into());
    }

    /// What to save of a rollout's shadow totals and samples.
    pub fn saved_shadow(&self, rollout: &str) -> SavedShadow {
        SavedShadow {
            totals: self.shadow_totals.get(rollout).cloned().unwrap_or_default(),
            samples: self
                .shadow_samples
                .get(rollout)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    fn record_shares(&mut self) {
        let shares = self
            .rollouts
            .iter()
            .map(|(n, r)| {
                let s = if self.kill_all {
                    BTreeMap::new()
                } else {
                    r.shares()
                };
                (n.clone(), s)
            })
            .collect();
        self.credit.record(self.version, shares);
    }

    /// The dynamic state served to filters, at the current protocol.
    pub fn state(&self) -> DynamicState {
        self.state_for(PROTOCOL_VERSION)
    }

    /// The dynamic state for a filter speaking `protocol`: never newer than the filter's, so a filter of
    /// an older release (which may parse strictly) gets only the fields it knows.
    pub fn state_for(&self, protocol: u32) -> DynamicState {
        DynamicState {
            protocol: PROTOCOL_VERSION,
            epoch: self.epoch,
            version: self.version,
            kill_all: self.kill_all,
            rollouts: self
                .rollouts
                .iter()
                .map(|(n, r)| {
                    let rs = RolloutState {
                        phase: r.phase_name().to_string(),
                        segments: r.shares(),
                        killed: r.status == Status::RolledBack,
                        shadow_bp: r.shadow_bp(),
                    };
                    (n.clone(), rs)
                })
                .collect(),
        }
        .for_protocol(protocol)
    }

    /// Counts a batch refused before it reached the ledger (malformed JSON).
    pub fn note_malformed(&mut self) {
        self.counters.batches_rejected += 1;
    }

    fn count_unknown(&mut self, rollout: &str, part: Part, n: u64) {
        let distinct = self.counters.unknown.len();
        let key = (rollout.to_string(), part);
        let key = if self.counters.unknown.contains_key(&key) || distinct < MAX_UNKNOWN_ROLLOUTS {
            key
        } else {
            (OTHER_ROLLOUTS.to_string(), part)
        };
        *self.counters.unknown.entry(key).or_insert(0) += n;
    }

    /// Whether `b` was routed under another epoch's state (its versions mean nothing in this one).
    pub fn foreign_epoch(&self, b: &Batch) -> bool {
        b.epoch != 0 && b.epoch != self.epoch
    }

    fn seen(&self, b: &Batch, now_ms: u64) -> VmSeen {
        let routing_version = if self.foreign_epoch(b) {
            0
        } else {
            // Filters before `routing_version` existed send 0: the window's version is the best known.
            b.routing_version.max(b.state_version).min(self.version)
        };
        VmSeen {
            seq: b.seq,
            at_ms: now_ms,
            routing_version,
        }
    }

    /// Ingests one batch at `now_ms`: validates it, drops replays, credits its cells and shadow stats to
    /// the rollouts they were routed under, and steps every rollout it touched.
    pub fn ingest(&mut self, b: Batch, now_ms: u64) -> Result<Ingested, BatchError> {
        let foreign = self.foreign_epoch(&b);
        if let Err(e) = validate(&b, self.version, foreign, now_ms, self.max_future_skew_ms) {
            self.counters.batches_rejected += 1;
            return Err(e);
        }
        if self.vms.is_replay(&b.vm, b.seq) {
            self.counters.batches_duplicate += 1;
            return Ok(Ingested::Duplicate);
        }
        let seen = self.seen(&b, now_ms);
        self.counters.vms_evicted += self.vms.take(&b.vm, seen);
        self.counters.batches_accepted += 1;
        *self.counters.by_protocol.entry(b.protocol).or_insert(0) += 1;
        // A batch of another epoch is credited as routed under no known state: share 0 (counted, never
        // judged), not in the current phase.
        let credited_version = if foreign { 0 } else { b.state_version };
        let mut windows: BTreeMap<String, Window> = BTreeMap::new();
        for mut c in b.cells {
            let Some(r) = self.rollouts.get(&c.rollout) else {
                self.count_unknown(&c.rollout, Part::Cells, 1);
                continue;
            };
            if !r.spec.segments.contains_key(&c.segment) {
                *self
                    .counters
                    .unknown_segments
                    .entry(c.rollout.clone())
                    .or_insert(0) += 1;
                c.segment = OTHER_SEGMENT.to_string();
            }
            let share = self
                .credit
                .share_at(credited_version, &c.rollout, &c.segment);
            // Looked up with the cell's own strings (moved in and back): no key allocation per cell
            // once the pair is known.
            let key = (
                std::mem::take(&mut c.rollout),
                std::mem::take(&mut c.segment),
            );
            let t = match self.totals.get_mut(&key) {
                Some(t) => t,
                None => self.totals.entry(key.clone()).or_default(),
            };
            t.requests[c.track.index()] += c.requests;
            t.errors[c.track.index()] += c.errors;
            (c.rollout, c.segment) = key;
            let units = self.error_units_of(&c);
            let w = windows.entry(c.rollout).or_default();
            if !c.bucketed {
                // Not randomised: shown in the totals and as untested, never judged nor expected.
                w.unbucketed.add(&c.segment, c.requests, c.errors);
                w.unbucketed.unbucketed += c.requests;
                continue;
            }
            w.expected_canary += c.requests as f64 * f64::from(share) / 10_000.0;
            let agg = TrackAgg {
                requests: c.requests,
                errors: c.errors,
                latency_us: c.latency_us,
            };
            // Per segment too, with the share it was routed with: the tests' strata.
            let sw = w.segments.entry(c.segment).or_default();
            sw.share_bp = share;
            let mut te = sw.test_errors();
            te[c.track.index()] += units;
            sw.error_units = Some(te);
            match c.track {
                Track::Stable => {
                    sw.stable.merge(&agg);
                    w.stable.merge(&agg);
                }
                Track::Canary => {
                    sw.canary.merge(&agg);
                    w.canary.merge(&agg);
                }
            }
        }
        let mut shadow_touched = Vec::new();
        for (name, st) in b.shadow {
            if !self.rollouts.contains_key(&name) {
                self.count_unknown(&name, Part::Shadow, 1);
                continue;
            }
            windows
                .entry(name.clone())
                .or_default()
                .shadow
                .merge(&st.to_agg());
            self.shadow_totals
                .entry(name.clone())
                .or_default()
                .merge(&st);
            shadow_touched.push(name);
        }
        for smp in b.samples {
            if !self.rollouts.contains_key(&smp.rollout) {
                self.count_unknown(&smp.rollout, Part::Samples, 1);
                continue;
            }
            shadow_touched.push(smp.rollout.clone());
            let ring = self.shadow_samples.entry(smp.rollout.clone()).or_default();
            ring.push_back(smp);
            while ring.len() > SHADOW_SAMPLES_KEPT {
                ring.pop_front();
            }
        }
        shadow_touched.sort();
        shadow_touched.dedup();
        let mut stepped = Vec::new();
        for (name, w) in windows {
            // A restored slice keeps its own crediting: it is judged first, then a new one opens.
            if self.slices.get(&name).is_some_and(|s| s.restored) {
                stepped.extend(self.close_slice(&name, now_ms));
            }
            let slice = self.slices.entry(name.clone()).or_insert_with(|| Slice {
                opened_ms: now_ms,
                windows: BTreeMap::new(),
                restored: false,
            });
            slice.windows.entry(credited_version).or_default().merge(&w);
            if now_ms.saturating_sub(slice.opened_ms) >= SLICE_MS {
                stepped.extend(self.close_slice(&name, now_ms));
            }
        }
        Ok(Ingested::Accepted {
            stepped,
            shadow_touched,
        })
    }

    /// A bucketed cell's errors as the error test counts them: each listed (segment, track, bucket)
    /// once per phase of the rollout, unlisted errors in full (older filters list none).
    fn error_units_of(&mut self, c: &crate::telemetry::Cell) -> u64 {
        if c.error_units.is_empty() {
            return c.errors;
        }
        let phase = self.rollouts.get(&c.rollout).map_or(0, |r| r.phase);
        if !self.error_units.contains_key(&c.rollout) {
            self.error_units
                .insert(c.rollout.clone(), UnitsSeen::default());
        }
        let Some(seen) = self.error_units.get_mut(&c.rollout) else {
            return c.errors;
        };
        if seen.phase != phase {
            *seen = UnitsSeen {
                phase,
                ..UnitsSeen::default()
            };
        }
        let listed: u64 = c.error_units.iter().map(|u| u64::from(u.1)).sum();
        let mut units = c.errors.saturating_sub(listed);
        if !seen.by_segment.contains_key(&c.segment) {
            seen.by_segment
                .insert(c.segment.clone(), Default::default());
        }
        let Some(set) = seen.by_segment.get_mut(&c.segment) else {
            return c.errors;
        };
        for (bucket, _) in &c.error_units {
            if set.contains(&(c.track, *bucket)) {
                continue;
            }
            units += 1;
            if seen.count < MAX_ERROR_UNITS_SEEN {
                set.insert((c.track, *bucket));
                seen.count += 1;
            }
        }
        units
    }

    /// Notes a VM's empty batch (nothing to judge): it is alive and routes with `routing_version`.
    pub fn note_vm(&mut self, b: &Batch, now_ms: u64) {
        let future = b.state_version > self.version && !self.foreign_epoch(b);
        if b.vm.is_empty() || b.vm.len() > 128 || future {
            return;
        }
        let seen = self.seen(b, now_ms);
        self.vms.note(&b.vm, seen);
    }

    /// The filter VMs seen in the last `window_ms`, with the state version each routes with.
    pub fn vms(&self, now_ms: u64, window_ms: u64) -> BTreeMap<&str, VmSeen> {
        self.vms.active(now_ms, window_ms)
    }

    /// Judges a rollout's open slice: each of its windows, oldest state version first. A window counts
    /// for the current phase only if its version is not older than the phase (decided now, so windows
    /// of a phase that ended while the slice was open are not credited to the next one).
    fn close_slice(&mut self, name: &str, now_ms: u64) -> Vec<Stepped> {
        let Some(slice) = self.slices.remove(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (version, mut w) in slice.windows {
            if !slice.restored {
                w.current_phase = self.credit.in_current_phase(name, version);
            }
            out.extend(self.step(name, Input::Window(w), now_ms));
        }
        out
    }

    /// The open time slices, as JSON: stored with every commit, so a batch acknowledged before its slice
    /// was judged is not lost with a restart.
    pub fn open_slices_json(&self) -> String {
        let mut slices = self.slices.clone();
        for (name, slice) in &mut slices {
            if !slice.restored {
                for (version, w) in &mut slice.windows {
                    w.current_phase = self.credit.in_current_phase(name, *version);
                }
            }
        }
        serde_json::to_string(&slices).unwrap_or_default()
    }

    /// Restores slices saved by [`Ledger::open_slices_json`] (unparsable text: none; a rollout no longer
    /// configured: dropped).
    pub fn restore_slices(&mut self, json: &str) {
        let slices: BTreeMap<String, Slice> = serde_json::from_str(json).unwrap_or_default();
        self.slices = slices
            .into_iter()
            .filter(|(n, _)| self.rollouts.contains_key(n))
            .map(|(n, mut s)| {
                s.restored = true;
                (n, s)
            })
            .collect();
    }

    /// Closes every open slice, then steps every rollout on the clock (promotions when a phase's
    /// evidence is complete).
    pub fn tick(&mut self, now_ms: u64) -> Vec<Stepped> {
        let names: Vec<String> = self.rollouts.keys().cloned().collect();
        let mut out = Vec::new();
        for n in &names {
            out.extend(self.close_slice(n, now_ms));
            out.extend(self.step(n, Input::Tick, now_ms));
        }
        out
    }

    /// An operator command. `None`: no such rollout.
    pub fn command(
        &mut self,
        rollout: &str,
        command: Command,
        actor: &str,
        now_ms: u64,
    ) -> Option<Stepped> {
        let input = Input::Command {
            command,
            actor: actor.to_string(),
        };
        self.step(rollout, input, now_ms)
    }

    /// An engine trigger (5–8) fired for `rollout`. `None`: no such rollout.
    pub fn engine_trigger(
        &mut self,
        rollout: &str,
        trigger: Trigger,
        detail: serde_json::Value,
        now_ms: u64,
    ) -> Option<Stepped> {
        self.step(rollout, Input::EngineTrigger { trigger, detail }, now_ms)
    }

    /// The event and the state after setting the global kill switch, without applying it (the caller
    /// stores it first, then calls [`Ledger::set_kill_all`]). `None`: already so.
    pub fn kill_all_event(&self, on: bool, actor: &str) -> Option<(Event, u64)> {
        (self.kill_all != on).then(|| {
            let e = Event {
                kind: if on {
                    EventKind::KillAll
                } else {
                    EventKind::KillAllOff
                },
                message: format!("global kill switch {}", if on { "on" } else { "off" }),
                actor: Some(actor.to_string()),
                verdict: None,
                evidence: serde_json::Value::Null,
            };
            (e, self.version + 1)
        })
    }

    /// Routing changed outside the rollouts (the companion serves everything on stable while it cannot
    /// store its state, or stops doing so): a new version, credited with `all_stable` shares.
    pub fn bump_version(&mut self, all_stable: bool) {
        self.version += 1;
        if all_stable {
            let shares = self
                .rollouts
                .keys()
                .map(|n| (n.clone(), BTreeMap::new()))
                .collect();
            self.credit.record(self.version, shares);
        } else {
            self.record_shares();
        }
    }

    /// Applies the kill switch (routing changes: new version).
    pub fn set_kill_all(&mut self, on: bool) {
        if self.kill_all != on {
            self.kill_all = on;
            self.version += 1;
            self.record_shares();
        }
    }

    /// Steps one rollout and settles the outputs: evidence, counters, version.
    fn step(&mut self, name: &str, input: Input, now_ms: u64) -> Option<Stepped> {
        let r = self.rollouts.get_mut(name)?;
        let before = (r.status, r.phase);
        let mut events = r.step(input, now_ms);
        let routing_changed = (r.status, r.phase) != before;
        if let Some(samples) = self.shadow_samples.get(name).filter(|s| !s.is_empty()) {
            attach_samples(&mut events, samples);
        }
        for e in &events {
            let counter = match e.kind {
                EventKind::RolledBack => &mut self.counters.rollbacks,
                EventKind::Promoted => &mut self.counters.promotions,
                _ => continue,
            };
            *counter.entry(name.to_string()).or_insert(0) += 1;
        }
        if routing_changed {
            self.version += 1;
            self.credit.phase_started(name, self.version);
            self.record_shares();
        }
        Some(Stepped {
            rollout: name.to_string(),
            events,
            routing_changed,
        })
    }
}

/// Adds the shadow mismatch samples to the evidence of promotions and rollbacks.
fn attach_samples(events: &mut [Event], samples: &VecDeque<MismatchSample>) {
    for e in events.iter_mut() {
        if !matches!(e.kind, EventKind::RolledBack | EventKind::Promoted) {
            continue;
        }
        let v = serde_json::to_value(samples).unwrap_or_default();
        match &mut e.evidence {
            serde_json::Value::Object(m) => {
                m.insert("shadow_samples".into(), v);
            }
            serde_json::Value::Null => {
                e.evidence = serde_json::json!({ "shadow_samples": v });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
