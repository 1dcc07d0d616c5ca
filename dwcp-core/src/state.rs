//! The dynamic state the companion serves to every filter: per rollout, the phase and the canary share of
//! each segment, plus kill switches. Versioned: a filter adopts a state only if its version is newer.
//!
//! A wire type: unknown fields are ignored (a newer companion may add some), and the companion answers a
//! filter with a state no newer than the filter's protocol (`dwcp_core::ledger::Ledger::state_for`):
//! filters of the first release parsed this strictly and would refuse any field they did not know.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicState {
    /// The protocol of this state ([`crate::telemetry::PROTOCOL_VERSION`] of the companion, capped at the
    /// filter's). Omitted at 0, so a state for a first-release filter has only the fields it knows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub protocol: u32,
    /// The companion's epoch: new on a fresh or restored database (and whenever a filter proves the
    /// database went back in time). Versions are ordered within one epoch only: a filter adopts any
    /// state of another epoch. Omitted at 0 (states for filters before protocol 2).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub epoch: u64,
    /// Monotonic within an epoch; filters ignore a state of their epoch that is older than theirs.
    pub version: u64,
    /// Global kill switch: every rollout serves stable.
    #[serde(default)]
    pub kill_all: bool,
    #[serde(default)]
    pub rollouts: BTreeMap<String, RolloutState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// Human-readable phase (`shadow`, `1%`, …, `rolled_back`), echoed in the decision header.
    pub phase: String,
    /// Canary share per segment in basis points (10 000 = 100 %). A segment not listed gets 0.
    #[serde(default)]
    pub segments: BTreeMap<String, u32>,
    /// Per-rollout kill switch: everyone on stable.
    #[serde(default)]
    pub killed: bool,
    /// Mirror eligible requests to the shadow cluster, sampled in basis points.
    #[serde(default)]
    pub shadow_bp: u32,
}

impl RolloutState {
    /// The canary share (bp) for a segment; 0 when killed or the segment is not listed.
    pub fn canary_bp(&self, segment: &str) -> u32 {
        if self.killed {
            return 0;
        }
        self.segments.get(segment).copied().unwrap_or(0)
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// The first protocol whose states carry an [`DynamicState::epoch`] (and whose batches carry theirs).
pub const EPOCH_PROTOCOL: u32 = 2;

impl DynamicState {
    /// This state as a filter speaking `protocol` may receive it: never newer than the filter's
    /// protocol, and without the fields that protocol does not know.
    pub fn for_protocol(&self, protocol: u32) -> DynamicState {
        let mut s = self.clone();
        s.protocol = s.protocol.min(protocol);
        if s.protocol < EPOCH_PROTOCOL {
            s.epoch = 0;
        }
        s
    }

    /// Whether a filter holding `held` should route with `self` instead: a state of another epoch
    /// always (the companion's database was replaced), of the same epoch only if not older.
    pub fn supersedes(&self, held: Option<&DynamicState>) -> bool {
        match held {
            None => true,
            Some(h) if h.epoch != self.epoch => true,
            Some(h) => self.version >= h.version,
        }
    }
}

/// What the companion answers to a telemetry POST and at `GET /v1/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub state: DynamicState,
}
