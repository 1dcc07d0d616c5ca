//! The status the read routes serve (`GET /v1/rollouts`, `/v1/rollouts/{name}`): a snapshot of what
//! the last successful commit stored, published by the commit (`Controller::finish`). Readers take
//! the snapshot without the controller's lock, so status pages never wait for ingest or a commit's
//! fsync, and never show state that is not stored. The rendered rollout list is cached per snapshot.

use crate::api::{json_bytes, now_ms, HttpError, Shared};
use crate::auth::{Caller, Role};
use crate::controller::ApiError;
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use dwcp_core::ledger::SavedShadow;
use dwcp_core::rollout::Rollout;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The stored state of the rollouts as of one commit.
#[derive(Debug, Default)]
pub struct Status {
    /// The state version and kill switch the commit stored.
    pub version: u64,
    pub kill_all: bool,
    pub rollouts: BTreeMap<String, Arc<Rollout>>,
    /// Each rollout's shadow totals and mismatch samples as of its last commit.
    pub shadow: BTreeMap<String, Arc<SavedShadow>>,
    /// `GET /v1/rollouts`, rendered by the first reader of this snapshot.
    list: OnceLock<Value>,
}

impl Status {
    pub fn new(
        version: u64,
        kill_all: bool,
        rollouts: BTreeMap<String, Arc<Rollout>>,
        shadow: BTreeMap<String, Arc<SavedShadow>>,
    ) -> Self {
        Self {
            version,
            kill_all,
            rollouts,
            shadow,
            list: OnceLock::new(),
        }
    }

    /// The rollout list with each rollout's summary (rendered once per snapshot).
    pub fn list(&self) -> &Value {
        self.list.get_or_init(|| {
            serde_json::json!({
                "version": self.version,
                "kill_all": self.kill_all,
                "rollouts": self.rollouts.values().map(|r| summary(r)).collect::<Vec<_>>(),
            })
        })
    }
}

/// The published snapshot (replaced whole by each commit; readers clone the `Arc`).
#[derive(Debug, Clone, Default)]
pub struct StatusCell(Arc<RwLock<Arc<Status>>>);

impl StatusCell {
    pub fn get(&self) -> Arc<Status> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn publish(&self, s: Status) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }
}

pub fn summary(r: &Rollout) -> Value {
    let t = |a: &dwcp_core::rollout::TrackAgg| {
        json!({
            "requests": a.requests,
            "errors": a.errors,
            "error_rate": a.error_rate(),
            "p99_ms": a.latency_us.quantile(0.99).map(|v| v / 1000.0),
        })
    };
    json!({
        "name": r.name(),
        "status": r.status.as_str(),
        "phase": r.phase_name(),
        "phase_index": r.phase,
        "phases": r.spec.phases.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "phase_started_ms": r.phase_started_ms,
        "shares_bp": r.shares(),
        "shadow_bp": r.shadow_bp(),
        "stable": t(&r.phase_stable),
        "canary": t(&r.phase_canary),
        "expected_canary": r.phase_expected_canary,
        "shadow": r.phase_shadow,
        "verdict": r.last_verdict,
        "error_e_value": r.error_test.log_e_value().exp(),
        "error_p_value": r.error_test.p_value(),
        "latency_e_value": r.latency_test.log_e_value().exp(),
        "throughput_e_value": r.throughput_test.log_e_value().exp(),
        "untested": r.untested,
        "segments": r.segment_verdicts(),
        "run": r.run_evidence(),
        "decided_at_ms": r.decided_at_ms,
        "history": r.history,
    })
}

/// The rollouts as the last commit stored them (a snapshot: no lock, never unstored state),
/// rendered on the read threads.
pub async fn list_rollouts(State(app): State<Shared>) -> Result<Response, HttpError> {
    app.admit_read().await?;
    let status = app.status.get();
    app.reads.run(move || json_bytes(status.list())).await
}

pub async fn get_rollout(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    app.admit_read().await?;
    let status = app.status.get();
    let read = caller.has(Role::Read);
    app.reads
        .run(move || -> Result<Response, HttpError> {
            let r = status
                .rollouts
                .get(&name)
                .ok_or_else(|| HttpError::from(ApiError::UnknownRollout(name.clone())))?;
            let shadow = status.shadow.get(&name).cloned().unwrap_or_default();
            let mut s = summary(r);
            if let Value::Object(m) = &mut s {
                m.insert(
                    "checks".into(),
                    json!(dwcp_core::rollout::judge::checks(r, now_ms())),
                );
                // Samples are user data: only for the read role, even when the other reads are public.
                if read {
                    m.insert("shadow_samples".into(), json!(shadow.samples));
                } else {
                    m.insert("shadow_samples_withheld".into(), true.into());
                }
                m.insert("shadow_totals".into(), json!(shadow.totals));
            }
            Ok(json_bytes(&s))
        })
        .await?
}
