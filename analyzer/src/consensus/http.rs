//! The consensus engines' HTTP face (every route exists for `pbft`, `tpbft`, `probft` and `bullshark`; an engine
//! disabled in the config answers 404):
//!
//! * `POST /v1/engines/{engine}/tx` — `{"payload_b64": "..."}` or `{"payload": "text"}` (one of
//!   them, at most [`MAX_TX_BYTES`] decoded) → 200 `{"id", "committed": true, "replica", "height",
//!   "latency_ms"}` once an honest replica committed it, or 202 `{"id", "committed": false}` if that
//!   takes longer than the engine's `tx_wait_ms`.
//! * `GET  /v1/engines/{engine}/status` — view, committed height, members, per-replica height/view/
//!   behaviour, decisions, view changes, messages by kind, detections, and `engine_state` (T-PBFT:
//!   epoch, committee, trust vector, faulty; ProBFT: sample size, quorum, o, l; Bullshark: DAG round,
//!   committed leaders, ordered certificates and transactions, GC round).
//! * `POST /v1/engines/{engine}/faults` — `{"replica": 2, "behaviour": "equivocate" | "forge_vrf" |
//!   "silent" | "honest"}` (tests and demos).
//!
//! Authorization is the one policy of `crate::auth`: POST needs the operator role, GET the read role.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::handle::{ClusterHandle, Cmd};
use super::{Behaviour, ENGINES};
use crate::engines_api::EngineHost;

/// Largest transaction payload, bytes (decoded).
pub const MAX_TX_BYTES: usize = 64 << 10;

/// An error answer: `{"error": "..."}` with a status.
pub struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Reply = Result<(StatusCode, Json<Value>), HttpError>;

fn err(status: StatusCode, msg: impl Into<String>) -> HttpError {
    HttpError(status, msg.into())
}

fn cluster(host: &EngineHost, engine: &str) -> Result<ClusterHandle, HttpError> {
    host.consensus
        .get()
        .and_then(|c| c.clusters.get(engine).cloned())
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("engine {engine} is not running (see [consensus.{engine}] enabled)"),
            )
        })
}

fn gone() -> HttpError {
    err(StatusCode::SERVICE_UNAVAILABLE, "the cluster task stopped")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxReq {
    #[serde(default)]
    payload_b64: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

impl TxReq {
    fn bytes(self) -> Result<Vec<u8>, HttpError> {
        let bytes = match (self.payload_b64, self.payload) {
            (Some(b), None) => B64
                .decode(b)
                .map_err(|e| err(StatusCode::BAD_REQUEST, format!("payload_b64: {e}")))?,
            (None, Some(s)) => s.into_bytes(),
            _ => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "give exactly one of payload_b64 and payload",
                ))
            }
        };
        if bytes.is_empty() {
            return Err(err(StatusCode::BAD_REQUEST, "payload: empty"));
        }
        if bytes.len() > MAX_TX_BYTES {
            return Err(err(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("payload: over {MAX_TX_BYTES} bytes"),
            ));
        }
        Ok(bytes)
    }
}

async fn tx(
    host: Arc<EngineHost>,
    engine: &'static str,
    body: Result<Json<TxReq>, JsonRejection>,
) -> Reply {
    let Json(req) = body.map_err(|r| err(StatusCode::BAD_REQUEST, r.body_text()))?;
    let payload = req.bytes()?;
    let c = cluster(&host, engine)?;
    let (accepted, accepted_rx) = oneshot::channel();
    let (committed, committed_rx) = oneshot::channel();
    c.cmds
        .send(Cmd::Tx {
            payload,
            accepted,
            committed,
        })
        .await
        .map_err(|_| gone())?;
    let id = accepted_rx
        .await
        .map_err(|_| gone())?
        .map_err(|e| err(StatusCode::SERVICE_UNAVAILABLE, e))?;
    match tokio::time::timeout(c.tx_wait, committed_rx).await {
        Ok(Ok(done)) => Ok((
            StatusCode::OK,
            Json(json!({
                "id": done.id, "committed": true, "replica": done.replica,
                "height": done.height, "latency_ms": done.latency_ms,
            })),
        )),
        Ok(Err(_)) => Err(gone()),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "committed": false})),
        )),
    }
}

async fn status(host: Arc<EngineHost>, engine: &'static str) -> Reply {
    let c = cluster(&host, engine)?;
    let (reply, rx) = oneshot::channel();
    c.cmds.send(Cmd::Status(reply)).await.map_err(|_| gone())?;
    Ok((StatusCode::OK, Json(rx.await.map_err(|_| gone())?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultReq {
    replica: u32,
    behaviour: Behaviour,
}

async fn faults(
    host: Arc<EngineHost>,
    engine: &'static str,
    body: Result<Json<FaultReq>, JsonRejection>,
) -> Reply {
    let Json(req) = body.map_err(|r| err(StatusCode::BAD_REQUEST, r.body_text()))?;
    let c = cluster(&host, engine)?;
    let (reply, rx) = oneshot::channel();
    c.cmds
        .send(Cmd::Fault {
            replica: req.replica,
            behaviour: req.behaviour,
            reply,
        })
        .await
        .map_err(|_| gone())?;
    match rx.await.map_err(|_| gone())? {
        Ok(v) => Ok((StatusCode::OK, Json(v))),
        Err((code, msg)) => Err(err(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            msg,
        )),
    }
}

/// The routes of every consensus engine (answering 404 for one that is not running).
pub fn router(host: Arc<EngineHost>) -> Router {
    let mut r = Router::new();
    for engine in ENGINES {
        let (h1, h2, h3) = (host.clone(), host.clone(), host.clone());
        r = r
            .route(
                &format!("/v1/engines/{engine}/tx"),
                post(move |b| tx(h1.clone(), engine, b)),
            )
            .route(
                &format!("/v1/engines/{engine}/status"),
                get(move || status(h2.clone(), engine)),
            )
            .route(
                &format!("/v1/engines/{engine}/faults"),
                post(move |b| faults(h3.clone(), engine, b)),
            );
    }
    r.with_state(())
}
