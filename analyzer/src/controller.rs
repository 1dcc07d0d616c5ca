//! The companion's I/O shell around [`dwcp_core::ledger::Ledger`]: it opens the SQLite store, feeds the
//! ledger batches, ticks, commands and engine signals with the wall-clock time the caller read, and
//! persists what each call returns (rollout snapshots and events with their evidence, in one transaction,
//! before the answer is served). Every decision is the ledger's or the rollout machine's. Telemetry is
//! applied in memory ([`Controller::apply`]) and stored by group commit (`crate::group`): `stage`
//! serializes what is pending, the write runs without the lock, `finish` serves what it stored.
//! (Over 400 lines: the commit paths — staged, direct, kill switch — share their pending state here.)

use crate::config::Config;
use crate::status::{Status, StatusCell};
use crate::store::{Durable, Prepared, Store, StoreError, VmRows};
use dwcp_core::ledger::{self, BatchError, Definition, Ingested, Ledger, SavedShadow, Stepped};
use dwcp_core::rollout::{Command, Event, EventKind, Rollout};
use dwcp_core::signals::{EngineEvent, Trigger, TriggerWindow};
use dwcp_core::state::DynamicState;
use dwcp_core::telemetry::Batch;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub use dwcp_core::ledger::{VmSeen, SHADOW_SAMPLES_KEPT};

/// A request the API refuses, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    BadBatch(#[from] BatchError),
    #[error("unknown rollout {0:?}")]
    UnknownRollout(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The companion cannot store its state (it routes everyone to stable meanwhile).
    #[error("not ready: {0}")]
    Unavailable(String),
}

/// Counts of the HTTP shell (the ledger keeps the telemetry counts).
#[derive(Debug, Default, Clone)]
pub struct ShellCounters {
    pub auth_failures: u64,
    /// Batch-processing (ingest + judgment) time, µs.
    pub ingest_us: dwcp_core::histogram::Histogram,
}

/// Changes applied in memory that the next commit stores.
#[derive(Debug, Default)]
struct Pending {
    names: BTreeSet<String>,
    events: Vec<(String, u64, Event)>,
    meta: Vec<(String, String)>,
    /// Batches accepted since the last commit.
    batches: u64,
}

/// A commit serialized under the lock (`Controller::stage`), to be written with or without it.
pub struct Staged {
    ticket: u64,
    prepared: Prepared,
    /// Extra `meta` rows (kept for the next commit if this one fails).
    meta: Vec<(String, String)>,
    state: DynamicState,
    status: Status,
    batches: u64,
}

impl Staged {
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The batches this commit stores.
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

/// The engines the companion hosts: their event counters exist (at 0) from the start.
pub const HOSTED_ENGINES: [&str; 6] = [
    "manager",
    "compression",
    "pbft",
    "tpbft",
    "probft",
    "bullshark",
];

pub struct Controller {
    pub ledger: Ledger,
    /// The state served to filters: derived from what the last successful commit stored, never from
    /// unstored memory (after a failed commit: everything on stable, see [`Controller::ready`]).
    served: DynamicState,
    /// Why the last commit failed (none: ready).
    degraded: Option<String>,
    /// VM rows not yet stored (a failed commit keeps them for the next one).
    pending_vms: VmRows,
    /// Failed SQLite commits since the start.
    pub commit_failures: u64,
    pub counters: ShellCounters,
    /// The writer connection: used under the controller's lock, or by a group's leader without it
    /// while `group.writing` (`crate::group`).
    store: Arc<Mutex<Store>>,
    /// Group commit's tickets (`crate::group`).
    pub group: crate::group::Tickets,
    /// What the next commit stores besides the dirty VM rows (applied batches' steps, new meta).
    pending: Pending,
    /// The snapshot of the last commit, for the status routes.
    status: StatusCell,
    /// Rollout snapshots changed without an event (windows merged): flushed on the tick.
    dirty: bool,
    /// Rollouts whose shadow totals or samples changed since they were last saved.
    shadow_dirty: BTreeSet<String>,
    /// engine name → rollouts that deliver it (their triggers 5–8).
    engine_rollouts: HashMap<String, Vec<String>>,
    triggers: TriggerWindow,
    /// (engine, event kind label) → count.
    pub engine_events: BTreeMap<(String, String), u64>,
    /// engine → last memory used/budget ratio.
    pub engine_memory: BTreeMap<String, f64>,
    /// Redaction and retention of mismatch samples (`crate::redact`).
    samples: crate::redact::SampleConfig,
    /// The audit log's row bound, applied on the tick at most every `PRUNE_EVERY_MS`.
    retention: crate::store::RetentionConfig,
    last_prune_ms: u64,
    /// Audit-log rows pruned since the start.
    pub events_pruned: u64,
    /// Since when (ms), and how many commits failed, while the store is failing: recorded as a
    /// `store_commit_failed` event by the first commit that succeeds.
    outage: Option<(u64, u64, String)>,
    /// rollout → arrival time of each kept sample (aligned with the tail of the ledger's ring).
    sample_arrivals: BTreeMap<String, VecDeque<u64>>,
}

impl Controller {
    pub fn open(cfg: &Config, now_ms: u64) -> Result<Controller, StoreError> {
        let store = Store::open(&cfg.db)?;
        let stored = store
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
        let defs: Vec<Definition> = cfg
            .rollouts
            .iter()
            .map(|d| Definition {
                spec: d.spec.clone(),
                autostart: d.autostart,
            })
            .collect();
        let (rollouts, started) = ledger::reconcile(stored, &defs, now_ms);
        let mut ledger = Ledger::new(rollouts, version, kill_all, cfg.max_future_skew_ms);
        // The epoch: new on a fresh (or restored) database, kept across restarts otherwise.
        let epoch = match store.meta("epoch")?.and_then(|v| v.parse::<u64>().ok()) {
            Some(e) => e,
            None => new_epoch(),
        };
        ledger.set_epoch(epoch);
        // What earlier runs took of each VM: a batch resent after a lost answer is still recognised.
        for (vm, seen) in store.load_vms()? {
            ledger.restore_vm(&vm, seen);
        }
        // Telemetry acknowledged but not yet judged (the open time slices) survives a restart.
        if let Some(text) = store.meta("slices")? {
            ledger.restore_slices(&text);
        }
        // Shadow totals and the mismatch samples survive a restart (saved on the tick).
        let names: Vec<String> = ledger.rollouts.keys().cloned().collect();
        for name in names {
            if let Some(text) = store.meta(&format!("shadow.{name}"))? {
                if let Ok(saved) = serde_json::from_str::<SavedShadow>(&text) {
                    ledger.restore_shadow(&name, saved);
                }
            }
        }
        let mut engine_rollouts: HashMap<String, Vec<String>> = HashMap::new();
        for def in &cfg.rollouts {
            if let Some(engine) = &def.engine {
                engine_rollouts
                    .entry(engine.clone())
                    .or_default()
                    .push(def.spec.name.clone());
            }
        }
        let mut engine_events = BTreeMap::new();
        for engine in HOSTED_ENGINES {
            for kind in dwcp_core::names::ENGINE_EVENT_KINDS {
                engine_events.insert((engine.to_string(), kind.to_string()), 0);
            }
        }
        let served = ledger.state();
        let mut c = Controller {
            ledger,
            served,
            degraded: None,
            pending_vms: VmRows::default(),
            commit_failures: 0,
            counters: ShellCounters::default(),
            store: Arc::new(Mutex::new(store)),
            group: Default::default(),
            pending: Pending::default(),
            status: StatusCell::default(),
            dirty: false,
            shadow_dirty: BTreeSet::new(),
            engine_rollouts,
            triggers: TriggerWindow::default(),
            engine_events,
            engine_memory: BTreeMap::new(),
            samples: cfg.samples.clone(),
            sample_arrivals: BTreeMap::new(),
            retention: cfg.store.clone(),
            last_prune_ms: 0,
            events_pruned: 0,
            outage: None,
        };
        // Samples restored from the store are aged from now (their arrival was not saved).
        for (name, ring) in &c.ledger.shadow_samples {
            c.sample_arrivals
                .insert(name.clone(), ring.iter().map(|_| now_ms).collect());
        }
        c.retain_samples(now_ms);
        let events: Vec<(String, u64, Event)> =
            started.into_iter().map(|(n, e)| (n, now_ms, e)).collect();
        c.store().put_meta(&[("epoch".into(), epoch.to_string())])?;
        let all: Vec<&Rollout> = c.ledger.rollouts.values().collect();
        c.store().commit(&all, &events, c.durable(), now_ms)?;
        c.served = c.ledger.state();
        c.publish_all();
        Ok(c)
    }

    /// Readiness: `Err(why)` after a failed commit, until a commit succeeds again.
    pub fn ready(&self) -> Result<(), String> {
        match &self.degraded {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// The state for a filter speaking `protocol` (what is stored, never newer than the filter's
    /// protocol).
    pub fn state_for(&self, protocol: u32) -> DynamicState {
        self.served.for_protocol(protocol)
    }

    /// The writer connection (this thread must own the store: see `crate::group`).
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer connection, for a group's leader to write without the controller's lock.
    pub fn store_handle(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// The status snapshot cell the last commit published to.
    pub fn status_cell(&self) -> StatusCell {
        self.status.clone()
    }

    /// Commits `rollouts` (by name), `events` and everything pending (batches applied, VM rows) now,
    /// on this thread; then serves the stored state. On failure: not ready, everyone routed to
    /// stable (a new version), and the reason logged.
    fn commit_now(
        &mut self,
        names: &[String],
        events: &[(String, u64, Event)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.pending.names.extend(names.iter().cloned());
        self.pending.events.extend_from_slice(events);
        let staged = match self.stage(now_ms) {
            Ok(s) => s,
            Err(e) => {
                let why = e.to_string();
                self.stage_failed(e, now_ms);
                return Err(StoreError::Writer(why));
            }
        };
        let written = self.store().write(&staged.prepared);
        self.finish(staged, written, now_ms)
    }

    /// Serializes everything pending into one commit (the ticket it stores: every change applied so
    /// far). Rollouts: those named, or all while recovering from a failed commit.
    pub fn stage(&mut self, now_ms: u64) -> Result<Staged, StoreError> {
        let (taken, evicted) = self.ledger.take_dirty_vms();
        self.pending_vms.taken.extend(taken);
        self.pending_vms.evicted.extend(evicted);
        let names = std::mem::take(&mut self.pending.names);
        let mut events = std::mem::take(&mut self.pending.events);
        let meta = std::mem::take(&mut self.pending.meta);
        let batches = std::mem::take(&mut self.pending.batches);
        let rollouts: Vec<&Rollout> = if self.degraded.is_some() {
            // Recovering: everything held in memory since the failure is stored now.
            self.ledger.rollouts.values().collect()
        } else {
            names
                .iter()
                .filter_map(|n| self.ledger.rollouts.get(n))
                .collect()
        };
        // The outage's own event, stored by the commit that ends it.
        if let Some((since, failed, why)) = &self.outage {
            events.push((
                "*".into(),
                now_ms,
                outage_event(*since, *failed, why, now_ms),
            ));
        }
        let mut prepared = Prepared::new(
            &rollouts,
            &events,
            self.durable(),
            VmRows::default(),
            now_ms,
        )?;
        prepared.meta.extend(meta.iter().cloned());
        // The status snapshot: the previous one with the rollouts this commit stores.
        let prev = self.status.get();
        let mut snap = prev.rollouts.clone();
        let mut shadow = prev.shadow.clone();
        for r in &rollouts {
            let name = r.name().to_string();
            shadow.insert(name.clone(), Arc::new(self.ledger.saved_shadow(&name)));
            snap.insert(name, Arc::new((*r).clone()));
        }
        let status = Status::new(self.ledger.version, self.ledger.kill_all, snap, shadow);
        prepared.vms = std::mem::take(&mut self.pending_vms);
        Ok(Staged {
            ticket: self.group.applied,
            prepared,
            meta,
            state: self.ledger.state(),
            status,
            batches,
        })
    }

    /// A commit that could not be staged (a record did not serialize): handled as a failed write.
    pub fn stage_failed(&mut self, e: StoreError, now_ms: u64) {
        let ticket = self.group.applied;
        let _ = self.failed(ticket, e, now_ms);
    }

    /// Settles a staged commit once written: serves and publishes what it stored, or (failed) keeps
    /// its VM rows and meta for the next commit and serves the last stored state with everyone on
    /// stable.
    pub fn finish(
        &mut self,
        staged: Staged,
        written: Result<(), StoreError>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match written {
            Ok(()) => {
                self.group.durable = self.group.durable.max(staged.ticket);
                self.outage = None;
                if let Some(why) = self.degraded.take() {
                    tracing::warn!(was = %why, "storage recovered: serving the stored state again");
                }
                self.served = staged.state;
                self.status.publish(staged.status);
                Ok(())
            }
            Err(e) => {
                // Older rows first: a VM's later row (taken meanwhile) overwrites its earlier one.
                let mut vms = staged.prepared.vms;
                vms.taken.append(&mut self.pending_vms.taken);
                vms.evicted.append(&mut self.pending_vms.evicted);
                self.pending_vms = vms;
                let mut meta = staged.meta;
                meta.append(&mut self.pending.meta);
                self.pending.meta = meta;
                self.failed(staged.ticket, e, now_ms)
            }
        }
    }

    fn failed(&mut self, ticket: u64, e: StoreError, now_ms: u64) -> Result<(), StoreError> {
        self.group.failed = self.group.failed.max(ticket);
        self.commit_failures += 1;
        if self.degraded.is_none() {
            tracing::error!(error = %e, "commit failed: not ready, every filter routed to stable until a commit succeeds");
        }
        self.degraded = Some(format!("commit failed: {e}"));
        let outage = self.outage.get_or_insert((now_ms, 0, e.to_string()));
        outage.1 += 1;
        // Nothing unstored is served: the last stored state, with everyone on stable.
        self.ledger.bump_version(true);
        let mut s = self.served.clone();
        s.kill_all = true;
        s.version = self.ledger.version;
        s.epoch = self.ledger.epoch;
        self.served = s;
        Err(e)
    }

    /// Publishes every rollout as stored (after a commit of all of them).
    fn publish_all(&self) {
        self.status.publish(Status::new(
            self.ledger.version,
            self.ledger.kill_all,
            self.ledger
                .rollouts
                .iter()
                .map(|(n, r)| (n.clone(), Arc::new(r.clone())))
                .collect(),
            self.ledger
                .rollouts
                .keys()
                .map(|n| (n.clone(), Arc::new(self.ledger.saved_shadow(n))))
                .collect(),
        ));
    }

    /// The current state version.
    pub fn version(&self) -> u64 {
        self.ledger.version
    }

    /// Whether the global kill switch is on.
    pub fn kill_all(&self) -> bool {
        self.ledger.kill_all
    }

    /// The dynamic state served to filters (current protocol): the stored one.
    pub fn state(&self) -> DynamicState {
        self.served.clone()
    }

    /// A read-only connection of its own to the database (the read routes' pool).
    pub fn reader(&self) -> Result<crate::store::Reader, StoreError> {
        self.store().reader()
    }

    /// Applies the audit log's row bound now (the tick does it every `PRUNE_EVERY_MS`).
    pub fn prune_events(&mut self, now_ms: u64) -> Result<u64, StoreError> {
        self.last_prune_ms = now_ms;
        let n = self.store().prune_events(&self.retention)?;
        if n > 0 {
            self.events_pruned += n;
            tracing::info!(
                pruned = n,
                kept = self.retention.max_events,
                "audit log pruned"
            );
        }
        Ok(n)
    }

    /// Caps the database's growth (a disk that fills up), for the fail-safe tests.
    pub fn limit_store_growth(&self, extra_pages: u64) -> Result<(), StoreError> {
        self.store().limit_growth(extra_pages)
    }

    /// What every commit saves besides rollouts and events.
    fn durable(&self) -> Durable {
        Durable {
            version: self.ledger.version,
            kill_all: self.ledger.kill_all,
            slices: Some(self.ledger.open_slices_json()),
        }
    }

    /// Persists what steps produced: a step with events or a routing change is committed now (before it
    /// is served); one that only merged counts is flushed on the tick unless `all` (telemetry: the
    /// batch and its identity are stored before it is acknowledged).
    fn persist(&mut self, stepped: Vec<Stepped>, all: bool, now_ms: u64) -> Result<(), StoreError> {
        let mut names = Vec::new();
        let mut events = Vec::new();
        for s in stepped {
            for e in &s.events {
                tracing::info!(rollout = %s.rollout, kind = %e.kind, actor = ?e.actor, "{}", e.message);
            }
            if !all && !s.routing_changed && s.events.is_empty() {
                self.dirty = true;
                continue;
            }
            events.extend(s.events.into_iter().map(|e| (s.rollout.clone(), now_ms, e)));
            names.push(s.rollout);
        }
        if names.is_empty() && events.is_empty() && !all && self.degraded.is_none() {
            return Ok(());
        }
        self.commit_now(&names, &events, now_ms)
    }

    /// Ingests one batch and commits it at once; returns whether it was new (false: a replay,
    /// ignored). Answered only once the batch and its identity are stored (a resent batch is
    /// acknowledged only when stored, too). The API stores batches by group commit instead.
    pub fn ingest(&mut self, b: Batch, now_ms: u64) -> Result<bool, ApiError> {
        let before = self.ledger.counters.batches_accepted;
        let ticket = self.apply(b, now_ms)?;
        if ticket > self.group.durable {
            if let Err(e) = self.commit_now(&[], &[], now_ms) {
                return Err(ApiError::Unavailable(e.to_string()));
            }
        }
        Ok(self.ledger.counters.batches_accepted > before)
    }

    /// Validates and applies one batch in memory, to be stored by the next commit; returns the ticket
    /// a commit has to store before the batch is acknowledged. A replay is dropped: its ticket is the
    /// last one applied (it may be a batch applied but not yet stored).
    pub fn apply(&mut self, mut b: Batch, now_ms: u64) -> Result<u64, ApiError> {
        // Samples are redacted before anything keeps them (ring, SQLite, event evidence).
        let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
        for smp in &mut b.samples {
            self.samples.redact(smp);
            *arrived.entry(smp.rollout.clone()).or_default() += 1;
        }
        let same_epoch_future =
            b.epoch != 0 && b.epoch == self.ledger.epoch && b.state_version > self.ledger.version;
        if same_epoch_future {
            // A filter holds a newer state of this epoch than this database: it went back in time
            // (restored from a backup). A new epoch makes every filter adopt this database's state.
            let epoch = new_epoch();
            tracing::warn!(
                old = self.ledger.epoch,
                new = epoch,
                "a filter holds a newer state than the database (restored?): new epoch"
            );
            self.ledger.set_epoch(epoch);
            self.pending.meta.push(("epoch".into(), epoch.to_string()));
            self.group.applied += 1;
        }
        match self.ledger.ingest(b, now_ms)? {
            Ingested::Duplicate => {
                if let Some(why) = &self.degraded {
                    return Err(ApiError::Unavailable(why.clone()));
                }
                Ok(self.group.applied)
            }
            Ingested::Accepted {
                stepped,
                shadow_touched,
            } => {
                for (name, n) in arrived {
                    if self.ledger.shadow_samples.contains_key(&name) {
                        let a = self.sample_arrivals.entry(name).or_default();
                        a.extend(std::iter::repeat_n(now_ms, n));
                    }
                }
                self.retain_samples(now_ms);
                self.shadow_dirty.extend(shadow_touched);
                for s in stepped {
                    for e in &s.events {
                        tracing::info!(rollout = %s.rollout, kind = %e.kind, actor = ?e.actor, "{}", e.message);
                    }
                    let name = s.rollout;
                    self.pending
                        .events
                        .extend(s.events.into_iter().map(|e| (name.clone(), now_ms, e)));
                    self.pending.names.insert(name);
                }
                self.pending.batches += 1;
                self.group.applied += 1;
                Ok(self.group.applied)
            }
        }
    }

    /// Notes a VM's empty batch (nothing to judge): it is alive and routes with `routing_version`.
    pub fn note_vm(&mut self, b: &Batch, now_ms: u64) {
        self.ledger.note_vm(b, now_ms);
    }

    /// Keeps at most `samples.max_per_rollout` samples per rollout, none older than
    /// `samples.max_age_seconds`; a rollout whose samples changed is saved at the next tick.
    fn retain_samples(&mut self, now_ms: u64) {
        let max_age_ms = self.samples.max_age_seconds.saturating_mul(1000);
        for (name, ring) in self.ledger.shadow_samples.iter_mut() {
            let arrivals = self.sample_arrivals.entry(name.clone()).or_default();
            while arrivals.len() > ring.len() {
                arrivals.pop_front();
            }
            while arrivals.len() < ring.len() {
                arrivals.push_front(now_ms);
            }
            let before = ring.len();
            while ring.len() > self.samples.max_per_rollout
                || (max_age_ms > 0
                    && arrivals
                        .front()
                        .is_some_and(|t| now_ms.saturating_sub(*t) > max_age_ms))
            {
                ring.pop_front();
                arrivals.pop_front();
            }
            if ring.len() != before {
                self.shadow_dirty.insert(name.clone());
            }
        }
    }

    pub fn tick(&mut self, now_ms: u64) -> Result<(), ApiError> {
        self.retain_samples(now_ms);
        let stepped = self.ledger.tick(now_ms);
        if self.degraded.is_some() {
            // Try to recover: a new version with the real routing, stored before it is served.
            self.ledger.bump_version(false);
        }
        self.persist(stepped, false, now_ms)?;
        if self.dirty {
            let all: Vec<String> = self.ledger.rollouts.keys().cloned().collect();
            self.commit_now(&all, &[], now_ms)?;
            self.dirty = false;
        }
        if now_ms.saturating_sub(self.last_prune_ms) >= PRUNE_EVERY_MS && self.degraded.is_none() {
            if let Err(e) = self.prune_events(now_ms) {
                tracing::error!(error = %e, "audit log not pruned");
            }
        }
        if !self.shadow_dirty.is_empty() {
            let entries: Vec<(String, String)> = std::mem::take(&mut self.shadow_dirty)
                .into_iter()
                .map(|name| {
                    let text =
                        serde_json::to_string(&self.ledger.saved_shadow(&name)).unwrap_or_default();
                    (format!("shadow.{name}"), text)
                })
                .collect();
            self.store().put_meta(&entries)?;
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
        let stepped = self
            .ledger
            .command(name, command, actor, now_ms)
            .ok_or_else(|| ApiError::UnknownRollout(name.to_string()))?;
        let events = stepped.events.clone();
        let rejected = events
            .iter()
            .find(|e| e.kind == EventKind::CommandRejected)
            .map(|e| e.message.clone());
        self.persist(vec![stepped], false, now_ms)?;
        match rejected {
            Some(m) => Err(ApiError::Conflict(m)),
            None => Ok(events),
        }
    }

    /// An engine trigger (5–8) fired for the rollout of that engine.
    pub fn engine_trigger(
        &mut self,
        name: &str,
        trigger: Trigger,
        detail: serde_json::Value,
        now_ms: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let stepped = self
            .ledger
            .engine_trigger(name, trigger, detail, now_ms)
            .ok_or_else(|| ApiError::UnknownRollout(name.to_string()))?;
        let events = stepped.events.clone();
        self.persist(vec![stepped], false, now_ms)?;
        Ok(events)
    }

    /// An engine signal: counted, fed to the trigger window, and when a trigger fires every rollout of
    /// that engine is rolled back with the signal as evidence.
    pub fn on_engine_event(
        &mut self,
        event: &EngineEvent,
        now_ms: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let engine = event.engine().to_string();
        *self
            .engine_events
            .entry((engine.clone(), event.kind_label().to_string()))
            .or_insert(0) += 1;
        if let EngineEvent::MemorySample {
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

    /// Sets the global kill switch. Stored before it is served: if the commit fails, nothing changes.
    pub fn set_kill_all(&mut self, on: bool, actor: &str, now_ms: u64) -> Result<(), ApiError> {
        if let Some((e, next_version)) = self.ledger.kill_all_event(on, actor) {
            // Batches applied but not yet stored go first (their VM rows with them).
            if self.group.applied > self.group.durable {
                self.commit_now(&[], &[], now_ms)?;
            }
            let next = Durable {
                version: next_version,
                kill_all: on,
                slices: None,
            };
            let all: Vec<&Rollout> = self.ledger.rollouts.values().collect();
            self.store()
                .commit(&all, &[("*".into(), now_ms, e)], next, now_ms)?;
            self.ledger.set_kill_all(on);
            if self.degraded.is_none() {
                self.served = self.ledger.state();
            }
            self.publish_all();
        }
        Ok(())
    }

    pub fn events(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<crate::store::StoredEvent>, ApiError> {
        if !self.ledger.rollouts.contains_key(name) && name != "*" {
            return Err(ApiError::UnknownRollout(name.to_string()));
        }
        Ok(self.store().events(name, limit)?)
    }

    /// One page of a rollout's events on the writer's connection (the API reads on its own).
    pub fn events_page(
        &self,
        name: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<crate::store::Page, ApiError> {
        Ok(self.store().events_page(name, before, limit)?)
    }

    /// VMs that sent a batch in the last `window_ms`.
    pub fn active_vms(&self, now_ms: u64, window_ms: u64) -> usize {
        self.ledger.vms(now_ms, window_ms).len()
    }

    /// The filter VMs seen in the last `window_ms`, by id, with the state version each routes with.
    pub fn vms(&self, now_ms: u64, window_ms: u64) -> BTreeMap<&str, VmSeen> {
        self.ledger.vms(now_ms, window_ms)
    }
}

/// How often the tick applies the audit log's row bound.
pub const PRUNE_EVERY_MS: u64 = 60_000;

/// The `store_commit_failed` event: when the store failed, how often, why, and for how long.
fn outage_event(since_ms: u64, failed: u64, why: &str, now_ms: u64) -> Event {
    Event {
        kind: EventKind::StoreCommitFailed,
        message: format!(
            "{failed} commit(s) failed over {} ms ({why}); every filter was routed to stable meanwhile",
            now_ms.saturating_sub(since_ms)
        ),
        actor: None,
        verdict: None,
        evidence: serde_json::json!({
            "since_ms": since_ms,
            "recovered_ms": now_ms,
            "failed_commits": failed,
            "first_error": why,
        }),
    }
}

/// A new random epoch (53 bits, so JSON readers without 64-bit integers keep it exact; never 0).
fn new_epoch() -> u64 {
    (rand::random::<u64>() & ((1 << 53) - 1)).max(1)
}
