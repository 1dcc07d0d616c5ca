//! The values a rollout machine consumes and produces: statuses, per-track aggregates, telemetry windows,
//! commands, inputs and events. Kept apart from the machine (`mod.rs`) so the wire and storage shapes are
//! read in one place; `Event` is stored verbatim in SQLite and served by the API, so its JSON is stable.

use super::judge::Verdict;
use crate::histogram::Histogram;
use crate::signals::Trigger;
use crate::stats::{ErrorTest, ExceedanceTest};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Reads `Rollout::latency_test`. Rollouts stored before the latency test became the two-track
/// "whose slow request is it?" test hold a one-sample exceedance test there; such a rollout continues
/// with a fresh two-track test (a new test started at a known time is again a martingale from 1, so the
/// budget is not exceeded; only the old evidence is dropped).
pub(super) fn latency_test_compat<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorTest, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Compat {
        Now(ErrorTest),
        Legacy(#[allow(dead_code)] ExceedanceTest),
    }
    Ok(match Compat::deserialize(d)? {
        Compat::Now(t) => t,
        Compat::Legacy(_) => ErrorTest::new(),
    })
}

/// Default of `Rollout::shadow_latency_test` for rollouts stored before it existed.
pub(super) fn shadow_latency_default() -> ExceedanceTest {
    ExceedanceTest::new(0.5)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Paused,
    Succeeded,
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Succeeded => "succeeded",
            Status::RolledBack => "rolled_back",
        }
    }
}

/// Requests, errors and latency of one track.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackAgg {
    pub requests: u64,
    pub errors: u64,
    pub latency_us: Histogram,
}

impl TrackAgg {
    pub fn merge(&mut self, o: &TrackAgg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.latency_us.merge(&o.latency_us);
    }
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Shadow comparisons of a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowAgg {
    pub compared: u64,
    pub mismatches: u64,
    /// Mismatches that a second stable copy also showed (noise).
    pub noise: u64,
    pub shadow_errors: u64,
    pub primary_errors: u64,
    /// Comparisons whose shadow latency exceeded the primary's by more than the tolerance.
    pub slower: u64,
    /// Shadow − primary latency, µs (only positive deltas; negatives count as 0).
    pub latency_delta_us: Histogram,
}

impl ShadowAgg {
    pub fn merge(&mut self, o: &ShadowAgg) {
        self.compared += o.compared;
        self.mismatches += o.mismatches;
        self.noise += o.noise;
        self.shadow_errors += o.shadow_errors;
        self.primary_errors += o.primary_errors;
        self.slower += o.slower;
        self.latency_delta_us.merge(&o.latency_delta_us);
    }
}

/// One telemetry window of a rollout, merged from the filters' batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub stable: TrackAgg,
    pub canary: TrackAgg,
    /// Canary requests expected from the shares the filters routed with (Σ segment requests × share).
    pub expected_canary: f64,
    /// Whether the filters routed this window with the current phase's state.
    pub current_phase: bool,
    #[serde(default)]
    pub shadow: ShadowAgg,
    /// The same counts per segment, with the share (bp) each segment's requests were routed with (the
    /// assigned share of the batch's state version). Empty: callers that do not split by segment; the
    /// tests then use the window's pooled share.
    #[serde(default)]
    pub segments: BTreeMap<String, SegmentWindow>,
    /// Requests of this window that were not bucketed (no key, bad header, stale or no state, kill
    /// switch): kept out of every count above and of the tests, added to the rollout's [`Untested`].
    #[serde(default)]
    pub unbucketed: Untested,
}

impl Window {
    /// Adds the counts of `o`, a window routed under the same state version (so each segment's share is
    /// the same in both).
    pub fn merge(&mut self, o: &Window) {
        self.stable.merge(&o.stable);
        self.canary.merge(&o.canary);
        self.expected_canary += o.expected_canary;
        self.shadow.merge(&o.shadow);
        self.unbucketed.merge(&o.unbucketed);
        for (name, sw) in &o.segments {
            // `get_mut` first: the name is cloned only for a segment this window has not seen.
            let mine = match self.segments.get_mut(name) {
                Some(m) => m,
                None => self
                    .segments
                    .entry(name.clone())
                    .or_insert_with(|| SegmentWindow {
                        share_bp: sw.share_bp,
                        ..SegmentWindow::default()
                    }),
            };
            if mine.error_units.is_some() || sw.error_units.is_some() {
                let (a, b) = (mine.test_errors(), sw.test_errors());
                mine.error_units = Some([a[0] + b[0], a[1] + b[1]]);
            }
            mine.stable.merge(&sw.stable);
            mine.canary.merge(&sw.canary);
        }
    }
}

/// One segment's errors over the rollout's run, against what its assigned shares imply: the evidence
/// that names which segment a regression hits (the test itself pools the strata).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentErrors {
    pub errors: u64,
    pub canary_errors: u64,
    /// Σ over windows of errors × share: the canary's expected errors if the versions fail alike.
    pub expected_canary_errors: f64,
    /// Σ errors × share × (1 − share): the null variance of `canary_errors`.
    pub variance: f64,
}

impl SegmentErrors {
    /// Standardised excess of canary errors over the null (0 without errors).
    pub fn z(&self) -> f64 {
        if self.variance <= 0.0 {
            0.0
        } else {
            (self.canary_errors as f64 - self.expected_canary_errors) / self.variance.sqrt()
        }
    }
}

/// One segment's counts in a window and the canary share its requests were assigned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentWindow {
    pub share_bp: u32,
    pub stable: TrackAgg,
    pub canary: TrackAgg,
    /// Errors as the error test counts them, `[stable, canary]`: each user bucket's errors once per
    /// phase (see `telemetry::Cell::error_units`). `None`: every error counts (older filters, callers
    /// that do not know units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_units: Option<[u64; 2]>,
}

impl SegmentWindow {
    /// `[stable, canary]` errors for the error test.
    pub fn test_errors(&self) -> [u64; 2] {
        self.error_units
            .unwrap_or([self.stable.errors, self.canary.errors])
    }
}

/// Requests kept out of the sequential tests because they were not randomised: segments whose assigned
/// share is 0 % or 100 % (shadow phase, internal/beta forced, kill switch), and requests that were not
/// bucketed at all (no key, bad header, stale state). Counted and shown, never judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Untested {
    pub requests: u64,
    pub errors: u64,
    /// Requests per segment.
    pub by_segment: BTreeMap<String, u64>,
    /// Of `requests`, those not bucketed at all (no key, bad header, stale state …), whatever the
    /// segment's share.
    #[serde(default)]
    pub unbucketed: u64,
}

impl Untested {
    /// Adds `requests` (`errors` of them failed) of `segment`.
    pub fn add(&mut self, segment: &str, requests: u64, errors: u64) {
        self.requests += requests;
        self.errors += errors;
        *self.by_segment.entry(segment.to_string()).or_insert(0) += requests;
    }

    pub fn merge(&mut self, o: &Untested) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.unbucketed += o.unbucketed;
        for (k, v) in &o.by_segment {
            *self.by_segment.entry(k.clone()).or_insert(0) += v;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Start,
    Promote,
    Pause,
    Resume,
    Abort,
}

/// One input to [`Rollout::step`]. Transient (built, then moved into `step` once), so the large
/// `Window` variant stays unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Window(Window),
    Tick,
    Command {
        command: Command,
        actor: String,
    },
    /// An engine safety trigger fired (triggers 5–8, evaluated by [`crate::signals::TriggerWindow`]).
    EngineTrigger {
        trigger: Trigger,
        /// The evidence, stored verbatim under `engine_event` (a serialised `TriggerFired`).
        detail: serde_json::Value,
    },
}

/// What a step produced, for the caller to persist and publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub message: String,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Supporting data: verdicts of every check, last telemetry windows, engine event.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

/// A compact record of a window kept as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    pub at_ms: u64,
    pub stable_requests: u64,
    pub stable_errors: u64,
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub canary_p99_ms: Option<f64>,
    pub stable_p99_ms: Option<f64>,
}

/// What an [`Event`] records. Stored and served as the snake_case string (`"rolled_back"`, …), the same
/// strings the companion has always written, so old databases and API clients read them unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Promoted,
    Succeeded,
    Paused,
    Resumed,
    RolledBack,
    CommandRejected,
    /// The global kill switch was turned on (recorded under rollout `*`).
    KillAll,
    KillAllOff,
    // The release train's decisions (recorded under the rollout they concern).
    TrainStarted,
    TrainPromoted,
    TrainHeld,
    TrainReleased,
    TrainSkipped,
    TrainApprovalNeeded,
    TrainApproved,
    TrainPaused,
    TrainRolledBack,
    TrainDone,
    TrainRestarted,
    TrainActionFailed,
    /// The companion could not store its state for a while (recorded under rollout `*` by the first
    /// commit that succeeds again: a failed commit cannot store its own event).
    StoreCommitFailed,
}

impl EventKind {
    /// Every kind, in a fixed order (the names list and the tests walk it).
    pub const ALL: [EventKind; 22] = [
        EventKind::Started,
        EventKind::Promoted,
        EventKind::Succeeded,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::RolledBack,
        EventKind::CommandRejected,
        EventKind::KillAll,
        EventKind::KillAllOff,
        EventKind::TrainStarted,
        EventKind::TrainPromoted,
        EventKind::TrainHeld,
        EventKind::TrainReleased,
        EventKind::TrainSkipped,
        EventKind::TrainApprovalNeeded,
        EventKind::TrainApproved,
        EventKind::TrainPaused,
        EventKind::TrainRolledBack,
        EventKind::TrainDone,
        EventKind::TrainRestarted,
        EventKind::TrainActionFailed,
        EventKind::StoreCommitFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Promoted => "promoted",
            EventKind::Succeeded => "succeeded",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::RolledBack => "rolled_back",
            EventKind::CommandRejected => "command_rejected",
            EventKind::KillAll => "kill_all",
            EventKind::KillAllOff => "kill_all_off",
            EventKind::TrainStarted => "train_started",
            EventKind::TrainPromoted => "train_promoted",
            EventKind::TrainHeld => "train_held",
            EventKind::TrainReleased => "train_released",
            EventKind::TrainSkipped => "train_skipped",
            EventKind::TrainApprovalNeeded => "train_approval_needed",
            EventKind::TrainApproved => "train_approved",
            EventKind::TrainPaused => "train_paused",
            EventKind::TrainRolledBack => "train_rolled_back",
            EventKind::TrainDone => "train_done",
            EventKind::TrainRestarted => "train_restarted",
            EventKind::TrainActionFailed => "train_action_failed",
            EventKind::StoreCommitFailed => "store_commit_failed",
        }
    }

    /// The kind with this stored name, if there is one.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
