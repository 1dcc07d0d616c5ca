//! The companion's HTTP API (JSON; the routes are listed in the README). Who may call what is decided
//! once, for every route, by the `crate::auth` middleware (`crate::serve::router` applies it); handlers
//! take the audit actor from the [`Caller`] it found, never from the body. Errors are JSON
//! `{"error": "..."}` with a 4xx status and change nothing.

use crate::auth::{Caller, Role};
use crate::controller::{ApiError, Controller};
use crate::metrics;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dwcp_core::rollout::Command;
use dwcp_core::state::SyncResponse;
use dwcp_core::telemetry::Batch;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct App {
    pub controller: Mutex<Controller>,
    /// Signalled when a commit settled or the store was released (`crate::group`).
    pub commit_done: Condvar,
    /// The last commit's status snapshot (the status routes read it without the lock).
    pub status: crate::status::StatusCell,
    /// Low-priority threads of the read routes (`crate::readpool`).
    pub reads: crate::readpool::ReadPool,
    /// The read routes' rate budget (`[api] max_reads_per_s`; set once at start, none: no budget).
    pub read_budget: std::sync::OnceLock<crate::readpool::ReadBudget>,
    pub auth: crate::auth::Auth,
    pub started_ms: u64,
    /// The engine host, once bootstrapped (its metrics join `/metrics`).
    pub engines: std::sync::OnceLock<Arc<crate::engines_api::EngineHost>>,
    /// The release train, when the config names a plan (set once at start).
    pub train: std::sync::OnceLock<crate::train::api::SharedTrain>,
    /// Read-only database connections of the read routes (`crate::events_api`).
    pub readers: crate::events_api::Readers,
}

/// Read-only connections opened next to the writer's.
const READERS: usize = 4;

pub type Shared = Arc<App>;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl App {
    /// Waits for a read's slot in the budget (`crate::readpool::ReadBudget`).
    pub async fn admit_read(&self) -> Result<(), HttpError> {
        match self.read_budget.get() {
            Some(b) => b.admit().await,
            None => Ok(()),
        }
    }

    pub fn new(controller: Controller, auth: crate::auth::Auth) -> Self {
        let readers = (0..READERS)
            .map_while(|_| {
                controller
                    .reader()
                    .map_err(|e| tracing::warn!(error = %e, "no reader connection"))
                    .ok()
            })
            .collect();
        Self {
            readers: crate::events_api::Readers::new(readers),
            status: controller.status_cell(),
            controller: Mutex::new(controller),
            commit_done: Condvar::new(),
            read_budget: std::sync::OnceLock::new(),
            reads: crate::readpool::ReadPool::start(
                crate::readpool::READ_THREADS,
                crate::readpool::READ_NICE,
            ),
            auth,
            started_ms: now_ms(),
            engines: std::sync::OnceLock::new(),
            train: std::sync::OnceLock::new(),
        }
    }

    /// The controller with its store: waits until no group commit is being written (ticks, commands
    /// and the kill switch commit on the caller's thread, in order after the groups).
    pub fn lock(&self) -> Exclusive<'_> {
        let mut c = self.memory();
        if c.group.writing {
            c.group.exclusive_waiting += 1;
            while c.group.writing {
                c = self.commit_done.wait(c).unwrap_or_else(|p| p.into_inner());
            }
            c.group.exclusive_waiting -= 1;
        }
        Exclusive {
            guard: Some(c),
            done: &self.commit_done,
        }
    }

    /// The controller's memory only (reads, counters, applying a batch): a group's leader may be
    /// writing meanwhile, so nothing done under this guard may use the store.
    pub fn memory(&self) -> MutexGuard<'_, Controller> {
        // A poisoned lock only means a handler panicked mid-update; the controller's data is still the
        // last consistent state persisted, so keep serving rather than failing every request.
        self.controller.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// [`App::lock`]'s guard: on release, wakes the batches waiting for a commit (this holder may have
/// stored theirs, or held back their group).
pub struct Exclusive<'a> {
    guard: Option<MutexGuard<'a, Controller>>,
    done: &'a Condvar,
}

impl std::ops::Deref for Exclusive<'_> {
    type Target = Controller;
    fn deref(&self) -> &Controller {
        self.guard
            .as_deref()
            .unwrap_or_else(|| unreachable!("held until drop"))
    }
}

impl std::ops::DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut Controller {
        self.guard
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("held until drop"))
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.done.notify_all();
    }
}

pub struct HttpError(StatusCode, String);

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadBatch(e) => HttpError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            ApiError::UnknownRollout(m) => {
                HttpError(StatusCode::NOT_FOUND, format!("unknown rollout {m}"))
            }
            ApiError::Conflict(m) => HttpError(StatusCode::CONFLICT, m),
            ApiError::Unavailable(m) => HttpError(StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                HttpError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage failure (see the service log)".into(),
                )
            }
        }
    }
}

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(get_metrics))
        .route("/v1/config", get(get_config))
        .route("/v1/telemetry", post(post_telemetry))
        .route("/v1/rollouts", get(crate::status::list_rollouts))
        .route("/v1/rollouts/{name}", get(crate::status::get_rollout))
        .route(
            "/v1/rollouts/{name}/events",
            get(crate::events_api::get_events),
        )
        .route("/v1/rollouts/{name}/{action}", post(post_command))
        .route("/v1/kill", post(post_kill))
        .route("/v1/filters", get(get_filters))
        .with_state(app)
}

/// Readiness (separate from `/healthz`, liveness): the database is writable and the state loaded. 503
/// with the reason after a failed commit, until a commit succeeds (filters are routed to stable then).
async fn get_ready(State(app): State<Shared>) -> Response {
    match app.memory().ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => HttpError(StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn get_metrics(State(app): State<Shared>) -> Response {
    let mut text = metrics::render(&app.memory(), now_ms());
    if let Some(host) = app.engines.get() {
        text.push_str(&metrics::render_engines(host));
    }
    // Lock order: the controller (released above) before the train.
    let train = app.train.get().map(crate::train::api::lock);
    text.push_str(&metrics::render_train(train.as_deref()));
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Filter VMs seen in the last 3 s (one per Envoy worker, plus each proxy's main-thread VM) with the
/// state version each routes with: `all_current` is true when every one has adopted the current state.
async fn get_filters(State(app): State<Shared>) -> Json<Value> {
    let c = app.memory();
    let vms = c.vms(now_ms(), FILTER_ACTIVE_MS);
    let current = c.version();
    let oldest = vms.values().map(|v| v.routing_version).min();
    Json(json!({
        "version": current,
        "active_window_ms": FILTER_ACTIVE_MS,
        "vms": vms,
        "oldest_routing_version": oldest,
        "all_current": oldest.is_some_and(|o| o >= current),
    }))
}

/// A filter VM that sent no batch for this long is no longer counted as active in `/v1/filters`.
pub const FILTER_ACTIVE_MS: u64 = 3_000;

async fn get_config(State(app): State<Shared>) -> Json<SyncResponse> {
    Json(SyncResponse {
        state: app.memory().state(),
    })
}

async fn post_telemetry(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, HttpError> {
    require(&caller, Role::Telemetry)?;
    let start = std::time::Instant::now();
    // Decoded, applied under the lock, stored by group commit (one fsync for the batches arriving
    // together), answered once stored, in the filter's protocol (an older filter gets only fields it
    // knows), the answer encoded: all off the async threads, which stay free to take requests.
    blocking(app, move |app| {
        // Unknown fields are ignored (a newer filter may send some); the shape of known ones is checked.
        let batch: Batch = match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                app.memory().ledger.note_malformed();
                return Ok(Err(HttpError(
                    StatusCode::BAD_REQUEST,
                    format!("malformed telemetry batch: {e}"),
                )));
            }
        };
        let state = crate::group::ingest(app, batch, start)?;
        Ok(Ok(json_bytes(&SyncResponse { state })))
    })
    .await?
}

/// Runs `f` (which locks the controller and may commit) on the blocking pool. A request that times
/// out (`crate::serve::limit`) drops the wait, not the work: a batch stored after its answer was
/// given up is a replay when the filter resends it.
pub async fn blocking<T: Send + 'static>(
    app: Shared,
    f: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(HttpError::from)
}

/// A JSON body rendered off the async threads.
pub fn json_bytes(v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => ([("content-type", "application/json")], body).into_response(),
        Err(e) => HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Old clients send `{"actor": ...}`: accepted and ignored (the actor is the credential's name).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[serde(default)]
    #[allow(dead_code)]
    actor: Option<String>,
}

fn check_body(body: &Bytes) -> Result<(), HttpError> {
    if !body.is_empty() {
        serde_json::from_slice::<CommandBody>(body)
            .map_err(|e| HttpError(StatusCode::BAD_REQUEST, format!("malformed body: {e}")))?;
    }
    Ok(())
}

/// Defence in depth behind the middleware: a handler reached without the role refuses too.
pub(crate) fn require(caller: &Caller, role: Role) -> Result<(), HttpError> {
    if caller.has(role) {
        Ok(())
    } else {
        Err(HttpError(
            StatusCode::FORBIDDEN,
            format!("this route needs the {} role", role.as_str()),
        ))
    }
}

async fn post_command(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    require(&caller, Role::Operator)?;
    let command = match action.as_str() {
        "start" => Command::Start,
        "promote" => Command::Promote,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "abort" => Command::Abort,
        other => {
            return Err(HttpError(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: use start, promote, pause, resume or abort"),
            ))
        }
    };
    check_body(&body)?;
    let actor = caller.actor();
    let out = blocking(app, move |app| {
        let mut c = app.lock();
        let events = c.command(&name, command, &actor, now_ms())?;
        let r = c.ledger.rollouts.get(&name).map(crate::status::summary);
        Ok(json!({ "events": events, "rollout": r }))
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    kill_all: bool,
    /// Accepted and ignored (the actor is the credential's name).
    #[serde(default)]
    #[allow(dead_code)]
    actor: Option<String>,
}

async fn post_kill(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    require(&caller, Role::Operator)?;
    let k: KillBody = serde_json::from_slice(&body)
        .map_err(|e| HttpError(StatusCode::BAD_REQUEST, format!("malformed body: {e}")))?;
    let actor = caller.actor();
    let out = blocking(app, move |app| {
        let mut c = app.lock();
        c.set_kill_all(k.kill_all, &actor, now_ms())?;
        Ok(json!({ "kill_all": c.kill_all(), "version": c.version() }))
    })
    .await?;
    Ok(Json(out))
}
