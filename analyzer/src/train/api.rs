//! HTTP for the train: `GET /v1/plan` (every rollout: state, phase, why it waits, planned vs actual),
//! `GET /v1/plan/{rollout}` (explain: each gate open or not and why), `POST
//! /v1/plan/{rollout}/{hold|release|skip|approve}` (operator role; body `{"reason"}`, the actor is the credential's name),
//! and `GET /plan` (the timeline page). Its metrics (`dwcp_train_*`) are in the companion's `/metrics`
//! (`crate::metrics::render_train`).
//! Lock order everywhere: the controller first, then the train.

use super::TrainHost;
use crate::api::{now_ms, require, Shared};
use crate::auth::{Caller, Role};
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dwcp_plan::time::format_ms;
use dwcp_plan::train::TrackState;
use dwcp_plan::Person;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};

pub type SharedTrain = Arc<Mutex<TrainHost>>;

pub fn lock(t: &SharedTrain) -> MutexGuard<'_, TrainHost> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
struct St {
    app: Shared,
    train: Option<SharedTrain>,
}

/// The status page is served with or without a plan; the `/v1/plan` routes answer 404 without one.
pub fn router(app: Shared, train: Option<SharedTrain>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/plan", get(page))
        .route("/v1/plan", get(status))
        .route("/v1/plan/{rollout}", get(explain))
        .route("/v1/plan/{rollout}/{action}", post(command))
        .with_state(St { app, train })
}

fn err(code: StatusCode, m: String) -> Response {
    (code, Json(json!({ "error": m }))).into_response()
}

fn opt_ms(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |m| json!({ "ms": m, "time": format_ms(m) }))
}

/// The whole train as JSON (what `plan status` and the page show).
pub fn status_json(h: &TrainHost) -> Value {
    let now = h.now_plan_ms;
    let rollouts: Vec<Value> = h
        .plan
        .rollouts
        .iter()
        .map(|r| {
            let t = h.train.tracks.get(&r.name);
            let planned = h.planned.get(&r.name);
            let phases: Vec<Value> = r
                .phases
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "name": p.name,
                        "hold_ms": p.hold_ms,
                        "approve": p.approve,
                        "planned": opt_ms(planned.and_then(|pl| pl.phases.get(i)).and_then(|x| x.1)),
                        "actual": opt_ms(t.and_then(|t| t.reached_ms.get(i).copied().flatten())),
                    })
                })
                .collect();
            let overdue = match (t, planned.and_then(|p| p.phases.first()).and_then(|x| x.1)) {
                (Some(t), Some(ps)) if t.state == TrackState::Waiting && now > ps => now - ps,
                _ => 0,
            };
            json!({
                "name": r.name,
                "title": r.title,
                "state": t.map_or("waiting", |t| t.state.name()),
                "detail": t.map(|t| &t.state),
                "phase": t.and_then(|t| t.phase).and_then(|i| r.phases.get(i)).map(|p| p.name.clone()),
                "waiting": t.map_or("", |t| t.waiting.as_str()),
                "started": opt_ms(t.and_then(|t| t.started_ms)),
                "finished": opt_ms(t.and_then(|t| t.finished_ms)),
                "planned_done": opt_ms(planned.and_then(|p| p.done_ms)),
                "gate_overdue_ms": overdue,
                "rollback_target_ms": r.rollback_target_ms,
                "phases": phases,
            })
        })
        .collect();
    json!({
        "plan": h.plan.name,
        "start": opt_ms(Some(h.plan.start_ms)),
        "now": opt_ms(Some(now)),
        "speed": h.clock.speed,
        "freeze": h.plan.freeze_at(now).map(|f| json!({"name": f.name, "until": opt_ms(Some(f.until_ms))})),
        "freezes": h.plan.freezes.iter().map(|f| json!({"name": f.name, "from": opt_ms(Some(f.from_ms)), "until": opt_ms(Some(f.until_ms))})).collect::<Vec<_>>(),
        "rollouts": rollouts,
    })
}

fn no_plan() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "no plan: the companion's config has no [train]".into(),
    )
}

async fn status(State(s): State<St>) -> Response {
    match &s.train {
        Some(t) => Json(status_json(&lock(t))).into_response(),
        None => no_plan(),
    }
}

async fn page(State(s): State<St>) -> Html<String> {
    let v = s.train.as_ref().map(|t| status_json(&lock(t)));
    Html(super::page::render(v.as_ref()))
}

async fn explain(State(s): State<St>, Path(name): Path<String>) -> Response {
    let Some(t) = &s.train else { return no_plan() };
    let h = lock(t);
    let Some(r) = h.plan.rollout(&name) else {
        return err(
            StatusCode::NOT_FOUND,
            format!("no rollout {name:?} in the plan"),
        );
    };
    let now = h.now_plan_ms;
    let t = h.train.tracks.get(&name);
    let gates: Vec<Value> = r
        .depends_on
        .iter()
        .map(|g| {
            let res = h.train.gate_open(&h.plan, g, now);
            json!({
                "rollout": g.rollout, "phase": g.phase, "held_ms": g.held_ms,
                "open": res.is_ok(), "why": res.err().unwrap_or_default(),
            })
        })
        .collect();
    Json(json!({
        "rollout": name,
        "state": t.map_or("waiting", |t| t.state.name()),
        "detail": t.map(|t| &t.state),
        "waiting": t.map_or("", |t| t.waiting.as_str()),
        "now": opt_ms(Some(now)),
        "not_before": opt_ms(r.not_before_ms),
        "not_before_passed": r.not_before_ms.is_none_or(|nb| now >= nb),
        "freeze": h.plan.freeze_at(now).map(|f| json!({"name": f.name, "until": opt_ms(Some(f.until_ms))})),
        "gates": gates,
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn command(
    State(s): State<St>,
    Path((name, action)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    if let Err(e) = require(&caller, Role::Operator) {
        return e.into_response();
    }
    let b: Body = if body.is_empty() {
        Body::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return err(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
        }
    };
    // The audit actor is the credential's name; a body's `actor` is accepted and ignored.
    let _ = b.actor;
    let actor = caller.actor();
    let cmd = match action.as_str() {
        "hold" => Person::Hold {
            reason: b.reason.unwrap_or_else(|| "held by hand".into()),
        },
        "release" => Person::Release,
        "skip" => Person::Skip,
        "approve" => Person::Approve,
        _ => {
            return err(
                StatusCode::NOT_FOUND,
                format!("unknown action {action:?} (hold, release, skip, approve)"),
            )
        }
    };
    let Some(t) = &s.train else { return no_plan() };
    let mut c = s.app.lock();
    let mut h = lock(t);
    match h.command(&mut c, &name, &cmd, &actor, now_ms()) {
        Ok(events) => Json(json!({ "rollout": name, "events": events })).into_response(),
        Err(m) if m.starts_with("no rollout") => err(StatusCode::NOT_FOUND, m),
        Err(m) => err(StatusCode::CONFLICT, m),
    }
}
