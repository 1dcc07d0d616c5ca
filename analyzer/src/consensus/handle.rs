//! What the HTTP side holds of a running cluster: the command channel and the published
//! [`Stats`] (the cluster task in [`super::cluster`] owns everything else).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dwcp_engines::sim::protocol::NodeId;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::Behaviour;

/// Commit latency histogram bounds, seconds.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Transactions waiting for their commit at most.
pub const MAX_PENDING: usize = 10_000;
/// What the metrics read (updated by the task).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub decisions: u64,
    pub view_changes: u64,
    pub messages: BTreeMap<&'static str, u64>,
    /// Per bucket of [`LATENCY_BOUNDS`] (not cumulative) plus the +Inf bucket last.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_s: f64,
    pub latency_count: u64,
    pub byzantine: BTreeMap<&'static str, u64>,
    pub integrity: u64,
    pub committed_height: u64,
    pub view: u64,
    pub txs_submitted: u64,
    pub txs_committed: u64,
    /// Replicas currently made Byzantine.
    pub faulty: u64,
}

/// What `POST .../tx` gets back once the transaction committed at an honest replica.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Committed {
    pub id: u64,
    pub replica: NodeId,
    pub height: u64,
    pub latency_ms: f64,
}

pub enum Cmd {
    Tx {
        payload: Vec<u8>,
        accepted: oneshot::Sender<Result<u64, String>>,
        committed: oneshot::Sender<Committed>,
    },
    Status(oneshot::Sender<Value>),
    Fault {
        replica: NodeId,
        behaviour: Behaviour,
        reply: oneshot::Sender<Result<Value, (u16, String)>>,
    },
}

/// The HTTP side of one running cluster.
#[derive(Clone)]
pub struct ClusterHandle {
    pub name: &'static str,
    pub n: u32,
    pub tx_wait: Duration,
    pub cmds: mpsc::Sender<Cmd>,
    pub stats: Arc<Mutex<Stats>>,
}

impl ClusterHandle {
    pub fn stats(&self) -> Stats {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
