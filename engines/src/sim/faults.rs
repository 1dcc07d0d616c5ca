//! # The fault model shared by every consensus engine
//!
//! Probabilities are integers in parts per million so that boundaries are exact. Before GST a
//! message's delay is uniform in `[min_delay_ms, max_delay_ms]` (plus `reorder_extra_ms` for the
//! reordered ones); after GST it is at most `post_gst_max_delay_ms`, and drops, duplicates and
//! reorders stop. Partitions, one-way [`Cut`]s and crashes are explicit time windows and apply
//! before and after GST: a liveness claim "after GST" assumes the schedule heals them. A link with
//! `bandwidth_bytes_per_ms > 0` serialises its messages: each occupies the link for
//! `⌈size / bandwidth⌉` ms before its propagation delay starts.

use serde::{Deserialize, Serialize};

use super::protocol::NodeId;

/// Per-link behaviour before GST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFaults {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    pub reorder_ppm: u32,
    pub reorder_extra_ms: u64,
    /// 0 = unlimited.
    pub bandwidth_bytes_per_ms: u64,
}

impl LinkFaults {
    /// A perfect link with a fixed delay.
    pub fn reliable(delay_ms: u64) -> Self {
        Self {
            min_delay_ms: delay_ms,
            max_delay_ms: delay_ms,
            drop_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_extra_ms: 0,
            bandwidth_bytes_per_ms: 0,
        }
    }
}

/// During `[from_ms, until_ms)` messages between different groups are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub from_ms: u64,
    pub until_ms: u64,
    /// Nodes not listed form one more group together.
    pub groups: Vec<Vec<NodeId>>,
}

impl Partition {
    fn group_of(&self, node: NodeId) -> usize {
        self.groups
            .iter()
            .position(|g| g.contains(&node))
            .unwrap_or(self.groups.len())
    }

    /// Whether this partition separates `a` and `b` at `now`.
    pub fn separates(&self, now: u64, a: NodeId, b: NodeId) -> bool {
        now >= self.from_ms && now < self.until_ms && self.group_of(a) != self.group_of(b)
    }
}

/// During `[from_ms, until_ms)` messages from any node in `from` to any node in `to` are dropped
/// (one direction only: an asymmetric partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub from_ms: u64,
    pub until_ms: u64,
    pub from: Vec<NodeId>,
    pub to: Vec<NodeId>,
}

impl Cut {
    pub fn blocks(&self, now: u64, a: NodeId, b: NodeId) -> bool {
        now >= self.from_ms && now < self.until_ms && self.from.contains(&a) && self.to.contains(&b)
    }
}

/// A node crashes at `at_ms`; it recovers at `recover_at_ms` (crash-recover) or never (crash-stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    pub node: NodeId,
    pub at_ms: u64,
    pub recover_at_ms: Option<u64>,
    /// Buffered (unsynced) durable writes are lost in this crash.
    pub lose_unsynced: bool,
}

impl Crash {
    pub fn stop(node: NodeId, at_ms: u64) -> Self {
        Self {
            node,
            at_ms,
            recover_at_ms: None,
            lose_unsynced: false,
        }
    }

    pub fn recover(node: NodeId, at_ms: u64, recover_at_ms: u64) -> Self {
        Self {
            node,
            at_ms,
            recover_at_ms: Some(recover_at_ms),
            lose_unsynced: false,
        }
    }
}

/// The whole fault schedule of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultModel {
    pub link: LinkFaults,
    /// Per-link overrides `(from, to, faults)`; the first match wins.
    pub overrides: Vec<(NodeId, NodeId, LinkFaults)>,
    pub partitions: Vec<Partition>,
    pub cuts: Vec<Cut>,
    pub crashes: Vec<Crash>,
    pub gst_ms: u64,
    pub post_gst_max_delay_ms: u64,
}

impl FaultModel {
    /// No faults at all, 1 ms links, GST at 0.
    pub fn reliable() -> Self {
        Self {
            link: LinkFaults::reliable(1),
            overrides: Vec::new(),
            partitions: Vec::new(),
            cuts: Vec::new(),
            crashes: Vec::new(),
            gst_ms: 0,
            post_gst_max_delay_ms: 1,
        }
    }

    /// The link faults in force between `from` and `to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkFaults {
        self.overrides
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map(|(_, _, l)| *l)
            .unwrap_or(self.link)
    }

    /// Whether a message from `a` to `b` sent at `now` is dropped by a partition or cut.
    pub fn partitioned(&self, now: u64, a: NodeId, b: NodeId) -> bool {
        self.partitions.iter().any(|p| p.separates(now, a, b))
            || self.cuts.iter().any(|c| c.blocks(now, a, b))
    }
}
