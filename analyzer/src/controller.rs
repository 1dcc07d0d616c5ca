//! The control plane: merges filter batches into per-rollout windows, steps every rollout machine,
//! persists what changed, and derives the versioned dynamic state served to filters. No decisions are
//! made here — they are `dwcp_core::rollout`'s; this module feeds it and records its outputs.

use crate::config::Config;
use crate::store::{Durable, Store, StoreError};
use dwcp_core::decision::Track;
use dwcp_core::rollout::{Command, Event, Input, Rollout, Status, TrackAgg, Window};
use dwcp_core::shadow::MismatchSample;
use dwcp_core::state::{DynamicState, RolloutState};
use dwcp_core::telemetry::Batch;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// rollout → segment → canary share (basis points).
type SharesByRollout = BTreeMap<String, BTreeMap<String, u32>>;

/// A request the API refuses, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown rollout {0:?}")]
    UnknownRollout(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per-track cumulative counters since the service started (for `/metrics`).
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub requests: [u64; 2],
    pub errors: [u64; 2],
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub batches_accepted: u64,
    pub batches_duplicate: u64,
    pub batches_rejected: u64,
    pub auth_failures: u64,
    pub rollbacks: BTreeMap<String, u64>,
    pub promotions: BTreeMap<String, u64>,
    /// Sum and count of batch-processing (ingest + judgment) time, µs, and a small bucket histogram.
    pub ingest_us: dwcp_core::histogram::Histogram,
}

/// A rollout's shadow totals and last mismatch samples, as saved in the `meta` table.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedShadow {
    totals: dwcp_core::shadow::ShadowStats,
    samples: Vec<MismatchSample>,
}

pub struct Controller {
    pub rollouts: BTreeMap<String, Rollout>,
    pub version: u64,
    pub kill_all: bool,
    /// Shares per version, to know what the filters routed with (last 64 versions).
    shares_by_version: VecDeque<(u64, SharesByRollout)>,
    /// Version at which each rollout's current phase took effect.
    phase_version: HashMap<String, u64>,
    /// Per filter VM: last sequence number, when it was seen (ms), and the state version it routes with.
    last_seq: HashMap<String, VmSeen>,
    /// Cumulative counts per (rollout, segment).
    pub totals: BTreeMap<(String, String), Totals>,
    pub counters: Counters,
    store: Store,
    max_future_skew_ms: u64,
    dirty: bool,
    /// engine name → rollouts that deliver it (their triggers 5–8).
    engine_rollouts: HashMap<String, Vec<String>>,
    triggers: dwcp_core::signals::TriggerWindow,
    /// (engine, event counter name) → count.
    pub engine_events: BTreeMap<(String, String), u64>,
    /// engine → last memory used/budget ratio.
    pub engine_memory: BTreeMap<String, f64>,
    /// Latest shadow mismatch samples per rollout (at most [`SHADOW_SAMPLES_KEPT`]), attached to the
    /// evidence of the rollout's decisions.
    pub shadow_samples: BTreeMap<String, VecDeque<MismatchSample>>,
    /// Cumulative shadow counters per rollout since the service started (skips, side-call failures…).
    pub shadow_totals: BTreeMap<String, dwcp_core::shadow::ShadowStats>,
    /// Rollouts whose shadow totals or samples changed since they were last saved.
    shadow_dirty: BTreeSet<String>,
}

/// What the companion knows of one filter VM (one per Envoy worker, plus the main-thread VM).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct VmSeen {
    pub seq: u64,
    pub at_ms: u64,
    /// The state version the VM routed with when it cut its last batch.
    pub routing_version: u64,
}

/// Shadow mismatch samples kept per rollout as evidence.
pub const SHADOW_SAMPLES_KEPT: usize = 32;

fn track_idx(t: Track) -> usize {
    t.index()
}

impl Controller {
    pub fn open(cfg: &Config, now_ms: u64) -> Result<Controller, StoreError> {
        let store = Store::open(&cfg.db)?;
        let mut rollouts: BTreeMap<String, Rollout> = store
            .load_rollouts()?
            .into_iter()
            .map(|r| (r.name().to_string(), r))
            .collect();
        // The stored version is bumped on start so filters never see a repeated version with new content.
        let version = store
            .meta("version")?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        // The kill switch is durable: a restart never turns canary routing back on by itself.
        let kill_all = store.meta("kill_all")?.as_deref() == Some("true");
        let mut c = Controller {
            rollouts: BTreeMap::new(),
            version,
            kill_all,
            shares_by_version: VecDeque::new(),
            phase_version: HashMap::new(),
            last_seq: HashMap::new(),
            totals: BTreeMap::new(),
            counters: Counters::default(),
            store,
            max_future_skew_ms: cfg.max_future_skew_ms,
            dirty: true,
            engine_rollouts: HashMap::new(),
            triggers: dwcp_core::signals::TriggerWindow::default(),
            engine_events: BTreeMap::new(),
            engine_memory: BTreeMap::new(),
            shadow_samples: BTreeMap::new(),
            shadow_totals: BTreeMap::new(),
            shadow_dirty: BTreeSet::new(),
        };
        // Counters exist (at 0) from the start for the hosted engines, as Prometheus expects.
        for engine in ["manager", "compression"] {
            for kind in [
                "dwcp_engine_byzantine_attacks_total",
                "dwcp_engine_integrity_violations_total",
                "dwcp_engine_breaker_storms_total",
                "dwcp_engine_memory_exhaustions_total",
                "dwcp_engine_breaker_opens_total",
                "dwcp_engine_memory_samples_total",
            ] {
                c.engine_events
                    .insert((engine.to_string(), kind.to_string()), 0);
            }
        }
        for def in &cfg.rollouts {
            if let Some(engine) = &def.engine {
                c.engine_rollouts
                    .entry(engine.clone())
                    .or_default()
                    .push(def.spec.name.clone());
            }
        }
        let mut new_events = Vec::new();
        for def in &cfg.rollouts {
            match rollouts.remove(&def.spec.name) {
                Some(mut r) => {
                    // Definition changes apply to the running rollout; its phase and evidence are kept.
                    r.spec = def.spec.clone();
                    r.phase = r.phase.min(r.spec.phases.len().saturating_sub(1));
                    c.rollouts.insert(def.spec.name.clone(), r);
                }
                None => {
                    let mut r = Rollout::new(def.spec.clone());
                    if def.autostart {
                        for e in r.step(
                            Input::Command {
                                command: Command::Start,
                                actor: "config".into(),
                            },
                            now_ms,
                        ) {
                            new_events.push((def.spec.name.clone(), now_ms, e));
                        }
                    }
                    c.rollouts.insert(def.spec.name.clone(), r);
                }
            }
        }
        // Rollouts kept in the database but gone from the config stay visible (read-only history).
        for (name, r) in rollouts {
            c.rollouts.insert(name, r);
        }
        for name in c.rollouts.keys() {
            c.phase_version.insert(name.clone(), version);
        }
        // Shadow totals and the mismatch samples survive a restart (saved on the tick).
        let names: Vec<String> = c.rollouts.keys().cloned().collect();
        for name in names {
            if let Some(text) = c.store.meta(&format!("shadow.{name}"))? {
                if let Ok(saved) = serde_json::from_str::<SavedShadow>(&text) {
                    c.shadow_totals.insert(name.clone(), saved.totals);
                    c.shadow_samples.insert(name, saved.samples.into());
                }
            }
        }
        c.record_shares();
        let all: Vec<&Rollout> = c.rollouts.values().collect();
        c.store.commit(&all, &new_events, c.durable(), now_ms)?;
        c.dirty = false;
        Ok(c)
    }

    fn record_shares(&mut self) {
        let shares = self
            .rollouts
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    if self.kill_all {
                        BTreeMap::new()
                    } else {
                        r.shares()
                    },
                )
            })
            .collect();
        self.shares_by_version.push_back((self.version, shares));
        while self.shares_by_version.len() > 64 {
            self.shares_by_version.pop_front();
        }
    }

    fn shares_at(&self, version: u64, rollout: &str) -> Option<&BTreeMap<String, u32>> {
        self.shares_by_version
            .iter()
            .rev()
            .find(|(v, _)| *v <= version)
            .and_then(|(_, s)| s.get(rollout))
    }

    /// The dynamic state served to filters.
    pub fn state(&self) -> DynamicState {
        DynamicState {
            version: self.version,
            kill_all: self.kill_all,
            rollouts: self
                .rollouts
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        RolloutState {
                            phase: r.phase_name().to_string(),
                            segments: r.shares(),
                            killed: r.status == Status::RolledBack,
                            shadow_bp: r.shadow_bp(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Applies the outputs of a step: bump the version if routing changed, persist.
    fn apply(
        &mut self,
        name: &str,
        before: (Status, usize),
        mut events: Vec<Event>,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let Some(r) = self.rollouts.get(name) else {
            return Ok(());
        };
        if let Some(samples) = self.shadow_samples.get(name).filter(|s| !s.is_empty()) {
            for e in events.iter_mut() {
                if matches!(e.kind.as_str(), "rolled_back" | "promoted") {
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
        }
        let routing_changed = (r.status, r.phase) != before;
        for e in &events {
            match e.kind.as_str() {
                "rolled_back" => *self.counters.rollbacks.entry(name.to_string()).or_insert(0) += 1,
                "promoted" => {
                    *self
                        .counters
                        .promotions
                        .entry(name.to_string())
                        .or_insert(0) += 1
                }
                _ => {}
            }
            tracing::info!(rollout = name, kind = %e.kind, actor = ?e.actor, "{}", e.message);
        }
        if routing_changed {
            self.version += 1;
            self.phase_version.insert(name.to_string(), self.version);
            self.record_shares();
        }
        if routing_changed || !events.is_empty() {
            let evs: Vec<(String, u64, Event)> = events
                .into_iter()
                .map(|e| (name.to_string(), now_ms, e))
                .collect();
            if let Some(r) = self.rollouts.get(name) {
                self.store.commit(&[r], &evs, self.durable(), now_ms)?;
            }
        } else {
            self.dirty = true;
        }
        Ok(())
    }

    fn validate(&self, b: &Batch, now_ms: u64) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::BadRequest(m));
        if b.vm.is_empty() || b.vm.len() > 128 {
            return bad("vm: must be 1-128 characters".into());
        }
        if b.seq == 0 {
            return bad("seq: must be >= 1".into());
        }
        if b.sent_at_ms > now_ms + self.max_future_skew_ms {
            return bad(format!(
                "sent_at_ms: {} is in the future (now {now_ms})",
                b.sent_at_ms
            ));
        }
        if b.state_version > self.version {
            return bad(format!(
                "state_version: {} is newer than the current {}",
                b.state_version, self.version
            ));
        }
        if b.cells.len() > 10_000 {
            return bad("cells: more than 10000".into());
        }
        for (i, c) in b.cells.iter().enumerate() {
            let Some(r) = self.rollouts.get(&c.rollout) else {
                return Err(ApiError::UnknownRollout(format!(
                    "cells[{i}].rollout: {}",
                    c.rollout
                )));
            };
            let _ = r;
            if c.errors > c.requests {
                return bad(format!(
                    "cells[{i}].errors: {} exceeds requests {}",
                    c.errors, c.requests
                ));
            }
            if c.requests > 100_000_000 {
                return bad(format!(
                    "cells[{i}].requests: {} is not plausible for one batch",
                    c.requests
                ));
            }
            if c.latency_us.count != c.requests {
                return bad(format!(
                    "cells[{i}].latency_us.count: {} != requests {}",
                    c.latency_us.count, c.requests
                ));
            }
            let sum: u64 = c.latency_us.buckets.values().sum::<u64>() + c.latency_us.zero;
            if sum != c.latency_us.count {
                return bad(format!(
                    "cells[{i}].latency_us: bucket counts sum to {sum}, not count {}",
                    c.latency_us.count
                ));
            }
            if c.segment.is_empty() || c.segment.len() > 64 {
                return bad(format!("cells[{i}].segment: must be 1-64 characters"));
            }
        }
        for (name, st) in &b.shadow {
            if !self.rollouts.contains_key(name) {
                return Err(ApiError::UnknownRollout(format!("shadow.{name}")));
            }
            let f = |what: &str, v: u64| -> Result<(), ApiError> {
                if v > st.compared {
                    return Err(ApiError::BadRequest(format!(
                        "shadow.{name}.{what}: {v} exceeds compared {}",
                        st.compared
                    )));
                }
                Ok(())
            };
            f("mismatches", st.mismatches)?;
            f("mismatch_status", st.mismatch_status)?;
            f("mismatch_headers", st.mismatch_headers)?;
            f("mismatch_body", st.mismatch_body)?;
            f("noise", st.noise)?;
            f("noise_compared", st.noise_compared)?;
            f("stable_differs", st.stable_differs)?;
            if st.noise > st.mismatches || st.stable_differs > st.noise_compared {
                return bad(format!(
                    "shadow.{name}: noise exceeds mismatches, or stable_differs exceeds noise_compared"
                ));
            }
            f("shadow_errors", st.shadow_errors)?;
            f("primary_errors", st.primary_errors)?;
            f("slower", st.slower)?;
            if st.latency_delta_us.count != st.compared {
                return bad(format!(
                    "shadow.{name}.latency_delta_us.count: {} != compared {}",
                    st.latency_delta_us.count, st.compared
                ));
            }
            if st.compared > 100_000_000 {
                return bad(format!(
                    "shadow.{name}.compared: not plausible for one batch"
                ));
            }
        }
        if b.samples.len() > 1000 {
            return bad("samples: more than 1000".into());
        }
        for (i, smp) in b.samples.iter().enumerate() {
            if !self.rollouts.contains_key(&smp.rollout) {
                return Err(ApiError::UnknownRollout(format!(
                    "samples[{i}].rollout: {}",
                    smp.rollout
                )));
            }
        }
        Ok(())
    }

    /// Ingests one batch; returns whether it was new (false: a replay, ignored).
    pub fn ingest(&mut self, b: Batch, now_ms: u64) -> Result<bool, ApiError> {
        if let Err(e) = self.validate(&b, now_ms) {
            self.counters.batches_rejected += 1;
            return Err(e);
        }
        // Replays (same VM, seq not newer) are acknowledged and ignored.
        if let Some(seen) = self.last_seq.get(&b.vm) {
            if b.seq <= seen.seq {
                self.counters.batches_duplicate += 1;
                return Ok(false);
            }
        }
        self.last_seq.insert(
            b.vm.clone(),
            VmSeen {
                seq: b.seq,
                at_ms: now_ms,
                // Older filters do not send it; the window's version is then the best known.
                routing_version: b.routing_version.max(b.state_version).min(self.version),
            },
        );
        if self.last_seq.len() > 100_000 {
            self.last_seq
                .retain(|_, v| now_ms.saturating_sub(v.at_ms) < 600_000);
        }
        self.counters.batches_accepted += 1;
        let mut windows: BTreeMap<&str, Window> = BTreeMap::new();
        for c in &b.cells {
            let t = self
                .totals
                .entry((c.rollout.clone(), c.segment.clone()))
                .or_default();
            t.requests[track_idx(c.track)] += c.requests;
            t.errors[track_idx(c.track)] += c.errors;
            let w = windows.entry(c.rollout.as_str()).or_default();
            let agg = TrackAgg {
                requests: c.requests,
                errors: c.errors,
                latency_us: c.latency_us.clone(),
            };
            match c.track {
                Track::Stable => w.stable.merge(&agg),
                Track::Canary => w.canary.merge(&agg),
            }
            let share = self
                .shares_at(b.state_version, &c.rollout)
                .and_then(|s| s.get(&c.segment))
                .copied()
                .unwrap_or(0);
            w.expected_canary += c.requests as f64 * share as f64 / 10_000.0;
        }
        self.shadow_dirty.extend(b.shadow.keys().cloned());
        self.shadow_dirty
            .extend(b.samples.iter().map(|smp| smp.rollout.clone()));
        for (name, st) in &b.shadow {
            self.shadow_totals
                .entry(name.clone())
                .or_default()
                .merge(st);
            windows
                .entry(name.as_str())
                .or_default()
                .shadow
                .merge(&st.to_agg());
        }
        for smp in &b.samples {
            let ring = self.shadow_samples.entry(smp.rollout.clone()).or_default();
            ring.push_back(smp.clone());
            while ring.len() > SHADOW_SAMPLES_KEPT {
                ring.pop_front();
            }
        }
        let names: Vec<String> = windows.keys().map(|s| s.to_string()).collect();
        let mut windows: BTreeMap<String, Window> = windows
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for name in names {
            let Some(mut w) = windows.remove(&name) else {
                continue;
            };
            w.current_phase =
                b.state_version >= self.phase_version.get(&name).copied().unwrap_or(0);
            let Some(r) = self.rollouts.get_mut(&name) else {
                continue;
            };
            let before = (r.status, r.phase);
            let events = r.step(Input::Window(w), now_ms);
            self.apply(&name, before, events, now_ms)?;
        }
        Ok(true)
    }

    /// Feeds a shadow-comparison window (from the filters' shadow stats).
    pub fn ingest_shadow(
        &mut self,
        rollout: &str,
        shadow: dwcp_core::rollout::ShadowAgg,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let Some(r) = self.rollouts.get_mut(rollout) else {
            return Err(ApiError::UnknownRollout(rollout.to_string()));
        };
        let before = (r.status, r.phase);
        let w = Window {
            shadow,
            current_phase: true,
            ..Default::default()
        };
        let events = r.step(Input::Window(w), now_ms);
        self.apply(rollout, before, events, now_ms)
    }

    pub fn tick(&mut self, now_ms: u64) -> Result<(), ApiError> {
        let names: Vec<String> = self.rollouts.keys().cloned().collect();
        for name in names {
            let Some(r) = self.rollouts.get_mut(&name) else {
                continue;
            };
            let before = (r.status, r.phase);
            let events = r.step(Input::Tick, now_ms);
            self.apply(&name, before, events, now_ms)?;
        }
        if self.dirty {
            let all: Vec<&Rollout> = self.rollouts.values().collect();
            self.store.commit(&all, &[], self.durable(), now_ms)?;
            self.dirty = false;
        }
        if !self.shadow_dirty.is_empty() {
            let entries: Vec<(String, String)> = std::mem::take(&mut self.shadow_dirty)
                .into_iter()
                .map(|name| {
                    let saved = SavedShadow {
                        totals: self.shadow_totals.get(&name).cloned().unwrap_or_default(),
                        samples: self
                            .shadow_samples
                            .get(&name)
                            .map(|r| r.iter().cloned().collect())
                            .unwrap_or_default(),
                    };
                    let text = serde_json::to_string(&saved).unwrap_or_default();
                    (format!("shadow.{name}"), text)
                })
                .collect();
            self.store.put_meta(&entries)?;
        }
        Ok(())
    }

    pub fn command(
        &mut self,
        name: &str,
        command: Command,
        actor: &str,
        now_ms: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let Some(r) = self.rollouts.get_mut(name) else {
            return Err(ApiError::UnknownRollout(name.to_string()));
        };
        let before = (r.status, r.phase);
        let events = r.step(
            Input::Command {
                command,
                actor: actor.to_string(),
            },
            now_ms,
        );
        let rejected = events
            .iter()
            .find(|e| e.kind == "command_rejected")
            .map(|e| e.message.clone());
        self.apply(name, before, events.clone(), now_ms)?;
        match rejected {
            Some(m) => Err(ApiError::Conflict(m)),
            None => Ok(events),
        }
    }

    /// An engine trigger (5–8) fired for the rollout of that engine.
    pub fn engine_trigger(
        &mut self,
        name: &str,
        trigger: dwcp_core::signals::Trigger,
        detail: serde_json::Value,
        now_ms: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let Some(r) = self.rollouts.get_mut(name) else {
            return Err(ApiError::UnknownRollout(name.to_string()));
        };
        let before = (r.status, r.phase);
        let events = r.step(Input::EngineTrigger { trigger, detail }, now_ms);
        self.apply(name, before, events.clone(), now_ms)?;
        Ok(events)
    }

    /// An engine signal: counted, fed to the trigger window, and when a trigger fires every rollout of
    /// that engine is rolled back with the signal as evidence.
    pub fn on_engine_event(
        &mut self,
        event: &dwcp_core::signals::EngineEvent,
        now_ms: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let engine = event.engine().to_string();
        *self
            .engine_events
            .entry((engine.clone(), event.counter_name().to_string()))
            .or_insert(0) += 1;
        if let dwcp_core::signals::EngineEvent::MemorySample {
            used_bytes,
            budget_bytes,
            ..
        } = event
        {
            if *budget_bytes > 0 {
                self.engine_memory
                    .insert(engine.clone(), *used_bytes as f64 / *budget_bytes as f64);
            }
        }
        let Some(fired) = self.triggers.observe(event) else {
            return Ok(Vec::new());
        };
        let detail = serde_json::to_value(&fired).unwrap_or(serde_json::Value::Null);
        let mut out = Vec::new();
        for name in self
            .engine_rollouts
            .get(&engine)
            .cloned()
            .unwrap_or_default()
        {
            out.extend(self.engine_trigger(&name, fired.trigger, detail.clone(), now_ms)?);
        }
        Ok(out)
    }

    /// What every commit saves besides rollouts and events.
    fn durable(&self) -> Durable {
        Durable {
            version: self.version,
            kill_all: self.kill_all,
        }
    }

    /// Sets the global kill switch. Stored before it is served: if the commit fails, nothing changes.
    pub fn set_kill_all(&mut self, on: bool, actor: &str, now_ms: u64) -> Result<(), ApiError> {
        if self.kill_all != on {
            let e = Event {
                kind: if on { "kill_all" } else { "kill_all_off" }.into(),
                message: format!("global kill switch {}", if on { "on" } else { "off" }),
                actor: Some(actor.to_string()),
                verdict: None,
                evidence: serde_json::Value::Null,
            };
            let next = Durable {
                version: self.version + 1,
                kill_all: on,
            };
            let all: Vec<&Rollout> = self.rollouts.values().collect();
            self.store
                .commit(&all, &[("*".into(), now_ms, e)], next, now_ms)?;
            self.kill_all = on;
            self.version = next.version;
            self.record_shares();
        }
        Ok(())
    }

    pub fn events(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<crate::store::StoredEvent>, ApiError> {
        if !self.rollouts.contains_key(name) && name != "*" {
            return Err(ApiError::UnknownRollout(name.to_string()));
        }
        Ok(self.store.events(name, limit)?)
    }

    /// VMs that sent a batch in the last `window_ms`.
    pub fn active_vms(&self, now_ms: u64, window_ms: u64) -> usize {
        self.last_seq
            .values()
            .filter(|v| now_ms.saturating_sub(v.at_ms) <= window_ms)
            .count()
    }

    /// Notes a VM's empty batch (nothing to judge): it is alive and routes with `routing_version`.
    pub fn note_vm(&mut self, b: &Batch, now_ms: u64) {
        if b.vm.is_empty() || b.vm.len() > 128 || b.state_version > self.version {
            return;
        }
        let seen = VmSeen {
            seq: b.seq,
            at_ms: now_ms,
            routing_version: b.routing_version.max(b.state_version).min(self.version),
        };
        let room = self.last_seq.len() < 100_000;
        match self.last_seq.get_mut(&b.vm) {
            Some(v) if b.seq > v.seq => *v = seen,
            Some(_) => {}
            None if room => {
                self.last_seq.insert(b.vm.clone(), seen);
            }
            None => {}
        }
    }

    /// The filter VMs seen in the last `window_ms`, by id, with the state version each routes with.
    pub fn vms(&self, now_ms: u64, window_ms: u64) -> BTreeMap<&str, VmSeen> {
        self.last_seq
            .iter()
            .filter(|(_, v)| now_ms.saturating_sub(v.at_ms) <= window_ms)
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}
