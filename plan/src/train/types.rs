//! The train's types: what it records per rollout, what it observes, what it asks the caller to do.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrackState {
    Waiting,
    Running,
    Done,
    RolledBack {
        reason: String,
    },
    /// By the train: something it depends on rolled back.
    Paused {
        reason: String,
    },
    /// By a person.
    Held {
        by: String,
        reason: String,
    },
    Skipped {
        by: String,
    },
}

impl TrackState {
    pub fn name(&self) -> &'static str {
        match self {
            TrackState::Waiting => "waiting",
            TrackState::Running => "running",
            TrackState::Done => "done",
            TrackState::RolledBack { .. } => "rolled_back",
            TrackState::Paused { .. } => "paused",
            TrackState::Held { .. } => "held",
            TrackState::Skipped { .. } => "skipped",
        }
    }
}

/// The train's record of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub state: TrackState,
    /// Index in the plan ladder once started.
    pub phase: Option<usize>,
    /// When each plan phase was first reached in the current attempt (plan ms).
    pub reached_ms: Vec<Option<u64>>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Plan phases whose promotion out was approved by a person.
    pub approved: Vec<usize>,
    /// Why it is not moving right now (empty when it just moved).
    pub waiting: String,
    /// Since when it has been waiting for its gates (plan ms), for the "waited longer than planned" alert.
    pub waiting_since_ms: Option<u64>,
    /// The phase whose approval was already asked for (asked once per phase).
    pub(crate) asked: Option<usize>,
}

impl Track {
    pub(crate) fn new(phases: usize) -> Self {
        Self {
            state: TrackState::Waiting,
            phase: None,
            reached_ms: vec![None; phases],
            started_ms: None,
            finished_ms: None,
            approved: Vec::new(),
            waiting: String::new(),
            waiting_since_ms: None,
            asked: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedStatus {
    Pending,
    Running,
    Paused,
    Succeeded,
    RolledBack,
}

/// What the companion reports of one rollout this tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub status: ObservedStatus,
    pub phase: String,
    /// The companion's own judgment of the phase passes (minimum duration and samples met, no test or
    /// guardrail failing).
    pub judge_pass: bool,
    /// The companion's last verdict reason (why it holds, or why it rolled back).
    pub reason: String,
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub p99_ratio: Option<f64>,
}

/// What the caller must do to its rollouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Start the rollout and bring it to `entry` (the first phase of its plan ladder), held there.
    Start { rollout: String, entry: String },
    /// Promote one phase, to `to`.
    Promote { rollout: String, to: String },
    /// Stop its automatic progress (it keeps serving its current share).
    Pause { rollout: String, reason: String },
    /// Roll it back.
    Abort { rollout: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEvent {
    pub rollout: String,
    pub kind: String,
    pub message: String,
    pub actor: Option<String>,
    /// Plan time.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub actions: Vec<Action>,
    pub events: Vec<TrainEvent>,
}

/// A person's command to the train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Person {
    Hold { reason: String },
    Release,
    Skip,
    Approve,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Train {
    pub tracks: BTreeMap<String, Track>,
}
