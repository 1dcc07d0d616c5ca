//! Reconciling the configured rollouts with the ones stored by an earlier run, at start.
//!
//! A stored rollout keeps its phase and evidence and takes the configured definition (a phase index past
//! the new ladder's end is clamped); a new one starts `Pending`, or is started at once with
//! `autostart`; a stored rollout gone from the config stays visible, read-only history.

use crate::rollout::{Command, Event, Input, Rollout, RolloutSpec};
use std::collections::BTreeMap;

/// One configured rollout.
#[derive(Debug, Clone)]
pub struct Definition {
    pub spec: RolloutSpec,
    pub autostart: bool,
}

/// The rollouts to run with, and the events of rollouts started by `autostart` (actor `config`).
pub fn reconcile(
    mut stored: BTreeMap<String, Rollout>,
    defs: &[Definition],
    now_ms: u64,
) -> (BTreeMap<String, Rollout>, Vec<(String, Event)>) {
    let mut out = BTreeMap::new();
    let mut events = Vec::new();
    for def in defs {
        let name = def.spec.name.clone();
        let r = match stored.remove(&name) {
            Some(mut r) => {
                r.spec = def.spec.clone();
                r.phase = r.phase.min(r.spec.phases.len().saturating_sub(1));
                r
            }
            None => {
                let mut r = Rollout::new(def.spec.clone());
                if def.autostart {
                    let start = Input::Command {
                        command: Command::Start,
                        actor: "config".into(),
                    };
                    events.extend(r.step(start, now_ms).into_iter().map(|e| (name.clone(), e)));
                }
                r
            }
        };
        out.insert(name, r);
    }
    out.extend(stored);
    (out, events)
}
