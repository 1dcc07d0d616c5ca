//! # Simulation traces and their hash
//!
//! Every scheduling decision and every effect of a run is appended to a [`Trace`]: a SHA-256 over
//! a canonical encoding of each [`TraceEvent`] (so two runs agree iff they made the same decisions
//! in the same order), optional retention of the events for inspection, and per-kind counters.
//! Messages and outputs enter as a 64-bit FNV-1a digest of their [`Wire`] bytes, computed once
//! per payload at send time. A `Reordered` event marks a delivery that overtook a later-sent
//! message on the same link.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::protocol::{AlarmKind, NodeId, TimerId, Wire};

/// Why a message never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropReason {
    Link,
    Partition,
    Crashed,
}

/// Every [`TraceEvent::kind`], in counter order.
pub const KINDS: [&str; 14] = [
    "input",
    "delivered",
    "dropped_link",
    "dropped_partition",
    "dropped_crashed",
    "duplicated",
    "reordered",
    "timer",
    "crashed",
    "recovered",
    "gst",
    "committed",
    "alarm",
    "violation",
];

/// One traced step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceEvent {
    Input {
        at: u64,
        node: NodeId,
        digest: u64,
    },
    Delivered {
        at: u64,
        from: NodeId,
        to: NodeId,
        sent_at: u64,
        digest: u64,
    },
    Dropped {
        at: u64,
        from: NodeId,
        to: NodeId,
        reason: DropReason,
    },
    Duplicated {
        at: u64,
        from: NodeId,
        to: NodeId,
    },
    Reordered {
        at: u64,
        from: NodeId,
        to: NodeId,
    },
    Timer {
        at: u64,
        node: NodeId,
        id: TimerId,
    },
    Crashed {
        at: u64,
        node: NodeId,
    },
    Recovered {
        at: u64,
        node: NodeId,
    },
    Gst {
        at: u64,
    },
    Committed {
        at: u64,
        node: NodeId,
        digest: u64,
    },
    Alarm {
        at: u64,
        node: NodeId,
        kind: AlarmKind,
        suspect: Option<NodeId>,
    },
    Violation {
        at: u64,
        invariant: String,
    },
}

impl TraceEvent {
    /// A stable short name, used for counters.
    pub fn kind(&self) -> &'static str {
        KINDS[self.kind_index()]
    }

    /// The position of [`Self::kind`] in [`KINDS`] (counters are an array, not a map).
    fn kind_index(&self) -> usize {
        match self {
            Self::Input { .. } => 0,
            Self::Delivered { .. } => 1,
            Self::Dropped {
                reason: DropReason::Link,
                ..
            } => 2,
            Self::Dropped {
                reason: DropReason::Partition,
                ..
            } => 3,
            Self::Dropped {
                reason: DropReason::Crashed,
                ..
            } => 4,
            Self::Duplicated { .. } => 5,
            Self::Reordered { .. } => 6,
            Self::Timer { .. } => 7,
            Self::Crashed { .. } => 8,
            Self::Recovered { .. } => 9,
            Self::Gst { .. } => 10,
            Self::Committed { .. } => 11,
            Self::Alarm { .. } => 12,
            Self::Violation { .. } => 13,
        }
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.kind().as_bytes());
        let mut put = |v: u64| buf.extend_from_slice(&v.to_le_bytes());
        match self {
            Self::Input { at, node, digest } => {
                put(*at);
                put(u64::from(*node));
                put(*digest)
            }
            Self::Delivered {
                at,
                from,
                to,
                sent_at,
                digest,
            } => {
                put(*at);
                put(u64::from(*from));
                put(u64::from(*to));
                put(*sent_at);
                put(*digest)
            }
            Self::Dropped { at, from, to, .. }
            | Self::Duplicated { at, from, to }
            | Self::Reordered { at, from, to } => {
                put(*at);
                put(u64::from(*from));
                put(u64::from(*to))
            }
            Self::Timer { at, node, id } => {
                put(*at);
                put(u64::from(*node));
                put(*id)
            }
            Self::Crashed { at, node } | Self::Recovered { at, node } => {
                put(*at);
                put(u64::from(*node))
            }
            Self::Gst { at } => put(*at),
            Self::Committed { at, node, digest } => {
                put(*at);
                put(u64::from(*node));
                put(*digest)
            }
            Self::Alarm {
                at,
                node,
                kind,
                suspect,
            } => {
                put(*at);
                put(u64::from(*node));
                put(*kind as u64);
                put(suspect.map_or(u64::MAX, u64::from))
            }
            Self::Violation { at, invariant } => {
                put(*at);
                buf.extend_from_slice(invariant.as_bytes())
            }
        }
    }
}

/// FNV-1a of some bytes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a over the canonical encoding of a value.
pub fn digest_of<W: Wire + ?Sized>(value: &W) -> u64 {
    let mut buf = Vec::new();
    value.wire(&mut buf);
    fnv1a(&buf)
}

/// The running record of one simulation.
#[derive(Debug, Clone)]
pub struct Trace {
    hasher: Sha256,
    keep: bool,
    events: Vec<TraceEvent>,
    counts: [u64; KINDS.len()],
    /// Encoded events not yet fed to the hasher.
    scratch: Vec<u8>,
}

impl Trace {
    /// `keep`: retain the events (tests); the hash and counters are always maintained.
    pub fn new(keep: bool) -> Self {
        Self {
            hasher: Sha256::new(),
            keep,
            events: Vec::new(),
            counts: [0; KINDS.len()],
            scratch: Vec::new(),
        }
    }

    pub fn push(&mut self, event: TraceEvent) {
        // Encodings are batched into the hasher (SHA-256 of a concatenation does not depend on
        // how it is split into updates), saving a hasher call per event.
        event.encode(&mut self.scratch);
        if self.scratch.len() >= 4096 {
            self.hasher.update(&self.scratch);
            self.scratch.clear();
        }
        self.counts[event.kind_index()] += 1;
        if self.keep {
            self.events.push(event);
        }
    }

    /// Hex SHA-256 of everything pushed so far.
    pub fn hash_hex(&self) -> String {
        let mut h = self.hasher.clone();
        h.update(&self.scratch);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    pub fn count(&self, kind: &str) -> u64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.counts[i])
    }

    /// Every kind seen at least once, with its count.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        KINDS
            .iter()
            .zip(self.counts)
            .filter(|(_, c)| *c > 0)
            .map(|(k, c)| (*k, c))
            .collect()
    }
}
