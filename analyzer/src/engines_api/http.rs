//! The engine host's HTTP handlers (the routes listed in the parent module): decode, call the host,
//! map errors to 4xx/5xx JSON.

use super::{codec_component, lock, EngineHost, COMPRESSION_ENGINE, MAX_FRAME_LEN};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use dwcp_engines::compression::{frame, Codec, Link};
use dwcp_engines::manager::ManagerError;
use serde::Deserialize;
use serde_json::{json, Value};

/// An error answer: `{"error": "..."}` with a status.
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        let status = match e {
            ManagerError::UnknownComponent(_) => StatusCode::NOT_FOUND,
            ManagerError::Rejected { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ManagerError::Registry(_) => StatusCode::CONFLICT,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json(v: impl serde::Serialize) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    let bytes = B64
        .decode(s)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{field}: {e}")))?;
    if bytes.len() as u64 > MAX_FRAME_LEN {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{field}: over {MAX_FRAME_LEN} bytes"),
        ));
    }
    Ok(bytes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadReq {
    payload_b64: String,
    bandwidth_bytes_per_s: u64,
    #[serde(default)]
    rtt_us: u64,
    #[serde(default)]
    codec: Option<Codec>,
}

impl PayloadReq {
    fn link(&self) -> Result<Link, ApiError> {
        if self.bandwidth_bytes_per_s == 0 {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "bandwidth_bytes_per_s: must be > 0".into(),
            ));
        }
        Ok(Link {
            bandwidth_bytes_per_s: self.bandwidth_bytes_per_s,
            rtt_us: self.rtt_us,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameReq {
    frame_b64: String,
}

async fn manager_health(State(host): State<Arc<EngineHost>>) -> ApiResult {
    to_json(lock(&host.manager).health_report())
}

async fn breakers(State(host): State<Arc<EngineHost>>) -> ApiResult {
    to_json(lock(&host.manager).breakers())
}

async fn breaker(State(host): State<Arc<EngineHost>>, Path(component): Path<String>) -> ApiResult {
    let snap = lock(&host.manager).breaker(&component);
    match snap {
        Some(s) => to_json(s),
        None => Err(ManagerError::UnknownComponent(component).into()),
    }
}

async fn breaker_reset(
    State(host): State<Arc<EngineHost>>,
    Path(component): Path<String>,
) -> ApiResult {
    let now = host.now_ms();
    let (snap, events) = {
        let mut m = lock(&host.manager);
        let snap = m.reset(&component, now)?;
        (snap, m.drain_events())
    };
    host.emit_manager_events(events);
    to_json(snap)
}

async fn select(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<PayloadReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let link = req.link()?;
    let payload = decode_b64("payload_b64", &req.payload_b64)?;
    let decision = lock(&host.selector).select(&payload, link);
    to_json(decision)
}

async fn compress(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<PayloadReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let link = req.link()?;
    let payload = decode_b64("payload_b64", &req.payload_b64)?;
    let result = lock(&host.selector).compress(&payload, link, req.codec);
    let (codec, frame) =
        result.map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    to_json(json!({
        "codec": codec,
        "original_len": payload.len(),
        "frame_len": frame.len(),
        "frame_b64": B64.encode(&frame),
    }))
}

async fn decompress(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<FrameReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let bytes = decode_b64("frame_b64", &req.frame_b64)?;
    let codec =
        frame::peek_codec(&bytes).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let component = codec_component(codec);
    let now = host.now_ms();
    let permit = lock(&host.manager).acquire(&component, now)?;
    let result = lock(&host.selector).decompress(&bytes);
    let events = lock(&host.manager).record(&component, now, permit, result.is_ok());
    host.emit_manager_events(events);
    match result {
        Ok(payload) => to_json(json!({ "codec": codec, "payload_b64": B64.encode(&payload) })),
        Err(e) => {
            if let Some(event) = e.to_event(COMPRESSION_ENGINE, now) {
                host.emit(event);
            }
            Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
    }
}

async fn model(State(host): State<Arc<EngineHost>>) -> ApiResult {
    let sel = lock(&host.selector);
    let m = sel.model();
    to_json(json!({
        "learner": "k-nearest-neighbour regression of ln(ratio) and ln(cpu ns/byte) per codec",
        "k": m.k,
        "trained_on_items": m.trained_on,
        "codecs": Codec::ALL.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "evaluation": sel.evaluation(),
    }))
}

/// The engine host's routes; merge into the companion's router.
pub fn router(host: Arc<EngineHost>) -> Router {
    Router::new()
        .route("/v1/engines/manager/health", get(manager_health))
        .route("/v1/engines/manager/breakers", get(breakers))
        .route("/v1/engines/manager/breakers/{component}", get(breaker))
        .route(
            "/v1/engines/manager/breakers/{component}/reset",
            post(breaker_reset),
        )
        .route("/v1/engines/compression/select", post(select))
        .route("/v1/engines/compression/compress", post(compress))
        .route("/v1/engines/compression/decompress", post(decompress))
        .route("/v1/engines/compression/model", get(model))
        .route(
            "/v1/engines/allocator/place",
            post(crate::allocator_api::place),
        )
        .with_state(host)
}
