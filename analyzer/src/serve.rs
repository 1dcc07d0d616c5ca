//! Runs the service: open the store, bind, start the engine host, serve the API, tick the rollouts.

use crate::api::{self, now_ms, App};
use crate::config::Config;
use crate::controller::Controller;
use crate::engines_api::{self, EngineHost};
use dwcp_engines::manager::ManagerConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seed of the engine host's corpus (fixed: the model is reproducible from run to run).
fn engine_seed() -> u64 {
    std::env::var("DWCP_ENGINE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024)
}

/// Every route of the companion, behind the one authorization policy (`crate::auth`).
pub fn router(
    app: Arc<App>,
    host: Arc<EngineHost>,
    train: Option<crate::train::api::SharedTrain>,
    flags: Option<crate::ofrep::api::SharedFlags>,
) -> axum::Router {
    let mut router = api::router(app.clone())
        .merge(engines_api::router(host.clone()))
        .merge(crate::consensus::http::router(host));
    router = router.merge(crate::train::api::router(app.clone(), train));
    if let Some(f) = flags {
        router = router.merge(crate::ofrep::api::router(app.clone(), f));
    }
    secure(router, app)
}

/// `[api]` in the companion's config: every request's time limit and how many are served at once
/// (beyond that: 503 at once, filters resend; a timed-out request gets 504, its work is not undone).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimits {
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Budget of the read routes (status, rollouts, events pages) in requests/s; 0: none
    /// (`crate::readpool::ReadBudget`).
    #[serde(default)]
    pub max_reads_per_s: u32,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_in_flight() -> usize {
    1_024
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            request_timeout_ms: default_timeout_ms(),
            max_in_flight: default_max_in_flight(),
            max_reads_per_s: 0,
        }
    }
}

impl ApiLimits {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return Err((
                "request_timeout_ms".into(),
                "must be between 100 and 600000".into(),
            ));
        }
        if self.max_reads_per_s > 1_000_000 {
            return Err((
                "max_reads_per_s".into(),
                "must be at most 1000000 (0: no budget)".into(),
            ));
        }
        if !(1..=100_000).contains(&self.max_in_flight) {
            return Err((
                "max_in_flight".into(),
                "must be between 1 and 100000".into(),
            ));
        }
        Ok(())
    }
}

/// Puts `router` behind the request timeout and the global concurrency limit (tower layers).
pub fn limit(router: axum::Router, limits: &ApiLimits) -> axum::Router {
    use axum::http::StatusCode;
    use tower::ServiceBuilder;
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    router.layer(
        ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |e: tower::BoxError| async move {
                    let (status, why) = if e.is::<tower::timeout::error::Elapsed>() {
                        (StatusCode::GATEWAY_TIMEOUT, "request timed out")
                    } else if e.is::<tower::load_shed::error::Overloaded>() {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many requests in flight",
                        )
                    } else {
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                    };
                    (status, axum::Json(serde_json::json!({ "error": why })))
                },
            ))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits.max_in_flight,
            ))
            .timeout(timeout),
    )
}

/// Puts `router` behind the authorization middleware.
pub fn secure(router: axum::Router, app: Arc<App>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        app,
        crate::auth::layer,
    ))
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let controller = Controller::open(&cfg, now_ms())
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", cfg.db.display()))?;
    // Bind first: filters' connections queue while the engine host starts.
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    for c in &cfg.auth.credentials {
        tracing::info!(credential = %c.name, roles = ?c.roles, "credential loaded");
    }
    let app = Arc::new(App::new(controller, cfg.auth.clone()));
    if cfg.api.max_reads_per_s > 0 {
        let _ = app
            .read_budget
            .set(crate::readpool::ReadBudget::new(cfg.api.max_reads_per_s));
    }
    // WAL checkpoints off the commit path (the single writer only writes).
    let store = app.memory().store_handle();
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .checkpoint_elsewhere(Duration::from_secs(1))
        .map_err(|e| anyhow::anyhow!("database {}: {e}", cfg.db.display()))?;
    // The engine host trains the compression model on start (about a second of CPU): off the runtime.
    let budget = cfg.decompress_budget_bytes;
    let host = tokio::task::spawn_blocking(move || {
        EngineHost::bootstrap(engine_seed(), ManagerConfig::default())
            .map(|h| h.with_decompress_budget(budget))
    })
    .await
    .map_err(|e| anyhow::anyhow!("engine host: {e}"))?
    .map_err(|e| anyhow::anyhow!("engine host: {e}"))?;
    let host = Arc::new(host);
    let _ = app.engines.set(host.clone());
    // Engine signals feed the rollout judgment (triggers 5–8); subscribe before the loops start.
    let mut signals = host.events.subscribe();
    let _ = host.consensus.set(crate::consensus::ConsensusHost::start(
        &cfg.consensus,
        host.events.clone(),
    ));
    engines_api::spawn_loops(host.clone(), Duration::from_secs(1));
    let judge = app.clone();
    tokio::spawn(async move {
        loop {
            match signals.recv().await {
                Ok(ev) => {
                    // It may commit (a trigger fired): off the async threads.
                    let judge = judge.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        if let Err(e) = judge.lock().on_engine_event(&ev, now_ms()) {
                            tracing::error!(error = %e, "engine event");
                        }
                    })
                    .await;
                    if let Err(e) = done {
                        tracing::error!(error = %e, "engine event panicked");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "engine signals lagged");
                }
                Err(_) => break,
            }
        }
    });

    // The release train, when configured: ticks right after the rollouts, on the plan clock.
    let train = match &cfg.train {
        Some(t) => {
            let plan = crate::train::load_plan(&t.plan)?;
            let specs: Vec<_> = cfg.rollouts.iter().map(|d| &d.spec).collect();
            crate::train::check_against(&plan, &t.plan.display().to_string(), &specs)?;
            let host = crate::train::TrainHost::open(plan, &cfg.db, t.speed, now_ms())?;
            let shared = Arc::new(Mutex::new(host));
            let _ = app.train.set(shared.clone());
            Some(shared)
        }
        None => None,
    };
    // Flags for the applications (OFREP), re-read when the file changes.
    let flags = match &cfg.flags {
        Some(path) => {
            let mut src = crate::ofrep::FlagSource::new(path);
            if let crate::ofrep::Reload::Refused(e) = src.poll() {
                return Err(anyhow::anyhow!("flag file refused: {e}"));
            }
            Some(Arc::new(Mutex::new(src)))
        }
        None => None,
    };
    let ticker = app.clone();
    let train_ticker = train.clone();
    let flags_ticker = flags.clone();
    let tick = Duration::from_millis(cfg.tick_ms);
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            let (ticker, flags_ticker, train_ticker) =
                (ticker.clone(), flags_ticker.clone(), train_ticker.clone());
            // Commits (fsync) and pruning: off the async threads.
            let done = tokio::task::spawn_blocking(move || {
                let mut c = ticker.lock();
                if let Err(e) = c.tick(now_ms()) {
                    tracing::error!(error = %e, "tick failed");
                }
                if let Some(f) = &flags_ticker {
                    f.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .poll_and_apply(&mut c, now_ms());
                }
                if let Some(t) = &train_ticker {
                    if let Err(e) = crate::train::api::lock(t).tick(&mut c, now_ms()) {
                        tracing::error!(error = %e, "train tick failed");
                    }
                }
            })
            .await;
            if let Err(e) = done {
                tracing::error!(error = %e, "tick panicked");
            }
        }
    });
    tracing::info!(listen = %cfg.listen, db = %cfg.db.display(), rollouts = cfg.rollouts.len(), "companion serving");
    let router = limit(router(app, host, train, flags), &cfg.api);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
