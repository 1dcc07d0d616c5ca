//! One VM's state, host-free so it is tested natively: the validated config, the dynamic state it routes
//! with, the telemetry accumulator, and the sync bookkeeping (batch in flight, sequence, freshness).
//!
//! Invariants: a state of the held epoch is adopted only if its version is not older than the one held,
//! a state of another epoch always (the companion's database was replaced); freshness is the age of the
//! last successful contact with the companion (by any VM of the process, via shared data); a batch whose
//! POST fails is resent unchanged (same `seq`, its identity) until the companion acknowledges it, and
//! nothing new is cut meanwhile (requests keep accumulating), so an outage loses no counts and a lost
//! acknowledgement counts nothing twice.

use dwcp_core::config::FilterConfig;
use dwcp_core::decision::{Decision, Freshness};
use dwcp_core::state::DynamicState;
use dwcp_core::telemetry::{Accumulator, Batch};
use serde::{Deserialize, Serialize};

/// Shared-data key holding the latest [`SharedState`] of the process.
pub const SHARED_STATE_KEY: &str = "dwcp.state.v1";
/// Shared-data key of the VM counter used to make VM ids unique.
pub const SHARED_VM_COUNTER_KEY: &str = "dwcp.vm_counter.v1";

/// What is kept in shared data: the state and when (host clock, ms) it was last confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedState {
    pub received_at_ms: u64,
    pub state: DynamicState,
}

/// Parses and validates the plugin config, and refuses test-only fields in a shipped module:
/// `test_panic_header` is accepted only by a module built with the `test-hooks` feature.
pub fn accept_config(bytes: &[u8]) -> Result<FilterConfig, String> {
    let cfg = FilterConfig::from_slice(bytes).map_err(|e| e.to_string())?;
    if cfg.test_panic_header.is_some() && !cfg!(feature = "test-hooks") {
        return Err(
            "test_panic_header: a test-only switch; this module was built without the test-hooks \
             feature"
                .into(),
        );
    }
    Ok(cfg)
}

pub struct Vm {
    pub cfg: FilterConfig,
    pub vm_id: String,
    pub state: Option<DynamicState>,
    pub received_at_ms: Option<u64>,
    pub freshness: Freshness,
    pub acc: Accumulator,
    pub seq: u64,
    /// The batch whose POST is in flight (token, batch).
    pub in_flight: Option<(u32, Batch)>,
    /// Last shared-data CAS seen, to skip re-parsing an unchanged state.
    pub shared_cas: Option<u32>,
    /// Oldest state version used to route requests of the current batch window: a batch that straddles
    /// a state change is labelled with the older version, so the companion never credits requests
    /// routed under an old phase to a new one.
    pub window_version: u64,
    /// The epoch of `window_version`.
    pub window_epoch: u64,
    /// A batch whose POST failed, resent unchanged at the next sync.
    pub unsent: Option<Batch>,
    /// Shadow copies queued and in flight.
    pub mirror: crate::shadow::Mirror,
}

impl Vm {
    pub fn new(cfg: FilterConfig, vm_id: String) -> Self {
        let acc = Accumulator::new(
            cfg.rollouts.iter().map(|r| r.name.clone()).collect(),
            cfg.segments.clone(),
        );
        Self {
            cfg,
            vm_id,
            state: None,
            received_at_ms: None,
            freshness: Freshness::Never,
            acc,
            seq: 0,
            in_flight: None,
            shared_cas: None,
            window_version: 0,
            window_epoch: 0,
            unsent: None,
            mirror: crate::shadow::Mirror::default(),
        }
    }

    pub fn state_version(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.version)
    }

    pub fn state_epoch(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.epoch)
    }

    /// Adopts `state` confirmed at `at_ms` unless it is older than the held one of the same epoch.
    pub fn adopt(&mut self, state: DynamicState, at_ms: u64) -> bool {
        if !state.supersedes(self.state.as_ref()) {
            return false;
        }
        if state.epoch != self.state_epoch() {
            // Another epoch: the held confirmation time says nothing about this state.
            self.received_at_ms = None;
        }
        self.received_at_ms = Some(self.received_at_ms.map_or(at_ms, |r| r.max(at_ms)));
        self.state = Some(state);
        true
    }

    /// Adopts a state read from shared data.
    pub fn adopt_shared(&mut self, bytes: &[u8]) -> bool {
        match serde_json::from_slice::<SharedState>(bytes) {
            Ok(s) => self.adopt(s.state, s.received_at_ms),
            Err(_) => false,
        }
    }

    /// Recomputes freshness at `now_ms`.
    pub fn refresh(&mut self, now_ms: u64) {
        self.freshness = match self.received_at_ms {
            None => Freshness::Never,
            Some(at) if now_ms.saturating_sub(at) > self.cfg.companion.staleness_ms => {
                Freshness::Stale
            }
            Some(_) => Freshness::Fresh,
        };
    }

    /// Cuts the next batch: what was recorded since the last cut (exported to Envoy's counters once).
    pub fn cut_batch(&mut self, now_ms: u64) -> Batch {
        self.seq += 1;
        let (v, e) = (self.window_version, self.window_epoch);
        self.window_version = self.state_version();
        self.window_epoch = self.state_epoch();
        let mut b = self.acc.take_batch(&self.vm_id, self.seq, v, now_ms);
        b.epoch = e;
        b.routing_version = self.state_version();
        b
    }

    /// The batch to POST at this sync: the unacknowledged one again, unchanged (same identity), or a
    /// newly cut one (`true`: new, its counts are exported to Envoy's counters).
    pub fn next_batch(&mut self, now_ms: u64) -> (Batch, bool) {
        match self.unsent.take() {
            Some(b) => (b, false),
            None => (self.cut_batch(now_ms), true),
        }
    }

    /// The POST of `batch` failed or its answer was lost (the companion may or may not have taken it):
    /// resend it unchanged at the next exchange; the companion recognises it by (`vm`, `seq`).
    pub fn keep_unsent(&mut self, batch: Batch) {
        self.unsent = Some(batch);
    }

    /// Handles the companion's answer to the batch in flight. Returns the bytes to publish to shared
    /// data when a state was adopted.
    pub fn on_sync_response(
        &mut self,
        token: u32,
        status: Option<u16>,
        body: &[u8],
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        let batch = match self.in_flight.take() {
            Some((t, b)) if t == token => b,
            other => {
                self.in_flight = other;
                return None;
            }
        };
        let parsed = match status {
            Some(200) => serde_json::from_slice::<dwcp_core::state::SyncResponse>(body).ok(),
            _ => None,
        };
        match parsed {
            Some(resp) => {
                self.acc.count(dwcp_core::names::SYNC_OK);
                if self.adopt(resp.state.clone(), now_ms) {
                    // Route with it from this very request on (not from the next tick).
                    self.refresh(now_ms);
                    let shared = SharedState {
                        received_at_ms: now_ms,
                        state: resp.state,
                    };
                    return serde_json::to_vec(&shared).ok();
                }
                None
            }
            None => {
                // 4xx: the companion refused the batch (bad token, bad data): resending will not help.
                if !matches!(status, Some(400..=499)) {
                    self.keep_unsent(batch);
                }
                self.acc.count(dwcp_core::names::SYNC_FAILED);
                None
            }
        }
    }

    /// Records the outcome of a request routed by `d`.
    /// Records one answered request. `client_aborted`: the client reset or disconnected before an
    /// answer — its latency still counts (a version slow enough to make clients give up is caught by
    /// the latency test), but not as an error: a client cannot abort a good canary by resetting.
    pub fn record(&mut self, d: &Decision, status: u16, latency_us: u64, client_aborted: bool) {
        let error =
            !client_aborted && dwcp_core::route::is_error(status, self.cfg.count_4xx_as_errors);
        let bucket = d
            .bucket
            .filter(|_| d.why == dwcp_core::decision::Why::Bucketed);
        self.acc
            .record(d.rollout, d.track, d.segment, bucket, error, latency_us);
    }
}

#[cfg(test)]
mod tests;
