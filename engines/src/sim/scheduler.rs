//! # Pluggable delivery schedulers
//!
//! The fault model draws each message's delay at random; a [`Scheduler`] may then change it, to
//! search worst-case delivery orders (slow a leader, starve one replica, hold back one message
//! kind). Before GST it may pick any delay; after GST the simulator clamps its choice to the
//! bound `post_gst_max_delay_ms`, so a scheduler can never break the partial-synchrony promise
//! the liveness checker relies on.

use std::collections::BTreeSet;

use super::protocol::NodeId;

/// Chooses the delay of one message (in ms), given the fault model's proposal.
pub trait Scheduler {
    fn delay(
        &mut self,
        now: u64,
        from: NodeId,
        to: NodeId,
        kind: &'static str,
        proposed: u64,
    ) -> u64;
}

/// Leaves the fault model's delays alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl Scheduler for Random {
    fn delay(&mut self, _: u64, _: NodeId, _: NodeId, _: &'static str, proposed: u64) -> u64 {
        proposed
    }
}

/// Adds `extra_ms` to every message to or from `nodes` (of `kinds`, or of every kind when empty):
/// a slow leader, a starved replica, late votes.
#[derive(Debug, Clone, Default)]
pub struct Targeted {
    pub nodes: BTreeSet<NodeId>,
    pub kinds: BTreeSet<&'static str>,
    pub extra_ms: u64,
}

impl Scheduler for Targeted {
    fn delay(
        &mut self,
        _: u64,
        from: NodeId,
        to: NodeId,
        kind: &'static str,
        proposed: u64,
    ) -> u64 {
        let node_hit = self.nodes.contains(&from) || self.nodes.contains(&to);
        let kind_hit = self.kinds.is_empty() || self.kinds.contains(kind);
        if node_hit && kind_hit {
            proposed + self.extra_ms
        } else {
            proposed
        }
    }
}
