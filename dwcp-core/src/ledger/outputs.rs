//! What the ledger counts and returns: cumulative totals and counters (for `/metrics`), the result of a
//! step or an ingest (for the caller to persist), and the shadow evidence saved between runs.

use crate::rollout::Event;
use crate::shadow::{MismatchSample, ShadowStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-track cumulative counters since the service started (for `/metrics`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub requests: [u64; 2],
    pub errors: [u64; 2],
}

/// The part of a batch that named an unknown rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Cells,
    Shadow,
    Samples,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Cells => "cells",
            Part::Shadow => "shadow",
            Part::Samples => "samples",
        }
    }
}

/// Counts since the service started.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub batches_accepted: u64,
    pub batches_duplicate: u64,
    pub batches_rejected: u64,
    /// Accepted batches by the protocol version they carried.
    pub by_protocol: BTreeMap<u32, u64>,
    /// Skipped parts of batches, by unknown rollout and part.
    pub unknown: BTreeMap<(String, Part), u64>,
    /// Cells of a known rollout naming a segment it does not define (counted under
    /// [`super::OTHER_SEGMENT`]), by rollout.
    pub unknown_segments: BTreeMap<String, u64>,
    /// VMs forgotten because the VM table was full (least recently seen first).
    pub vms_evicted: u64,
    pub rollbacks: BTreeMap<String, u64>,
    pub promotions: BTreeMap<String, u64>,
}

/// What one rollout's step produced: the events to store, and whether filters must route differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Stepped {
    pub rollout: String,
    pub events: Vec<Event>,
    pub routing_changed: bool,
}

/// The result of [`Ledger::ingest`].
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Taken: the rollouts stepped, and the rollouts whose shadow totals or samples changed.
    Accepted {
        stepped: Vec<Stepped>,
        shadow_touched: Vec<String>,
    },
    /// A replay (same VM, sequence not newer): acknowledged, ignored.
    Duplicate,
}

/// A rollout's shadow totals and last mismatch samples, as saved between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedShadow {
    pub totals: ShadowStats,
    pub samples: Vec<MismatchSample>,
}
