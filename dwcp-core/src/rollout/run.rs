//! A rollout *run*: from `Start` (or a person's `Resume` after a rollback) to its rollback or 100 %.
//! The false-abort guarantee is per run, so what it depends on is frozen when the run starts: the
//! guardrails (α and every tolerance and floor) are copied from the spec then, and a companion whose
//! config changes under a running rollout keeps judging it with the values it started with. A resume
//! after a rollback starts a new run: fresh tests (their evidence restarts at 1) and its own α, and
//! the `started` / `resumed` event records the run number and the frozen α in the audit log.

use super::judge::{
    ALPHA_ERRORS, ALPHA_LATENCY, ALPHA_SHADOW_ERRORS, ALPHA_SHADOW_LATENCY, ALPHA_SHADOW_MISMATCH,
    ALPHA_THROUGHPUT,
};
use super::{Guardrails, Rollout};
use serde::{Deserialize, Serialize};

/// The run a rollout is in and what was frozen when it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// 1 for the first run, +1 per resume after a rollback (0: not started, or stored before runs).
    pub number: u64,
    pub started_ms: u64,
    /// The guardrails the run is judged with (None: stored before runs; the spec's are used).
    pub guardrails: Option<Guardrails>,
}

impl Rollout {
    /// The guardrails this run is judged with: frozen at its start.
    pub fn guardrails(&self) -> &Guardrails {
        self.run
            .guardrails
            .as_ref()
            .unwrap_or(&self.spec.guardrails)
    }

    /// Starts run `number` at `now_ms`, freezing the spec's guardrails.
    pub(super) fn start_run(&mut self, number: u64, now_ms: u64) {
        self.run = RunInfo {
            number,
            started_ms: now_ms,
            guardrails: Some(self.spec.guardrails.clone()),
        };
    }

    /// The audit record of the run: its number, α and how α is split over the tests.
    pub fn run_evidence(&self) -> serde_json::Value {
        let a = self.guardrails().alpha;
        serde_json::json!({
            "run": self.run.number,
            "started_ms": self.run.started_ms,
            "alpha": a,
            "alpha_split": {
                "errors": ALPHA_ERRORS * a,
                "latency": ALPHA_LATENCY * a,
                "throughput": ALPHA_THROUGHPUT * a,
                "shadow_errors": ALPHA_SHADOW_ERRORS * a,
                "shadow_mismatch": ALPHA_SHADOW_MISMATCH * a,
                "shadow_latency": ALPHA_SHADOW_LATENCY * a,
            },
        })
    }
}
