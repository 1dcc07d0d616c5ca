//! The validated plan. Times are plan milliseconds (ms since the epoch on the plan clock); every
//! duration is a minimum: a phase is held at least `hold_ms`, a gate opens once its condition has held
//! for `held_ms`. Built only by [`crate::parse`], which checks every invariant listed on the types.

use serde::{Deserialize, Serialize};

/// A whole program of rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// When the plan's first rollout may start (plan time).
    pub start_ms: u64,
    pub freezes: Vec<Freeze>,
    /// In file order; dependencies always point to existing rollouts and never form a cycle.
    pub rollouts: Vec<PlanRollout>,
}

/// No rollout starts and none is promoted in `[from_ms, until_ms)`. Rollbacks still happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    pub name: String,
    pub from_ms: u64,
    pub until_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRollout {
    /// The companion rollout it drives (same name).
    pub name: String,
    /// Shown to people (e.g. "DWCP Manager").
    pub title: String,
    pub not_before_ms: Option<u64>,
    /// All must be open for the rollout to start.
    pub depends_on: Vec<Gate>,
    /// The ladder, non-empty; names are phases of the companion rollout, in its order; the first is
    /// where the rollout enters (the train promotes through earlier phases of the companion's ladder
    /// at once), the last is where it ends.
    pub phases: Vec<PlanPhase>,
    /// How fast a rollback of this system must complete (a target shown to people and checked against
    /// the companion's measured rollback time).
    pub rollback_target_ms: u64,
}

/// "`rollout` reached `phase` and held it (or anything later) for `held_ms`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub rollout: String,
    pub phase: String,
    pub held_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPhase {
    pub name: String,
    /// Minimum time in this phase before the train promotes out of it (plan time).
    pub hold_ms: u64,
    /// Promotion out of this phase waits for a person (`plan approve`).
    pub approve: bool,
    pub criteria: Criteria,
}

/// A phase's success criteria, on top of the companion's own judgment (which must pass too). Once the
/// phase has `min_canary_requests`, a criterion that is not met rolls the rollout back; below it the
/// phase holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    pub min_canary_requests: u64,
    /// Canary error rate (errors / requests) of the phase.
    pub max_error_rate: Option<f64>,
    /// Canary p99 ÷ stable p99 of the phase.
    pub max_p99_ratio: Option<f64>,
}

impl Plan {
    pub fn rollout(&self, name: &str) -> Option<&PlanRollout> {
        self.rollouts.iter().find(|r| r.name == name)
    }

    /// The freeze covering `now`, if any.
    pub fn freeze_at(&self, now_ms: u64) -> Option<&Freeze> {
        self.freezes
            .iter()
            .find(|f| f.from_ms <= now_ms && now_ms < f.until_ms)
    }

    /// Rollouts that depend on `name`, directly or through others (each once, plan order).
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut frontier = vec![name];
        while let Some(n) = frontier.pop() {
            for r in &self.rollouts {
                if r.depends_on.iter().any(|g| g.rollout == n) && !out.contains(&r.name.as_str()) {
                    out.push(r.name.as_str());
                    frontier.push(r.name.as_str());
                }
            }
        }
        out.sort_by_key(|n| self.rollouts.iter().position(|r| r.name == *n));
        out
    }
}

impl PlanRollout {
    pub fn phase_index(&self, name: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.name == name)
    }
}
