//! Runs the service: open the store, serve the API, tick the rollouts.

use crate::api::{self, now_ms, App};
use crate::config::Config;
use crate::controller::Controller;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let controller = Controller::open(&cfg, now_ms())
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", cfg.db.display()))?;
    let app = Arc::new(App {
        controller: Mutex::new(controller),
        token: cfg.token.clone(),
        started_ms: now_ms(),
    });
    let ticker = app.clone();
    let tick = Duration::from_millis(cfg.tick_ms);
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            if let Err(e) = ticker.lock().tick(now_ms()) {
                tracing::error!(error = %e, "tick failed");
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, db = %cfg.db.display(), rollouts = cfg.rollouts.len(), "dwcp-analyzer serving");
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
