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
    /// Monotonic version; filters ignore a state that is not newer than the one they hold.
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

/// What the companion answers to a telemetry POST and at `GET /v1/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub state: DynamicState,
}
