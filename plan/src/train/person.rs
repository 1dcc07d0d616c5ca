//! A person's commands to the train: hold, release, skip, approve. Refused (with why, changing
//! nothing) when they do not apply.

use super::{ev, Action, Output, Person, TrackState, Train};
use crate::model::Plan;

impl Train {
    /// A person's command; refused (with why, changing nothing) when it does not apply.
    pub fn command(
        &mut self,
        plan: &Plan,
        rollout: &str,
        cmd: &Person,
        actor: &str,
        now: u64,
    ) -> Result<Output, String> {
        let r = plan
            .rollout(rollout)
            .ok_or_else(|| format!("no rollout {rollout:?} in the plan"))?;
        let t = self
            .tracks
            .get_mut(rollout)
            .ok_or_else(|| format!("no rollout {rollout:?} in the train"))?;
        let mut out = Output::default();
        match cmd {
            Person::Hold { reason } => {
                if matches!(
                    t.state,
                    TrackState::Done | TrackState::Skipped { .. } | TrackState::RolledBack { .. }
                ) {
                    return Err(format!("{rollout} is {}: nothing to hold", t.state.name()));
                }
                if t.state == TrackState::Running {
                    out.actions.push(Action::Pause {
                        rollout: rollout.into(),
                        reason: reason.clone(),
                    });
                }
                t.state = TrackState::Held {
                    by: actor.into(),
                    reason: reason.clone(),
                };
                t.waiting = format!("held by {actor}: {reason}");
                ev(
                    &mut out,
                    rollout,
                    "train_held",
                    format!("{rollout} held by {actor}: {reason}"),
                    Some(actor),
                    now,
                );
            }
            Person::Release => {
                if !matches!(t.state, TrackState::Held { .. } | TrackState::Paused { .. }) {
                    return Err(format!(
                        "{rollout} is {}: only a held or paused rollout is released",
                        t.state.name()
                    ));
                }
                t.state = if t.phase.is_some() {
                    TrackState::Running
                } else {
                    TrackState::Waiting
                };
                t.waiting.clear();
                ev(
                    &mut out,
                    rollout,
                    "train_released",
                    format!("{rollout} released by {actor}"),
                    Some(actor),
                    now,
                );
            }
            Person::Skip => {
                if matches!(t.state, TrackState::Done | TrackState::Skipped { .. }) {
                    return Err(format!("{rollout} is {}: nothing to skip", t.state.name()));
                }
                t.state = TrackState::Skipped { by: actor.into() };
                t.waiting = format!("skipped by {actor}");
                ev(
                    &mut out,
                    rollout,
                    "train_skipped",
                    format!("{rollout} skipped by {actor}: its dependents no longer wait for it"),
                    Some(actor),
                    now,
                );
            }
            Person::Approve => {
                let i = match (&t.state, t.phase) {
                    (TrackState::Running, Some(i))
                        if r.phases.get(i).is_some_and(|p| p.approve) =>
                    {
                        i
                    }
                    _ => return Err(format!("{rollout} has no promotion waiting for approval")),
                };
                if !t.approved.contains(&i) {
                    t.approved.push(i);
                }
                ev(
                    &mut out,
                    rollout,
                    "train_approved",
                    format!("{actor} approved {rollout} out of {}", r.phases[i].name),
                    Some(actor),
                    now,
                );
            }
        }
        Ok(out)
    }
}
