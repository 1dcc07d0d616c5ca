//! The release train's part of `/metrics` (`dwcp_train_*`). The HELP/TYPE lines are always written,
//! with or without a plan, so that the list in `dwcp_core::names` and the scrape agree on every stack.

use super::Out;
use crate::train::TrainHost;
use dwcp_core::names::*;

/// Train metrics: each plan rollout's state, how far a waiting gate is past its planned start, freezes.
pub fn render_train(train: Option<&TrainHost>) -> String {
    let mut o = Out(String::new());
    let v = train.map(crate::train::api::status_json);
    let empty = Vec::new();
    let rollouts = v
        .as_ref()
        .and_then(|v| v["rollouts"].as_array())
        .unwrap_or(&empty);
    o.head(&TRAIN_ROLLOUT_STATE);
    for r in rollouts {
        let name = r["name"].as_str().unwrap_or("");
        for st in TRAIN_STATES {
            let on = r["state"].as_str() == Some(st);
            o.line(
                &TRAIN_ROLLOUT_STATE,
                &[("rollout", name), ("state", st)],
                f64::from(u8::from(on)),
            );
        }
    }
    o.head(&TRAIN_GATE_OVERDUE);
    for r in rollouts {
        let overdue_ms = r["gate_overdue_ms"].as_u64().unwrap_or(0);
        o.line(
            &TRAIN_GATE_OVERDUE,
            &[("rollout", r["name"].as_str().unwrap_or(""))],
            overdue_ms as f64 / 1000.0,
        );
    }
    o.head(&TRAIN_FREEZE_ACTIVE);
    if let Some(v) = &v {
        o.line(
            &TRAIN_FREEZE_ACTIVE,
            &[],
            f64::from(u8::from(!v["freeze"].is_null())),
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use dwcp_plan::train::TrackState;

    /// The label values the metric promises are the train's own state names, all of them.
    #[test]
    fn train_states_are_the_track_state_names() {
        let r = String::new();
        let names: Vec<&str> = [
            TrackState::Waiting,
            TrackState::Running,
            TrackState::Done,
            TrackState::RolledBack { reason: r.clone() },
            TrackState::Paused { reason: r.clone() },
            TrackState::Held {
                by: r.clone(),
                reason: r.clone(),
            },
            TrackState::Skipped { by: r },
        ]
        .iter()
        .map(TrackState::name)
        .collect();
        assert_eq!(names, dwcp_core::names::TRAIN_STATES);
    }
}
