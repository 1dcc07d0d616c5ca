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
//!   The frame is the client's input: whatever is wrong with it (structure, checksums, a body that
//!   does not decode or expands past its declared length) is the client's 4xx, counted in
//!   `dwcp_engine_client_errors_total{reason}`, never a breaker failure nor a `DataIntegrityViolation`.
//!   The output is bounded by `decompress_budget_bytes` (default 8 MiB): a declared length over it
//!   answers 413 before any decoder runs, and the decoders stop one byte past the declared length
//!   (zstd through a bounded streaming reader). Decoding runs on the blocking pool.
//! * `compress` verifies its own frame (decodes it and compares): a failure there is the engine's
//!   own integrity failure — a breaker failure and a `DataIntegrityViolation` (trigger 6).
//!
//! Every non-GET route here needs the operator role (`crate::auth`, by method and path prefix).
//! * `GET  /v1/engines/compression/model` — the figures measured at start-up on held-out data.
//! * `POST /v1/engines/allocator/place` — MADDPG placement with guard (see `allocator_api`).
//! * `/v1/engines/{pbft,tpbft,probft,bullshark}/{tx,status,faults}` — the consensus engines (`crate::consensus`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dwcp_core::signals::EngineEvent;
use dwcp_engines::compression::{self, corpus, frame, Codec, Selector, Stopwatch};
use dwcp_engines::manager::{
    Component, ComponentSpec, Health, Manager, ManagerConfig, ManagerEvent,
};
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
    /// Largest decompressed output served, bytes.
    pub decompress_budget: u64,
    /// The consensus clusters (`crate::consensus`), once started.
    pub consensus: std::sync::OnceLock<Arc<crate::consensus::ConsensusHost>>,
    /// Client errors by reason (see [`CLIENT_ERROR_REASONS`]).
    client_errors: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    started: Instant,
}

/// `reason` label values of `dwcp_engine_client_errors_total`.
pub const CLIENT_ERROR_REASONS: &[&str] = &["malformed", "checksum", "over_budget", "undecodable"];
/// Default decompression output budget.
pub const DEFAULT_DECOMPRESS_BUDGET: u64 = 8 << 20;

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
            decompress_budget: DEFAULT_DECOMPRESS_BUDGET,
            consensus: std::sync::OnceLock::new(),
            client_errors: Mutex::new(CLIENT_ERROR_REASONS.iter().map(|r| (*r, 0)).collect()),
            started: Instant::now(),
        }
    }

    /// Sets the decompression output budget (bytes).
    pub fn with_decompress_budget(mut self, bytes: u64) -> Self {
        self.decompress_budget = bytes;
        self
    }

    /// Counts a request refused as the client's error.
    pub fn note_client_error(&self, reason: &'static str) {
        *lock(&self.client_errors).entry(reason).or_insert(0) += 1;
    }

    /// Client errors by reason.
    pub fn client_errors(&self) -> Vec<(&'static str, u64)> {
        lock(&self.client_errors)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
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

pub(crate) mod http;
pub use http::router;
