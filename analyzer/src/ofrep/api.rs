//! OFREP over HTTP: `POST /ofrep/v1/evaluate/flags/{key}` (one flag) and `POST /ofrep/v1/evaluate/flags`
//! (all flags, with an `ETag` that changes when the flag file or the companion's routing state does;
//! `If-None-Match` answers 304). Body: `{"context": {"targetingKey": "...", <attributes>}}`. Reads are
//! open, like the companion's other reads (the flags decide nothing the filter does not already apply).

use super::{evaluate, FlagSource};
use crate::api::Shared;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

pub type SharedFlags = Arc<Mutex<FlagSource>>;

#[derive(Clone)]
struct St {
    app: Shared,
    flags: SharedFlags,
}

pub fn router(app: Shared, flags: SharedFlags) -> Router {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(one))
        .route("/ofrep/v1/evaluate/flags", post(bulk))
        .route("/v1/flags", get(status))
        .with_state(St { app, flags })
}

fn context(body: &Bytes) -> Result<Map<String, Value>, String> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed body: {e}"))?;
    match v.get("context") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err("context must be an object".into()),
    }
}

async fn one(State(s): State<St>, Path(key): Path<String>, body: Bytes) -> Response {
    let ctx = match context(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"key": key, "errorCode": "INVALID_CONTEXT", "errorDetails": e})),
            )
                .into_response()
        }
    };
    let state = s.app.memory().state();
    let flags = s
        .flags
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .flags
        .clone();
    let Some(flags) = flags else {
        return (StatusCode::NOT_FOUND, Json(json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": "no flag file loaded"}))).into_response();
    };
    let v = evaluate(&flags, &key, &ctx, &state);
    let code = match v["errorCode"].as_str() {
        None => StatusCode::OK,
        Some("FLAG_NOT_FOUND") => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    (code, Json(v)).into_response()
}

async fn bulk(State(s): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = match context(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"errorCode": "INVALID_CONTEXT", "errorDetails": e})),
            )
                .into_response()
        }
    };
    let state = s.app.memory().state();
    let (flags, generation) = {
        let f = s.flags.lock().unwrap_or_else(|p| p.into_inner());
        (f.flags.clone(), f.generation)
    };
    let Some(flags) = flags else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"errorCode": "GENERAL", "errorDetails": "no flag file loaded"})),
        )
            .into_response();
    };
    let out: Vec<Value> = flags
        .set
        .iter()
        .map(|f| evaluate(&flags, &f.key, &ctx, &state))
        .collect();
    let body = json!({ "flags": out });
    // The answer depends on the flags, the routing state and the context: hash all three.
    let text = body.to_string();
    let etag = format!(
        "\"{generation}-{}-{:08x}\"",
        state.version,
        dwcp_core::bucket::murmur3_32(text.as_bytes())
    );
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (StatusCode::OK, [("etag", etag)], Json(body)).into_response()
}

/// The flag file's load state: generation, reloads, refusals and the last refusal.
async fn status(State(s): State<St>) -> Json<Value> {
    let f = s.flags.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "path": f.path.display().to_string(),
        "loaded": f.flags.is_some(),
        "generation": f.generation,
        "flags": f.flags.as_ref().map(|x| x.set.iter().map(|f| f.key.clone()).collect::<Vec<_>>()),
        "reloads": f.reloads,
        "refused": f.refused,
        "last_error": f.last_error,
        "kill_switch_on": f.kill_switch_on,
    }))
}
