//! Crediting requests to the state version they were routed under, and what the companion knows of each
//! filter VM.
//!
//! A filter labels a batch with the *oldest* state version it routed with during the batch window. The
//! ledger keeps the canary shares of the last [`VERSIONS_KEPT`] versions and the version at which each
//! rollout's current phase took effect, so a window is credited to the current phase only when every
//! request in it was routed under that phase, and its expected canary count uses the shares of the version
//! it was routed under (not today's).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// rollout → segment → canary share (basis points).
pub type SharesByRollout = BTreeMap<String, BTreeMap<String, u32>>;

/// Versions whose shares are remembered (a label older than all of them is credited a share of 0, as is
/// version 0: a filter without a state routes everything to stable).
pub const VERSIONS_KEPT: usize = 64;

/// Routing history: shares per version and the version each rollout's phase started at.
#[derive(Debug, Clone, Default)]
pub struct Credit {
    shares_by_version: VecDeque<(u64, SharesByRollout)>,
    phase_version: HashMap<String, u64>,
}

impl Credit {
    /// Remembers what filters route with from `version` on.
    pub fn record(&mut self, version: u64, shares: SharesByRollout) {
        self.shares_by_version.push_back((version, shares));
        while self.shares_by_version.len() > VERSIONS_KEPT {
            self.shares_by_version.pop_front();
        }
    }

    /// The rollout's phase took effect at `version`.
    pub fn phase_started(&mut self, rollout: &str, version: u64) {
        self.phase_version.insert(rollout.to_string(), version);
    }

    /// The canary share (bp) a filter applied to `segment` of `rollout` when routing under `version`.
    pub fn share_at(&self, version: u64, rollout: &str, segment: &str) -> u32 {
        self.shares_by_version
            .iter()
            .rev()
            .find(|(v, _)| *v <= version)
            .and_then(|(_, s)| s.get(rollout))
            .and_then(|s| s.get(segment))
            .copied()
            .unwrap_or(0)
    }

    /// Whether a window routed from `version` on belongs to the rollout's current phase.
    pub fn in_current_phase(&self, rollout: &str, version: u64) -> bool {
        version >= self.phase_version.get(rollout).copied().unwrap_or(0)
    }
}

/// What the companion knows of one filter VM (one per Envoy worker, plus the main-thread VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmSeen {
    pub seq: u64,
    pub at_ms: u64,
    /// The state version the VM routed with when it cut its last batch.
    pub routing_version: u64,
}

/// VMs remembered at most; beyond it, VMs silent for [`VM_FORGET_MS`] are forgotten.
pub const MAX_VMS: usize = 100_000;
/// A VM silent this long may be forgotten when the table is full.
pub const VM_FORGET_MS: u64 = 600_000;

/// The VM table: last sequence number per VM (replays are dropped) and the version each routes with.
#[derive(Debug, Clone, Default)]
pub struct Vms {
    seen: HashMap<String, VmSeen>,
}

impl Vms {
    /// Whether `seq` of `vm` was already taken.
    pub fn is_replay(&self, vm: &str, seq: u64) -> bool {
        self.seen.get(vm).is_some_and(|s| seq <= s.seq)
    }

    /// Records a taken batch (the caller checked it is not a replay).
    pub fn take(&mut self, vm: &str, seen: VmSeen) {
        self.seen.insert(vm.to_string(), seen);
        if self.seen.len() > MAX_VMS {
            self.seen
                .retain(|_, v| seen.at_ms.saturating_sub(v.at_ms) < VM_FORGET_MS);
        }
    }

    /// Notes a VM seen through an empty batch: newer sequence numbers only; never grows a full table.
    pub fn note(&mut self, vm: &str, seen: VmSeen) {
        let room = self.seen.len() < MAX_VMS;
        match self.seen.get_mut(vm) {
            Some(v) if seen.seq > v.seq => *v = seen,
            Some(_) => {}
            None if room => {
                self.seen.insert(vm.to_string(), seen);
            }
            None => {}
        }
    }

    /// VMs seen in the last `window_ms`.
    pub fn active(&self, now_ms: u64, window_ms: u64) -> BTreeMap<&str, VmSeen> {
        self.seen
            .iter()
            .filter(|(_, v)| now_ms.saturating_sub(v.at_ms) <= window_ms)
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}
