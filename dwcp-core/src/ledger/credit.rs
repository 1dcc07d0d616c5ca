//! Crediting requests to the state version they were routed under, and what the companion knows of each
//! filter VM.
//!
//! A filter labels a batch with the *oldest* state version it routed with during the batch window. The
//! ledger keeps the canary shares of the last [`VERSIONS_KEPT`] versions and the version at which each
//! rollout's current phase took effect, so a window is credited to the current phase only when every
//! request in it was routed under that phase, and its expected canary count uses the shares of the version
//! it was routed under (not today's).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

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

/// VMs remembered at most (the table is an LRU: beyond it the least recently seen VM is forgotten; a
/// forgotten VM's resent batch would be taken again, so the bound is far above any fleet's VM count
/// within one acknowledgement timeout).
pub const MAX_VMS: usize = 100_000;

/// The VM table: last sequence number per VM (replays are dropped) and the version each routes with.
/// Bounded (LRU by last contact); every operation is O(log n).
#[derive(Debug, Clone, Default)]
pub struct Vms {
    seen: HashMap<String, VmSeen>,
    /// (last contact, vm): the eviction order.
    by_age: BTreeSet<(u64, String)>,
    /// VMs whose taken sequence number changed since [`Vms::take_dirty`].
    dirty: HashSet<String>,
    /// VMs evicted since [`Vms::take_dirty`].
    evicted: Vec<String>,
    cap: Option<usize>,
}

impl Vms {
    /// A table bounded at `cap` VMs (tests; the ledger uses [`MAX_VMS`]).
    pub fn with_capacity_bound(cap: usize) -> Self {
        Vms {
            cap: Some(cap),
            ..Vms::default()
        }
    }

    fn cap(&self) -> usize {
        self.cap.unwrap_or(MAX_VMS)
    }

    /// Whether `seq` of `vm` was already taken.
    pub fn is_replay(&self, vm: &str, seq: u64) -> bool {
        self.seen.get(vm).is_some_and(|s| seq <= s.seq)
    }

    fn put(&mut self, vm: &str, seen: VmSeen) {
        if let Some(old) = self.seen.insert(vm.to_string(), seen) {
            self.by_age.remove(&(old.at_ms, vm.to_string()));
        }
        self.by_age.insert((seen.at_ms, vm.to_string()));
    }

    /// Records a taken batch (the caller checked it is not a replay). Returns how many VMs were
    /// evicted to stay within the bound.
    pub fn take(&mut self, vm: &str, seen: VmSeen) -> u64 {
        self.put(vm, seen);
        self.dirty.insert(vm.to_string());
        let mut evicted = 0;
        while self.seen.len() > self.cap() {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
            self.dirty.remove(&oldest);
            self.evicted.push(oldest);
            evicted += 1;
        }
        evicted
    }

    /// Notes a VM seen through an empty batch: newer sequence numbers only; never grows a full table.
    pub fn note(&mut self, vm: &str, seen: VmSeen) {
        let room = self.seen.len() < self.cap();
        match self.seen.get(vm) {
            Some(v) if seen.seq > v.seq => self.put(vm, seen),
            Some(_) => {}
            None if room => self.put(vm, seen),
            None => {}
        }
    }

    /// Number of VMs remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The VMs taken and evicted since the last call.
    pub fn take_dirty(&mut self) -> (Vec<(String, VmSeen)>, Vec<String>) {
        let dirty = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|vm| self.seen.get(&vm).map(|s| (vm, *s)))
            .collect();
        (dirty, std::mem::take(&mut self.evicted))
    }

    pub fn clear_dirty(&mut self) {
        self.dirty.clear();
        self.evicted.clear();
    }

    /// VMs seen in the last `window_ms`.
    pub fn active(&self, now_ms: u64, window_ms: u64) -> BTreeMap<&str, VmSeen> {
        let from = now_ms.saturating_sub(window_ms);
        self.by_age
            .range((from, String::new())..)
            .filter_map(|(_, vm)| self.seen.get_key_value(vm))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}

#[cfg(test)]
mod lru {
    use super::*;

    fn seen(seq: u64, at_ms: u64) -> VmSeen {
        VmSeen {
            seq,
            at_ms,
            routing_version: 1,
        }
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_least_recently_seen() {
        let mut v = Vms::with_capacity_bound(3);
        for (i, vm) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(v.take(vm, seen(1, i as u64)), 0);
        }
        // "a" is seen again: "b" is now the least recently seen.
        v.take("a", seen(2, 10));
        assert_eq!(v.take("d", seen(1, 11)), 1);
        assert_eq!(v.len(), 3);
        assert!(v.is_replay("a", 2) && v.is_replay("c", 1) && v.is_replay("d", 1));
        assert!(!v.is_replay("b", 1), "b was evicted");
        let (dirty, evicted) = v.take_dirty();
        assert_eq!(evicted, vec!["b".to_string()]);
        assert_eq!(dirty.len(), 3);
        assert_eq!(v.active(11, 1).len(), 2, "a at 10 and d at 11");
    }
}
