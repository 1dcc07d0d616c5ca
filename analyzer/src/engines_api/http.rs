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

/// Runs CPU-bound codec work on the blocking pool, off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("codec task: {e}"),
        )
    })?
}

async fn select(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<PayloadReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let link = req.link()?;
    let payload = decode_b64("payload_b64", &req.payload_b64)?;
    let decision = blocking(move || Ok(lock(&host.selector).select(&payload, link))).await?;
    to_json(decision)
}

async fn compress(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<PayloadReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let link = req.link()?;
    let payload = decode_b64("payload_b64", &req.payload_b64)?;
    let h = host.clone();
    let (codec, frame, original_len) = blocking(move || {
        let (codec, frame) = lock(&h.selector)
            .compress(&payload, link, req.codec)
            .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        // The engine checks its own output: a frame it made that does not decode back to the payload
        // is its own integrity failure (the breaker of that codec, trigger 6).
        let component = codec_component(codec);
        let now = h.now_ms();
        let permit = lock(&h.manager).acquire(&component, now)?;
        let check = frame::decode(&frame, MAX_FRAME_LEN).and_then(|out| {
            if out == payload {
                Ok(())
            } else {
                Err(frame::FrameError::ContentChecksumMismatch {
                    expected: crc32(&payload),
                    actual: crc32(&out),
                })
            }
        });
        let events = lock(&h.manager).record(&component, now, permit, check.is_ok());
        h.emit_manager_events(events);
        if let Err(e) = check {
            if let Some(event) = e.to_event(COMPRESSION_ENGINE, now) {
                h.emit(event);
            }
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the engine's own frame failed verification: {e}"),
            ));
        }
        Ok((codec, frame, payload.len()))
    })
    .await?;
    to_json(json!({
        "codec": codec,
        "original_len": original_len,
        "frame_len": frame.len(),
        "frame_b64": B64.encode(&frame),
    }))
}

fn crc32(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(b);
    h.finalize()
}

/// A client's frame that cannot be served: the status and the counter's reason.
fn client_error(host: &EngineHost, e: &frame::FrameError) -> ApiError {
    use frame::FrameError as F;
    let (status, reason) = match e {
        F::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "over_budget"),
        F::ChecksumMismatch { .. } | F::ContentChecksumMismatch { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "checksum")
        }
        F::Codec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "undecodable"),
        F::TooShort | F::BadMagic | F::UnsupportedVersion(_) | F::UnknownCodec(_) => {
            (StatusCode::BAD_REQUEST, "malformed")
        }
    };
    host.note_client_error(reason);
    ApiError(status, format!("invalid frame (the client's error): {e}"))
}

async fn decompress(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<FrameReq>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let bytes = decode_b64("frame_b64", &req.frame_b64)?;
    // Structure, frame CRC and the declared length against the budget: before any decoder runs.
    let (codec, len) =
        frame::verify(&bytes, host.decompress_budget).map_err(|e| client_error(&host, &e))?;
    let component = codec_component(codec);
    let now = host.now_ms();
    let permit = lock(&host.manager).acquire(&component, now)?;
    let decoded = tokio::task::spawn_blocking(move || frame::decode_verified(&bytes, codec, len))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("codec task: {e}"),
            )
        })?;
    match decoded {
        Ok(payload) => {
            let events = lock(&host.manager).record(&component, now, permit, true);
            host.emit_manager_events(events);
            to_json(json!({ "codec": codec, "payload_b64": B64.encode(&payload) }))
        }
        // A body that does not decode to what its header says is the client's frame being wrong,
        // not the codec: the permit is dropped unrecorded (no breaker failure), no safety signal.
        Err(e) => Err(client_error(&host, &e)),
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
