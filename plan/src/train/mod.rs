//! The train: one state machine over every rollout of a plan, `step(plan, observed, now) -> Output`.
//! The caller observes its rollouts (status, phase, the companion's own verdict, the phase's canary
//! numbers), passes the plan clock's `now`, executes the [`Action`]s and records the [`TrainEvent`]s.
//!
//! Rules, in the order they are applied each tick:
//! * a rollout the companion rolled back (or that failed a phase criterion here) is `rolled_back`, and
//!   every rollout depending on it (directly or not) is `paused` with the reason, whether it was running
//!   or still waiting; only a person releases them (the train never guesses that the cause is gone);
//! * a waiting rollout starts when `not_before` has passed, every gate is open and no freeze is on;
//! * a running rollout is promoted to its next plan phase when the phase was held for its hold time,
//!   the companion's judgment passes, the phase's criteria are met, no freeze is on, and — for an
//!   `approve` phase — a person approved; otherwise it waits and [`Track::waiting`] says why;
//! * people: hold (nothing starts or moves), release (back to waiting / running), skip (the train stops
//!   driving it; its dependents' gates on it count as open), approve (the pending promotion).

use crate::model::{Gate, Plan, PlanRollout};
use crate::time::{format_duration, format_ms};
use std::collections::BTreeMap;

mod person;
mod types;
pub use types::*;

pub(crate) fn ev(
    out: &mut Output,
    rollout: &str,
    kind: &str,
    message: String,
    actor: Option<&str>,
    now: u64,
) {
    out.events.push(TrainEvent {
        rollout: rollout.to_string(),
        kind: kind.to_string(),
        message,
        actor: actor.map(str::to_string),
        at_ms: now,
    });
}

impl Train {
    pub fn new(plan: &Plan) -> Self {
        let mut t = Train {
            tracks: BTreeMap::new(),
        };
        t.align(plan);
        t
    }

    /// Adds tracks for rollouts the plan gained (a saved train meeting an edited plan).
    pub fn align(&mut self, plan: &Plan) {
        for r in &plan.rollouts {
            let t = self
                .tracks
                .entry(r.name.clone())
                .or_insert_with(|| Track::new(r.phases.len()));
            t.reached_ms.resize(r.phases.len(), None);
        }
    }

    /// Whether `gate` is open at `now`, and if not, why.
    pub fn gate_open(&self, plan: &Plan, gate: &Gate, now: u64) -> Result<(), String> {
        let (Some(t), Some(r)) = (self.tracks.get(&gate.rollout), plan.rollout(&gate.rollout))
        else {
            return Err(format!("{} is not in the plan", gate.rollout));
        };
        let want = format!(
            "{} to reach {} and hold it for {}",
            gate.rollout,
            gate.phase,
            format_duration(gate.held_ms)
        );
        match &t.state {
            TrackState::Skipped { .. } => return Ok(()),
            TrackState::RolledBack { reason } => {
                return Err(format!(
                    "waiting for {want}: {} rolled back ({reason})",
                    gate.rollout
                ))
            }
            _ => {}
        }
        let idx = r.phase_index(&gate.phase).unwrap_or(usize::MAX);
        match (t.phase, t.reached_ms.get(idx).copied().flatten()) {
            (Some(p), Some(at)) if p >= idx => {
                let opens = at.saturating_add(gate.held_ms);
                if now >= opens {
                    Ok(())
                } else {
                    Err(format!("waiting for {want}: opens at {}", format_ms(opens)))
                }
            }
            _ => Err(format!(
                "waiting for {want}: it is {}",
                t.phase
                    .and_then(|p| r.phases.get(p))
                    .map_or_else(|| t.state.name().to_string(), |p| format!("at {}", p.name))
            )),
        }
    }

    fn roll_back(&mut self, plan: &Plan, name: &str, reason: &str, now: u64, out: &mut Output) {
        if let Some(t) = self.tracks.get_mut(name) {
            t.state = TrackState::RolledBack {
                reason: reason.to_string(),
            };
            t.reached_ms.iter_mut().for_each(|r| *r = None);
            t.approved.clear();
            t.waiting = format!("rolled back: {reason}; resume it in the companion");
        }
        ev(
            out,
            name,
            "train_rolled_back",
            format!("{name} rolled back: {reason}"),
            None,
            now,
        );
        for d in plan.dependents(name) {
            let Some(t) = self.tracks.get_mut(d) else {
                continue;
            };
            if matches!(
                t.state,
                TrackState::Waiting | TrackState::Running | TrackState::Held { .. }
            ) {
                let why = format!("{name} rolled back: {reason}");
                if t.state == TrackState::Running {
                    out.actions.push(Action::Pause {
                        rollout: d.to_string(),
                        reason: why.clone(),
                    });
                }
                t.state = TrackState::Paused {
                    reason: why.clone(),
                };
                t.waiting = format!("paused: {why}; `plan release {d}` once it is safe");
                ev(
                    out,
                    d,
                    "train_paused",
                    format!("{d} paused: {why}"),
                    None,
                    now,
                );
            }
        }
    }

    /// One tick of the train at plan time `now`.
    pub fn step(&mut self, plan: &Plan, observed: &BTreeMap<String, Observed>, now: u64) -> Output {
        self.align(plan);
        let mut out = Output::default();
        for r in &plan.rollouts {
            let Some(obs) = observed.get(&r.name) else {
                if let Some(t) = self.tracks.get_mut(&r.name) {
                    t.waiting = format!("the companion has no rollout named {:?}", r.name);
                }
                continue;
            };
            self.step_one(plan, r, obs, now, &mut out);
        }
        out
    }

    fn step_one(
        &mut self,
        plan: &Plan,
        r: &PlanRollout,
        obs: &Observed,
        now: u64,
        out: &mut Output,
    ) {
        let name = r.name.as_str();
        let Some(state) = self.tracks.get(name).map(|t| t.state.clone()) else {
            return;
        };
        let failed = obs.status == ObservedStatus::RolledBack;
        match state {
            TrackState::Skipped { .. } | TrackState::Done => {}
            TrackState::RolledBack { .. } => {
                if !failed && obs.status != ObservedStatus::Pending {
                    // A person resumed it in the companion: the ladder restarts, the train re-enters it.
                    if let Some(t) = self.tracks.get_mut(name) {
                        t.state = TrackState::Running;
                        t.phase = Some(0);
                        t.reached_ms[0] = Some(now);
                        t.waiting.clear();
                    }
                    out.actions.push(Action::Start {
                        rollout: name.to_string(),
                        entry: r.phases[0].name.clone(),
                    });
                    ev(
                        out,
                        name,
                        "train_restarted",
                        format!("{name} resumed by a person: back at {}", r.phases[0].name),
                        None,
                        now,
                    );
                }
            }
            _ if failed => {
                if matches!(
                    state,
                    TrackState::Running | TrackState::Paused { .. } | TrackState::Held { .. }
                ) {
                    let reason = if obs.reason.is_empty() {
                        "rolled back".to_string()
                    } else {
                        obs.reason.clone()
                    };
                    self.roll_back(plan, name, &reason, now, out);
                }
            }
            TrackState::Paused { .. } | TrackState::Held { .. } => {}
            TrackState::Waiting => self.try_start(plan, r, now, out),
            TrackState::Running => self.try_promote(plan, r, obs, now, out),
        }
    }

    fn try_start(&mut self, plan: &Plan, r: &PlanRollout, now: u64, out: &mut Output) {
        let mut why: Option<String> = None;
        if now < plan.start_ms {
            why = Some(format!("the plan starts at {}", format_ms(plan.start_ms)));
        } else if let Some(nb) = r.not_before_ms.filter(|&nb| now < nb) {
            why = Some(format!("not before {}", format_ms(nb)));
        } else {
            for g in &r.depends_on {
                if let Err(e) = self.gate_open(plan, g, now) {
                    why = Some(e);
                    break;
                }
            }
        }
        if why.is_none() {
            if let Some(f) = plan.freeze_at(now) {
                why = Some(format!(
                    "freeze {:?} until {}: nothing starts",
                    f.name,
                    format_ms(f.until_ms)
                ));
            }
        }
        let Some(t) = self.tracks.get_mut(&r.name) else {
            return;
        };
        match why {
            Some(w) => {
                t.waiting = w;
                t.waiting_since_ms.get_or_insert(now);
            }
            None => {
                t.state = TrackState::Running;
                t.phase = Some(0);
                t.reached_ms[0] = Some(now);
                t.started_ms = Some(now);
                t.waiting.clear();
                t.waiting_since_ms = None;
                out.actions.push(Action::Start {
                    rollout: r.name.clone(),
                    entry: r.phases[0].name.clone(),
                });
                ev(
                    out,
                    &r.name,
                    "train_started",
                    format!(
                        "{} started at {}: its gates opened",
                        r.name, r.phases[0].name
                    ),
                    None,
                    now,
                );
            }
        }
    }

    fn try_promote(
        &mut self,
        plan: &Plan,
        r: &PlanRollout,
        obs: &Observed,
        now: u64,
        out: &mut Output,
    ) {
        let name = r.name.as_str();
        let last = r.phases.len() - 1;
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        let mut i = t.phase.unwrap_or(0);
        // A person promoted it by hand in the companion: follow.
        if let Some(j) = r.phase_index(&obs.phase).filter(|&j| j > i) {
            for k in i + 1..=j {
                t.reached_ms[k].get_or_insert(now);
            }
            i = j;
            t.phase = Some(j);
        }
        if i >= last {
            t.state = TrackState::Done;
            t.finished_ms = Some(now);
            t.waiting.clear();
            ev(
                out,
                name,
                "train_done",
                format!("{name} reached {}: done", r.phases[last].name),
                None,
                now,
            );
            return;
        }
        let ph = &r.phases[i];
        let since = t.reached_ms[i].unwrap_or(now);
        let c = &ph.criteria;
        let rate = if obs.canary_requests == 0 {
            0.0
        } else {
            obs.canary_errors as f64 / obs.canary_requests as f64
        };
        let mut violation = None;
        if obs.canary_requests >= c.min_canary_requests && obs.canary_requests > 0 {
            if let Some(max) = c.max_error_rate.filter(|&m| rate > m) {
                violation = Some(format!(
                    "phase {} criterion: canary error rate {rate:.4} > {max}",
                    ph.name
                ));
            } else if let (Some(max), Some(v)) = (c.max_p99_ratio, obs.p99_ratio) {
                if v > max {
                    violation = Some(format!(
                        "phase {} criterion: canary p99 ratio {v:.2} > {max}",
                        ph.name
                    ));
                }
            }
        }
        if let Some(reason) = violation {
            out.actions.push(Action::Abort {
                rollout: name.to_string(),
                reason: reason.clone(),
            });
            self.roll_back(plan, name, &reason, now, out);
            return;
        }
        let wait = if obs.phase != ph.name {
            Some(format!(
                "the companion has it at {}, the plan at {}",
                obs.phase, ph.name
            ))
        } else if now < since.saturating_add(ph.hold_ms) {
            Some(format!(
                "holding {} until {}",
                ph.name,
                format_ms(since.saturating_add(ph.hold_ms))
            ))
        } else if obs.canary_requests < c.min_canary_requests {
            Some(format!(
                "phase {} needs {} canary requests for its criteria (has {})",
                ph.name, c.min_canary_requests, obs.canary_requests
            ))
        } else if !obs.judge_pass {
            Some(format!("the companion's judgment holds it: {}", obs.reason))
        } else if let Some(f) = plan.freeze_at(now) {
            Some(format!(
                "freeze {:?} until {}: no promotion",
                f.name,
                format_ms(f.until_ms)
            ))
        } else if ph.approve && !t.approved.contains(&i) {
            let w = format!(
                "waiting for a person to approve {} → {} (`dwcp-analyzer plan approve {name}`)",
                ph.name,
                r.phases[i + 1].name
            );
            if t.asked != Some(i) {
                t.asked = Some(i);
                ev(out, name, "train_approval_needed", w.clone(), None, now);
            }
            Some(w)
        } else {
            None
        };
        match wait {
            Some(w) => t.waiting = w,
            None => {
                let to = r.phases[i + 1].name.clone();
                t.phase = Some(i + 1);
                t.reached_ms[i + 1] = Some(now);
                t.waiting.clear();
                out.actions.push(Action::Promote {
                    rollout: name.to_string(),
                    to: to.clone(),
                });
                ev(
                    out,
                    name,
                    "train_promoted",
                    format!("{name} promoted {} → {to}", ph.name),
                    None,
                    now,
                );
                if i + 1 == last {
                    t.state = TrackState::Done;
                    t.finished_ms = Some(now);
                    ev(
                        out,
                        name,
                        "train_done",
                        format!("{name} reached {to}: done"),
                        None,
                        now,
                    );
                }
            }
        }
    }
}
