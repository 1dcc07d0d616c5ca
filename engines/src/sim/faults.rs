//! # The fault model (ENGINES.md, shared foundation)
//!
//! Probabilities are integers in parts per million so that boundaries are exact. Before GST a
//! message's delay is uniform in `[min_delay_ms, max_delay_ms]` (plus `reorder_extra_ms` for the
//! reordered ones); after GST it is at most `post_gst_max_delay_ms`, and drops, duplicates and
//! reorders stop. Partitions and crashes are explicit time windows and apply before and after GST:
//! a liveness claim "after GST" assumes the schedule heals them.

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

/// A node crashes at `at_ms`; it recovers at `recover_at_ms` (crash-recover) or never (crash-stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    pub node: NodeId,
    pub at_ms: u64,
    pub recover_at_ms: Option<u64>,
}

/// The whole fault schedule of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultModel {
    pub link: LinkFaults,
    /// Per-link overrides `(from, to, faults)`; the first match wins.
    pub overrides: Vec<(NodeId, NodeId, LinkFaults)>,
    pub partitions: Vec<Partition>,
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

    pub fn partitioned(&self, now: u64, a: NodeId, b: NodeId) -> bool {
        self.partitions.iter().any(|p| p.separates(now, a, b))
    }
}
