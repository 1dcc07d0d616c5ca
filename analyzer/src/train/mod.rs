//! The release train in the companion: runs a plan (`dwcp_plan`) over the companion's own rollouts.
//! Each tick it observes every rollout of the plan (status, phase, the companion's judgment of the
//! phase, the phase's canary numbers), steps the pure train machine on the plan clock, and executes
//! its actions through the controller's public `command` — the same path a person's CLI takes, so
//! every change is judged, recorded and versioned like any other.
//!
//! A rollout driven by the train is kept `paused` in the companion between the train's promotions:
//! it keeps serving its phase and is still judged (a failure rolls it back at once), but only the
//! train moves it forward, so holds, freezes and approvals are the train's to enforce.
//!
//! The train's state and its clock live in the companion's SQLite (`meta` keys `train.state`,
//! `train.clock`) and its decisions in the audit log, under the rollout they concern.

pub mod api;
pub mod cli;
pub mod page;

use crate::controller::{ApiError, Controller};
use crate::store::{Store, StoreError};
use dwcp_core::rollout::{judge, Command, Event, EventKind, Outcome, Rollout, Status};
use dwcp_plan::clock::PlanClock;
use dwcp_plan::schedule::{planned, Planned};
use dwcp_plan::train::ObservedStatus;
use dwcp_plan::{Action, Observed, Person, Plan, Train, TrainEvent};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Plan {
        path: String,
        source: dwcp_plan::PlanError,
    },
    #[error("plan {path}: rollout {rollout:?}: {message}")]
    Mismatch {
        path: String,
        rollout: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt saved train: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads and validates a plan file.
pub fn load_plan(path: &Path) -> Result<Plan, TrainError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Read {
        path: p.clone(),
        source,
    })?;
    dwcp_plan::parse(&text).map_err(|source| TrainError::Plan { path: p, source })
}

/// Every plan rollout must be a companion rollout whose ladder holds the plan's phases in order.
pub fn check_against(
    plan: &Plan,
    path: &str,
    rollouts: &[&dwcp_core::rollout::RolloutSpec],
) -> Result<(), TrainError> {
    for r in &plan.rollouts {
        let mismatch = |message: String| TrainError::Mismatch {
            path: path.to_string(),
            rollout: r.name.clone(),
            message,
        };
        let Some(spec) = rollouts.iter().find(|s| s.name == r.name) else {
            return Err(mismatch(
                "is not a rollout of the companion's config".into(),
            ));
        };
        let names: Vec<&str> = spec.phases.iter().map(|p| p.name.as_str()).collect();
        let mut at = 0usize;
        for p in &r.phases {
            match names.iter().skip(at).position(|n| *n == p.name) {
                Some(k) if at == 0 || k == 0 => at += k + 1,
                _ => {
                    return Err(mismatch(format!(
                        "plan phase {:?} must follow the previous one directly in the companion's ladder {names:?}",
                        p.name
                    )))
                }
            }
        }
    }
    Ok(())
}

/// The train running in the companion.
pub struct TrainHost {
    pub plan: Plan,
    pub train: Train,
    pub clock: PlanClock,
    /// Planned timeline (computed once per plan).
    pub planned: BTreeMap<String, Planned>,
    store: Store,
    /// The train as last saved (saved again only when it changed).
    saved: String,
    /// Plan time of the last tick.
    pub now_plan_ms: u64,
}

const STATE_KEY: &str = "train.state";
const CLOCK_KEY: &str = "train.clock";
const ACTOR: &str = "train";

impl TrainHost {
    /// Opens the train over the companion's database: a saved train and clock continue where they
    /// were (the clock at the configured speed); a new one starts the plan clock now — at the plan's
    /// start date when accelerated, on the calendar when `speed` is 1.
    pub fn open(plan: Plan, db: &Path, speed: f64, wall_ms: u64) -> Result<TrainHost, TrainError> {
        let store = Store::open(db)?;
        let clock = match store.meta(CLOCK_KEY)? {
            Some(j) => serde_json::from_str::<PlanClock>(&j)?.with_speed(wall_ms, speed),
            None if speed == 1.0 => PlanClock::new(wall_ms, wall_ms, 1.0),
            None => PlanClock::new(plan.start_ms, wall_ms, speed),
        };
        let mut train = match store.meta(STATE_KEY)? {
            Some(j) => serde_json::from_str::<Train>(&j)?,
            None => Train::new(&plan),
        };
        train.align(&plan);
        let planned = planned(&plan);
        let now_plan_ms = clock.plan_ms(wall_ms);
        let mut host = TrainHost {
            plan,
            train,
            clock,
            planned,
            store,
            saved: String::new(),
            now_plan_ms,
        };
        host.store
            .put_meta(&[(CLOCK_KEY.into(), serde_json::to_string(&host.clock)?)])?;
        host.save()?;
        Ok(host)
    }

    fn save(&mut self) -> Result<(), TrainError> {
        let text = serde_json::to_string(&self.train)?;
        if text != self.saved {
            self.store.put_meta(&[(STATE_KEY.into(), text.clone())])?;
            self.saved = text;
        }
        Ok(())
    }

    /// One train tick: observe, step, act, record.
    pub fn tick(&mut self, c: &mut Controller, wall_ms: u64) -> Result<(), TrainError> {
        self.now_plan_ms = self.clock.plan_ms(wall_ms);
        let observed = observe(&self.plan, c, wall_ms);
        let out = self.train.step(&self.plan, &observed, self.now_plan_ms);
        let mut events = out.events;
        events.extend(self.execute(c, &out.actions, wall_ms));
        self.record(&events, wall_ms)?;
        self.save()
    }

    /// A person's command (hold / release / skip / approve).
    pub fn command(
        &mut self,
        c: &mut Controller,
        rollout: &str,
        cmd: &Person,
        actor: &str,
        wall_ms: u64,
    ) -> Result<Vec<TrainEvent>, String> {
        let now = self.clock.plan_ms(wall_ms);
        let out = self.train.command(&self.plan, rollout, cmd, actor, now)?;
        let mut events = out.events;
        events.extend(self.execute(c, &out.actions, wall_ms));
        self.record(&events, wall_ms).map_err(|e| e.to_string())?;
        self.save().map_err(|e| e.to_string())?;
        Ok(events)
    }

    fn record(&mut self, events: &[TrainEvent], wall_ms: u64) -> Result<(), TrainError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, u64, Event)> = events
            .iter()
            .map(|e| {
                tracing::info!(rollout = %e.rollout, kind = %e.kind, plan_time = %dwcp_plan::time::format_ms(e.at_ms), "{}", e.message);
                (
                    e.rollout.clone(),
                    wall_ms,
                    Event {
                        // Every train event kind is listed in `EventKind` (its test walks them).
                        kind: EventKind::from_name(&e.kind).unwrap_or(EventKind::TrainActionFailed),
                        message: e.message.clone(),
                        actor: Some(e.actor.clone().unwrap_or_else(|| ACTOR.into())),
                        verdict: None,
                        evidence: serde_json::json!({
                            "plan": self.plan.name,
                            "plan_ms": e.at_ms,
                            "plan_time": dwcp_plan::time::format_ms(e.at_ms),
                        }),
                    },
                )
            })
            .collect();
        self.store.append_events(&rows)?;
        Ok(())
    }

    /// Executes the train's actions through the controller; a refused command becomes an event.
    fn execute(&self, c: &mut Controller, actions: &[Action], wall_ms: u64) -> Vec<TrainEvent> {
        let mut failed = Vec::new();
        for a in actions {
            let (rollout, res) = match a {
                Action::Start { rollout, entry } => (rollout, start(c, rollout, entry, wall_ms)),
                Action::Promote { rollout, to } => (rollout, promote_to(c, rollout, to, wall_ms)),
                Action::Pause { rollout, .. } => (rollout, pause(c, rollout, wall_ms)),
                Action::Abort { rollout, reason } => (
                    rollout,
                    c.command(
                        rollout,
                        Command::Abort,
                        &format!("{ACTOR} ({reason})"),
                        wall_ms,
                    )
                    .map(|_| ()),
                ),
            };
            if let Err(e) = res {
                tracing::error!(rollout = %rollout, error = %e, "train action refused");
                failed.push(TrainEvent {
                    rollout: rollout.clone(),
                    kind: "train_action_failed".into(),
                    message: format!("{a:?} refused by the companion: {e}"),
                    actor: None,
                    at_ms: self.now_plan_ms,
                });
            }
        }
        failed
    }
}

fn status_of(c: &Controller, name: &str) -> Option<(Status, String)> {
    c.ledger
        .rollouts
        .get(name)
        .map(|r| (r.status, r.phase_name().to_string()))
}

/// Starts a rollout and brings it to its plan entry phase, held there (paused).
fn start(c: &mut Controller, name: &str, entry: &str, now: u64) -> Result<(), ApiError> {
    if let Some((Status::Pending, _)) = status_of(c, name) {
        c.command(name, Command::Start, ACTOR, now)?;
    }
    promote_to(c, name, entry, now)?;
    pause(c, name, now)
}

/// Promotes one phase at a time until the rollout is at `to` (at most the ladder's length).
fn promote_to(c: &mut Controller, name: &str, to: &str, now: u64) -> Result<(), ApiError> {
    for _ in 0..64 {
        match status_of(c, name) {
            Some((_, phase)) if phase == to => return Ok(()),
            Some((Status::Running | Status::Paused, _)) => {
                c.command(name, Command::Promote, ACTOR, now)?;
            }
            Some((s, _)) => {
                return Err(ApiError::Conflict(format!(
                    "{name} is {} and cannot reach {to}",
                    s.as_str()
                )))
            }
            None => return Err(ApiError::UnknownRollout(name.into())),
        }
    }
    Err(ApiError::Conflict(format!("{name} has no phase {to}")))
}

fn pause(c: &mut Controller, name: &str, now: u64) -> Result<(), ApiError> {
    if let Some((Status::Running, _)) = status_of(c, name) {
        c.command(name, Command::Pause, ACTOR, now)?;
    }
    Ok(())
}

/// What the train needs to know of each plan rollout, read from the controller.
pub fn observe(plan: &Plan, c: &Controller, now_ms: u64) -> BTreeMap<String, Observed> {
    plan.rollouts
        .iter()
        .filter_map(|p| {
            c.ledger
                .rollouts
                .get(&p.name)
                .map(|r| (p.name.clone(), observe_one(r, now_ms)))
        })
        .collect()
}

fn observe_one(r: &Rollout, now_ms: u64) -> Observed {
    let status = match r.status {
        Status::Pending => ObservedStatus::Pending,
        Status::Running => ObservedStatus::Running,
        Status::Paused => ObservedStatus::Paused,
        Status::Succeeded => ObservedStatus::Succeeded,
        Status::RolledBack => ObservedStatus::RolledBack,
    };
    // Judged now, not the last stored verdict: right after a promotion that one is the old phase's.
    let (judge_pass, reason) = if r.live() && r.status != Status::Succeeded {
        let v = judge::overall(&judge::checks(r, now_ms));
        (v.outcome == Outcome::Pass, v.reason)
    } else {
        let reason = r
            .last_verdict
            .as_ref()
            .filter(|v| v.outcome == Outcome::Fail)
            .map_or_else(|| "rolled back".to_string(), |v| v.reason.clone());
        (false, reason)
    };
    let p99 = |t: &dwcp_core::rollout::TrackAgg| t.latency_us.quantile(0.99);
    let p99_ratio = match (p99(&r.phase_canary), p99(&r.phase_stable)) {
        (Some(c), Some(s)) if s > 0.0 => Some(c / s),
        _ => None,
    };
    Observed {
        status,
        phase: r.phase_name().to_string(),
        judge_pass,
        reason,
        canary_requests: r.phase_canary.requests,
        canary_errors: r.phase_canary.errors,
        p99_ratio,
    }
}
