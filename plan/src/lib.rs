//! # dwcp-plan — release trains
//!
//! One canary is a rollout; what a product actually ships is a *program* of rollouts: several systems in
//! order, each gated on the ones before it, over weeks, with freeze windows and people signing off some
//! promotions. This crate is that layer, pure (no I/O, no clock): the companion reads the plan file,
//! feeds observations of its rollouts and the plan clock in, and executes the actions that come out.
//!
//! * [`parse`] — the TOML plan format, parsed then validated; every error names the line and the field.
//! * [`model`] — the validated plan: rollouts, ladders with per-phase hold times, success criteria and
//!   `approve` steps, `depends_on` gates ("X reached phase P and held it for D"), `not_before`, freezes.
//! * [`train`] — the train state machine, `Train::step(plan, input, now) -> Output`: starts a rollout
//!   when its gates open, never starts or promotes inside a freeze, pauses dependents of a rolled-back
//!   rollout with the reason, and obeys hold / release / skip / approve from a person.
//! * [`schedule`] — the planned timeline (the same machine run against an ideal world), for "planned vs
//!   actual" and for the alert on a gate that waits longer than planned.
//! * [`clock`] — the plan clock: plan time = origin + (wall − wall origin) × speed, so a 12-week plan can
//!   run in minutes for a demo without changing the plan.

pub mod clock;
pub mod model;
pub mod parse;
pub mod schedule;
pub mod time;
pub mod train;

pub use model::{Criteria, Freeze, Gate, Plan, PlanPhase, PlanRollout};
pub use parse::{parse, PlanError};
pub use train::{Action, Observed, ObservedStatus, Output, Person, Train, TrainEvent};
