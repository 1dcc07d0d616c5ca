//! The planned timeline: the train itself run against an ideal world (every judgment passes at once,
//! every approval is given at once, nothing fails), stepping the plan clock in fixed increments. The
//! same rules (gates, holds, freezes, `not_before`) decide, so "planned" can never drift from what the
//! train would do; "actual" differs only by what really happened (slow judgments, waits for people,
//! rollbacks).

use crate::model::Plan;
use crate::time::{DAY, MINUTE};
use crate::train::{Observed, ObservedStatus, Person, TrackState, Train};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Planned times (plan ms) of one rollout: when each plan phase is reached, and when it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    pub phases: Vec<(String, Option<u64>)>,
    pub done_ms: Option<u64>,
}

/// Resolution of the planned timeline.
pub const STEP_MS: u64 = 10 * MINUTE;
/// A plan that has not finished after this long is reported as not finishing (`None`s).
pub const HORIZON_MS: u64 = 730 * DAY;

pub fn planned(plan: &Plan) -> BTreeMap<String, Planned> {
    let mut train = Train::new(plan);
    let mut now = plan.start_ms;
    let end = plan.start_ms.saturating_add(HORIZON_MS);
    while now <= end {
        let observed: BTreeMap<String, Observed> = plan
            .rollouts
            .iter()
            .filter_map(|r| {
                let t = train.tracks.get(&r.name)?;
                let phase = t
                    .phase
                    .and_then(|p| r.phases.get(p))
                    .map_or_else(|| "pending".to_string(), |p| p.name.clone());
                Some((
                    r.name.clone(),
                    Observed {
                        status: if t.phase.is_some() {
                            ObservedStatus::Paused
                        } else {
                            ObservedStatus::Pending
                        },
                        phase,
                        judge_pass: true,
                        reason: String::new(),
                        canary_requests: u64::MAX / 2,
                        canary_errors: 0,
                        p99_ratio: Some(1.0),
                    },
                ))
            })
            .collect();
        train.step(plan, &observed, now);
        // People approve at once in the ideal world.
        let names: Vec<String> = train.tracks.keys().cloned().collect();
        for n in names {
            let _ = train.command(plan, &n, &Person::Approve, "plan", now);
        }
        if train.tracks.values().all(|t| t.state == TrackState::Done) {
            break;
        }
        now = now.saturating_add(STEP_MS);
    }
    plan.rollouts
        .iter()
        .map(|r| {
            let t = train.tracks.get(&r.name);
            let phases = r
                .phases
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        p.name.clone(),
                        t.and_then(|t| t.reached_ms.get(i).copied().flatten()),
                    )
                })
                .collect();
            (
                r.name.clone(),
                Planned {
                    phases,
                    done_ms: t.and_then(|t| t.finished_ms),
                },
            )
        })
        .collect()
}
