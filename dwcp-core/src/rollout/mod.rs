//! The rollout state machine: `Pending → shadow → 1 % → … → 100 % (Succeeded)`, plus `Paused` and
//! `RolledBack`, written as `step(input, now) -> events` (the caller persists and publishes).
//!
//! Invariants: a rollout only moves forward one phase at a time, and only when the phase's minimum
//! duration and per-track sample are met and no test or guardrail fails; any failure rolls back at once;
//! below a guardrail's minimum sample its verdict is "inconclusive", which holds the phase and never
//! aborts. The sequential tests run over the rollout's whole life (they stay valid across phases because
//! the canary share is an input of each observation), so the false-abort budget `alpha` is spent once.

pub mod judge;
mod observe;
pub mod run;
pub mod segments;
pub mod spec;
mod types;

use crate::histogram::Histogram;
use crate::stats::{ErrorTest, ExceedanceTest};
pub use judge::{Outcome, Verdict};
pub use run::RunInfo;
pub use segments::SegmentVerdict;
use serde::{Deserialize, Serialize};
pub use spec::{Guardrails, Phase, RolloutSpec, SegmentPolicy};
use std::collections::{BTreeMap, VecDeque};
pub use types::{
    Command, Event, EventKind, Input, SegmentErrors, SegmentWindow, ShadowAgg, Status, TrackAgg,
    Untested, Window, WindowSummary,
};

const RECENT: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub spec: RolloutSpec,
    pub status: Status,
    pub phase: usize,
    pub phase_started_ms: u64,
    /// Counts of the current phase (windows routed with this phase's state).
    pub phase_stable: TrackAgg,
    pub phase_canary: TrackAgg,
    pub phase_expected_canary: f64,
    pub phase_shadow: ShadowAgg,
    /// Stable latency over the rollout's life: the p99 reference of the latency test.
    pub stable_reference: Histogram,
    pub error_test: ErrorTest,
    /// "Whose slow request is it?": requests of *both* tracks above a threshold set from past stable
    /// latency, fed to the same test as errors (valid whatever the threshold or a shared drift).
    #[serde(default, deserialize_with = "types::latency_test_compat")]
    pub latency_test: ErrorTest,
    /// Canary requests against the expected share (`θ < 1`): the sequential test behind trigger 4.
    #[serde(default = "ErrorTest::shortfall")]
    pub throughput_test: ErrorTest,
    /// Shadow comparisons slower than the primary by more than the tolerance, against a null of 1/2
    /// (exchangeable copies: `P(D > d) ≤ 1/2` for `d ≥ 0`): the test behind the shadow-latency rule.
    #[serde(default = "types::shadow_latency_default")]
    pub shadow_latency_test: ExceedanceTest,
    pub shadow_error_test: ErrorTest,
    pub shadow_mismatch_test: ExceedanceTest,
    /// Requests not randomised (segments at 0 % or 100 %), kept out of the tests.
    #[serde(default)]
    pub untested: Untested,
    /// Errors per randomised segment over the run, against their null: names the segment a
    /// regression hits in the evidence.
    #[serde(default)]
    pub segment_errors: BTreeMap<String, SegmentErrors>,
    pub last_verdict: Option<Verdict>,
    pub recent: VecDeque<WindowSummary>,
    /// When the latest decision (promotion / rollback) was taken, and the first failing evidence.
    pub decided_at_ms: Option<u64>,
    pub history: Vec<(u64, String)>,
    /// The run and the guardrails frozen at its start (see [`run`]).
    #[serde(default)]
    pub run: RunInfo,
}

impl Rollout {
    pub fn new(spec: RolloutSpec) -> Self {
        let mismatch_p0 = spec.guardrails.max_mismatch_rate;
        Self {
            spec,
            status: Status::Pending,
            phase: 0,
            phase_started_ms: 0,
            phase_stable: TrackAgg::default(),
            phase_canary: TrackAgg::default(),
            phase_expected_canary: 0.0,
            phase_shadow: ShadowAgg::default(),
            stable_reference: Histogram::new(),
            error_test: ErrorTest::errors(),
            latency_test: ErrorTest::new(),
            throughput_test: ErrorTest::shortfall(),
            shadow_latency_test: types::shadow_latency_default(),
            shadow_error_test: ErrorTest::new(),
            shadow_mismatch_test: ExceedanceTest::new(mismatch_p0),
            untested: Untested::default(),
            segment_errors: BTreeMap::new(),
            last_verdict: None,
            recent: VecDeque::new(),
            decided_at_ms: None,
            history: Vec::new(),
            run: RunInfo::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn phase_name(&self) -> &str {
        match self.status {
            Status::RolledBack => "rolled_back",
            Status::Pending => "pending",
            _ => self
                .spec
                .phases
                .get(self.phase)
                .map_or("?", |p| p.name.as_str()),
        }
    }

    /// Whether the filters should route any traffic to the canary now.
    pub fn live(&self) -> bool {
        matches!(
            self.status,
            Status::Running | Status::Paused | Status::Succeeded
        )
    }

    /// Canary share (bp) per segment that the filters should apply now.
    pub fn shares(&self) -> BTreeMap<String, u32> {
        if self.live() {
            self.spec.shares(self.phase)
        } else {
            self.spec.shares(usize::MAX)
        }
    }

    /// Shadow sampling (bp) the filters should apply now.
    pub fn shadow_bp(&self) -> u32 {
        match self.spec.phases.get(self.phase) {
            Some(p) if self.live() && p.shadow => 10_000,
            Some(p) if self.live() => p.shadow_sample_bp.min(10_000),
            _ => 0,
        }
    }

    fn enter_phase(&mut self, idx: usize, now_ms: u64) {
        self.phase = idx;
        self.phase_started_ms = now_ms;
        self.phase_stable = TrackAgg::default();
        self.phase_canary = TrackAgg::default();
        self.phase_expected_canary = 0.0;
        self.phase_shadow = ShadowAgg::default();
        self.history.push((now_ms, self.phase_name().to_string()));
    }

    fn event(
        &self,
        kind: EventKind,
        message: String,
        actor: Option<String>,
        verdict: Option<Verdict>,
    ) -> Event {
        Event {
            kind,
            message,
            actor,
            verdict,
            evidence: serde_json::Value::Null,
        }
    }

    fn roll_back(
        &mut self,
        now_ms: u64,
        verdict: Verdict,
        checks: &[Verdict],
        actor: Option<String>,
    ) -> Event {
        self.status = Status::RolledBack;
        self.decided_at_ms = Some(now_ms);
        self.history.push((now_ms, "rolled_back".into()));
        let mut e = self.event(
            EventKind::RolledBack,
            format!(
                "{} rolled back in phase {}: {}",
                self.spec.name,
                self.phase_name_at(self.phase),
                verdict.reason
            ),
            actor,
            Some(verdict),
        );
        e.evidence = serde_json::json!({
            "checks": checks,
            "phase": self.phase_name_at(self.phase),
            "phase_stable": {"requests": self.phase_stable.requests, "errors": self.phase_stable.errors},
            "phase_canary": {"requests": self.phase_canary.requests, "errors": self.phase_canary.errors},
            "error_test": {"canary_errors": self.error_test.canary_errors, "stable_errors": self.error_test.stable_errors,
                           "log_e_value": self.error_test.log_e_value()},
            "latency_test": {"canary_slow": self.latency_test.canary_errors, "stable_slow": self.latency_test.stable_errors,
                             "log_e_value": self.latency_test.log_e_value()},
            "shadow": self.phase_shadow,
            "untested": self.untested,
            "segments": self.segment_verdicts(),
            "run": self.run_evidence(),
            "last_windows": self.recent,
        });
        e
    }

    fn phase_name_at(&self, idx: usize) -> String {
        self.spec
            .phases
            .get(idx)
            .map_or_else(|| "?".into(), |p| p.name.clone())
    }

    /// Advances the machine by one input at time `now_ms`.
    pub fn step(&mut self, input: Input, now_ms: u64) -> Vec<Event> {
        match input {
            Input::Window(w) => self.on_window(w, now_ms),
            Input::Tick => self.on_tick(now_ms),
            Input::Command { command, actor } => self.on_command(command, actor, now_ms),
            Input::EngineTrigger { trigger, detail } => {
                if !matches!(self.status, Status::Running | Status::Paused) {
                    return Vec::new();
                }
                let v = Verdict {
                    outcome: Outcome::Fail,
                    trigger: trigger.to_string(),
                    reason: format!(
                        "engine trigger {} ({}) fired",
                        trigger.number(),
                        trigger.name()
                    ),
                    statistic: 1.0,
                    threshold: 1.0,
                    canary_n: self.phase_canary.requests,
                    stable_n: self.phase_stable.requests,
                };
                let mut e = self.roll_back(now_ms, v, &[], None);
                if let serde_json::Value::Object(m) = &mut e.evidence {
                    m.insert("engine_event".into(), detail);
                }
                vec![e]
            }
        }
    }

    fn on_window(&mut self, w: Window, now_ms: u64) -> Vec<Event> {
        if !matches!(self.status, Status::Running | Status::Paused) {
            return Vec::new();
        }
        self.observe_tests(&w);
        self.stable_reference.merge(&w.stable.latency_us);
        let shadow_delta_us = self.guardrails().max_shadow_latency_delta_ms * 1000.0;
        let sh = &w.shadow;
        if sh.compared > 0 {
            let n = sh.compared * 2;
            self.shadow_error_test.observe(
                sh.shadow_errors,
                sh.primary_errors,
                sh.compared as f64 / n as f64,
            );
            self.shadow_mismatch_test
                .observe(sh.mismatches.saturating_sub(sh.noise), sh.compared);
            let d = &sh.latency_delta_us;
            let slower = d.count_above(shadow_delta_us);
            self.shadow_latency_test.observe(slower, d.count);
        }
        if w.current_phase {
            self.phase_stable.merge(&w.stable);
            self.phase_canary.merge(&w.canary);
            self.phase_expected_canary += w.expected_canary;
            self.phase_shadow.merge(&w.shadow);
        }
        self.recent.push_back(WindowSummary {
            at_ms: now_ms,
            stable_requests: w.stable.requests,
            stable_errors: w.stable.errors,
            canary_requests: w.canary.requests,
            canary_errors: w.canary.errors,
            canary_p99_ms: w.canary.latency_us.quantile(0.99).map(|v| v / 1000.0),
            stable_p99_ms: w.stable.latency_us.quantile(0.99).map(|v| v / 1000.0),
        });
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let checks = judge::checks(self, now_ms);
        let overall = judge::overall(&checks);
        self.last_verdict = Some(overall.clone());
        if overall.outcome == Outcome::Fail {
            return vec![self.roll_back(now_ms, overall, &checks, None)];
        }
        Vec::new()
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Event> {
        if self.status != Status::Running {
            return Vec::new();
        }
        let checks = judge::checks(self, now_ms);
        let overall = judge::overall(&checks);
        self.last_verdict = Some(overall.clone());
        match overall.outcome {
            Outcome::Fail => vec![self.roll_back(now_ms, overall, &checks, None)],
            Outcome::Pass => self.promote(now_ms, None, Some(overall)),
            Outcome::Inconclusive => Vec::new(),
        }
    }

    fn promote(
        &mut self,
        now_ms: u64,
        actor: Option<String>,
        verdict: Option<Verdict>,
    ) -> Vec<Event> {
        let from = self.phase_name_at(self.phase);
        let next = self.phase + 1;
        if next >= self.spec.phases.len() {
            return Vec::new();
        }
        self.enter_phase(next, now_ms);
        self.decided_at_ms = Some(now_ms);
        let to = self.phase_name_at(next);
        let mut out = vec![self.event(
            EventKind::Promoted,
            format!("{} promoted {from} → {to}", self.spec.name),
            actor,
            verdict,
        )];
        if next + 1 == self.spec.phases.len() {
            self.status = Status::Succeeded;
            out.push(self.event(
                EventKind::Succeeded,
                format!("{} reached {to}", self.spec.name),
                None,
                None,
            ));
        }
        out
    }

    /// Starts run 1 in the first phase.
    fn start(&mut self, now_ms: u64, who: Option<String>) -> Event {
        self.status = Status::Running;
        self.start_run(1, now_ms);
        self.enter_phase(0, now_ms);
        let mut e = self.event(
            EventKind::Started,
            format!(
                "{} started in {} (run 1, α {})",
                self.spec.name,
                self.phase_name(),
                self.guardrails().alpha
            ),
            who,
            None,
        );
        e.evidence = self.run_evidence();
        e
    }

    fn on_command(&mut self, command: Command, actor: String, now_ms: u64) -> Vec<Event> {
        let who = Some(actor.clone());
        let reject = |me: &Self, why: &str| {
            vec![me.event(
                EventKind::CommandRejected,
                format!(
                    "{command:?} rejected: {why} (status {})",
                    me.status.as_str()
                ),
                Some(actor.clone()),
                None,
            )]
        };
        match (command, self.status) {
            (Command::Start, Status::Pending) => vec![self.start(now_ms, who)],
            (Command::Promote, Status::Running | Status::Paused) => self.promote(now_ms, who, None),
            (Command::Promote, Status::Pending) => vec![self.start(now_ms, who)],
            (Command::Pause, Status::Running) => {
                self.status = Status::Paused;
                vec![self.event(
                    EventKind::Paused,
                    format!("{} paused in {}", self.spec.name, self.phase_name()),
                    who,
                    None,
                )]
            }
            (Command::Resume, Status::Paused) => {
                self.status = Status::Running;
                vec![self.event(
                    EventKind::Resumed,
                    format!("{} resumed in {}", self.spec.name, self.phase_name()),
                    who,
                    None,
                )]
            }
            (Command::Resume, Status::RolledBack) => {
                // A person resumes after a rollback: restart the ladder with fresh tests.
                // A new run: fresh tests and its own α, frozen now (the audit record says so).
                let spec = self.spec.clone();
                let history = std::mem::take(&mut self.history);
                let number = self.run.number.max(1) + 1;
                *self = Rollout::new(spec);
                self.history = history;
                self.status = Status::Running;
                self.start_run(number, now_ms);
                self.enter_phase(0, now_ms);
                let mut e = self.event(
                    EventKind::Resumed,
                    format!(
                        "{} restarted from {} as run {number} with its own α {}",
                        self.spec.name,
                        self.phase_name(),
                        self.guardrails().alpha
                    ),
                    who,
                    None,
                );
                e.evidence = self.run_evidence();
                vec![e]
            }
            (Command::Abort, Status::Running | Status::Paused | Status::Pending) => {
                let v = Verdict {
                    outcome: Outcome::Fail,
                    trigger: "operator".into(),
                    reason: format!("aborted by {actor}"),
                    statistic: 0.0,
                    threshold: 0.0,
                    canary_n: self.phase_canary.requests,
                    stable_n: self.phase_stable.requests,
                };
                vec![self.roll_back(now_ms, v, &[], who)]
            }
            _ => reject(self, "not allowed in this status"),
        }
    }
}

#[cfg(test)]
mod alpha_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
