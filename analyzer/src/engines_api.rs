//! # Engine host: HTTP face of the DWCP Manager and the Compression Selector
//!
//! A thin adapter: every decision is made in `dwcp_engines`; this file reads the clock,
//! holds the state behind `std::sync::Mutex`es (never across an `.await`), maps errors to 4xx/5xx
//! JSON `{"error": "..."}`, and forwards every safety signal (breaker opens, memory samples,
//! integrity violations) to `EngineHost::events` for the rollout judgment (triggers 5–8).
//!
//! Bodies are JSON; binary payloads and frames travel base64-encoded (standard alphabet, with
//! padding) in `payload_b64` / `frame_b64` fields:
//!
//! * `GET  /v1/engines/manager/health` — status (degradation level), components, breakers.
//! * `GET  /v1/engines/manager/breakers` — every breaker's snapshot.
//! * `GET  /v1/engines/manager/breakers/{component}` — one breaker.
//! * `POST /v1/engines/manager/breakers/{component}/reset` — operator reset.
//! * `POST /v1/engines/compression/select` — `{"payload_b64", "bandwidth_bytes_per_s", "rtt_us"}`
//!   → the decision with predicted times per codec.
//! * `POST /v1/engines/compression/compress` — same body plus optional `"codec"` (`none`, `lz4`,
//!   `snappy`, `zstd1`, `zstd3`, `zstd9`) → `{"codec", "frame_b64", "original_len", "frame_len"}`.
//! * `POST /v1/engines/compression/decompress` — `{"frame_b64"}` → `{"codec", "payload_b64"}`.
//!   Guarded by the breaker of the frame's codec; an integrity failure answers 422, counts as a
//!   breaker failure and emits `DataIntegrityViolation`.
//! * `GET  /v1/engines/compression/model` — the figures measured at start-up on held-out data.
//! * `POST /v1/engines/allocator/place` — MADDPG placement with guard (see `allocator_api`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use dwcp_core::signals::EngineEvent;
use dwcp_engines::compression::{self, corpus, frame, Codec, Link, Selector, Stopwatch};
use dwcp_engines::manager::{
    Component, ComponentSpec, Health, Manager, ManagerConfig, ManagerError, ManagerEvent,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// The engine name compression signals carry.
pub const COMPRESSION_ENGINE: &str = "compression";
/// Largest payload or frame the host accepts (decoded bytes).
pub const MAX_FRAME_LEN: u64 = 64 << 20;

/// Shared state of the engine host.
pub struct EngineHost {
    pub manager: Mutex<Manager>,
    pub selector: Mutex<Selector>,
    pub events: broadcast::Sender<EngineEvent>,
    pub allocator: Mutex<crate::allocator_api::AllocatorHost>,
    started: Instant,
}

struct Clock(Instant);

impl Stopwatch for Clock {
    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Health of one codec: a framed round trip of a fixed sample.
struct CodecSelfTest(Codec);

impl Component for CodecSelfTest {
    fn start(&mut self, _now_ms: u64) -> Result<(), String> {
        self.check()
            .map_err(|e| format!("{} self-test: {e}", self.0.name()))
    }
    fn stop(&mut self, _now_ms: u64) {}
    fn health(&mut self, _now_ms: u64) -> Health {
        match self.check() {
            Ok(()) => Health {
                healthy: true,
                detail: "round trip ok".into(),
                memory_bytes: 0,
            },
            Err(e) => Health {
                healthy: false,
                detail: e,
                memory_bytes: 0,
            },
        }
    }
}

impl CodecSelfTest {
    fn check(&self) -> Result<(), String> {
        let sample: Vec<u8> = (0..8192u32)
            .map(|i| (i % 251) as u8 ^ (i / 97) as u8)
            .collect();
        let f = frame::encode(self.0, &sample).map_err(|e| e.to_string())?;
        match frame::decode(&f, MAX_FRAME_LEN) {
            Ok(out) if out == sample => Ok(()),
            Ok(_) => Err("round trip changed the data".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The selector as a component: healthy while it has a model; reports the model's size.
struct SelectorComponent {
    memory_bytes: u64,
}

impl Component for SelectorComponent {
    fn start(&mut self, _now_ms: u64) -> Result<(), String> {
        Ok(())
    }
    fn stop(&mut self, _now_ms: u64) {}
    fn health(&mut self, _now_ms: u64) -> Health {
        Health {
            healthy: true,
            detail: "model loaded".into(),
            memory_bytes: self.memory_bytes,
        }
    }
}

fn codec_component(codec: Codec) -> String {
    format!("codec-{}", codec.name())
}

impl EngineHost {
    /// Assemble a host from parts (tests, custom wiring).
    pub fn new(manager: Manager, selector: Selector, event_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(event_capacity.max(1));
        Self {
            manager: Mutex::new(manager),
            selector: Mutex::new(selector),
            events,
            allocator: Mutex::new(Default::default()),
            started: Instant::now(),
        }
    }

    /// Train the selector on a seeded corpus (held-out evaluation measured now, on this machine),
    /// register one component per codec plus the selector, and start the Manager. CPU-bound for
    /// about a second in release builds: call it from `spawn_blocking` or before serving.
    pub fn bootstrap(seed: u64, config: ManagerConfig) -> Result<Self, String> {
        let items = corpus::generate(seed, 180, 4 << 10, 128 << 10);
        let (train, test) = corpus::split(seed, items, 30);
        let mut clock = Clock(Instant::now());
        let selector = Selector::train_and_evaluate(&train, &test, 3, &mut clock, MAX_FRAME_LEN)
            .map_err(|e| e.to_string())?;
        let model_bytes = selector.model().neighbours.len()
            * std::mem::size_of::<compression::model::Neighbour>();
        let mut manager = Manager::new(config, seed);
        let mut deps = Vec::new();
        for codec in Codec::ALL {
            let spec = ComponentSpec {
                name: codec_component(codec),
                deps: Vec::new(),
                critical: false,
            };
            deps.push(spec.name.clone());
            manager
                .register(spec, Box::new(CodecSelfTest(codec)))
                .map_err(|e| e.to_string())?;
        }
        let spec = ComponentSpec {
            name: "selector".into(),
            deps,
            critical: true,
        };
        let memory_bytes = u64::try_from(model_bytes).unwrap_or(u64::MAX);
        manager
            .register(spec, Box::new(SelectorComponent { memory_bytes }))
            .map_err(|e| e.to_string())?;
        let host = Self::new(manager, selector, 1024);
        let now = host.now_ms();
        lock(&host.manager).start(now).map_err(|e| e.to_string())?;
        Ok(host)
    }

    /// Milliseconds since the host started (the Manager's injected clock).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Publish a signal; having no subscriber is fine.
    pub fn emit(&self, event: EngineEvent) {
        let _ = self.events.send(event);
    }

    fn emit_manager_events(&self, events: Vec<ManagerEvent>) {
        for e in events {
            if let ManagerEvent::Signal { signal } = e {
                self.emit(signal);
            }
        }
    }

    /// One turn of the Manager's health and metrics loops.
    pub fn tick(&self) {
        let now = self.now_ms();
        let events = lock(&self.manager).tick(now);
        self.emit_manager_events(events);
    }
}

/// Drive the Manager's loops every `period` until the runtime stops.
pub fn spawn_loops(
    host: Arc<EngineHost>,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Signals have a subscriber by now: a refused weight file reaches the rollout judgment.
        let dir = std::env::var_os("DWCP_ALLOCATOR_MODEL").map(std::path::PathBuf::from);
        let h = host.clone();
        let _ = tokio::task::spawn_blocking(move || h.load_allocator(dir)).await;
        let mut interval = tokio::time::interval(period);
        loop {
            interval.tick().await;
            host.tick();
        }
    })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
