//! # Engine host: the MADDPG allocator's inference endpoint
//!
//! `POST /v1/engines/allocator/place` — `{"nodes": [{"capacity": [cpu, mem, bw], "used": [...]}],
//! "agents": [{"demand": [cpu, mem, bw], "slack": ticks, "queue_len": n} | null]}` → one decision
//! per agent (`node` or `null` for defer, the actor's `scores`, `fallback` reason if the guard
//! replaced the action), in agent order, each applied before the next agent decides.
//!
//! The weights are loaded once, after the engine signals have a subscriber: from
//! `DWCP_ALLOCATOR_MODEL` (a directory with `manifest.json` + `actors.bin`) if set, else the
//! weights shipped in `dwcp-allocator`. A hash mismatch emits `DataIntegrityViolation` (trigger 6)
//! and leaves the endpoint answering 503. Every guard fallback is counted and reported to a
//! circuit breaker; its opens become `BreakerOpened` signals (the breaker-storm trigger), and while
//! it is open every agent gets the best-fit placement directly.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dwcp_allocator::cluster::{Cluster, Demand, Head};
use dwcp_allocator::env::Action;
use dwcp_allocator::observe::Scale;
use dwcp_allocator::policy::{safe_action, Decision, Model, Scratch};
use dwcp_allocator::weights::{self, Manifest, ENGINE};
use dwcp_core::signals::EngineEvent;
use dwcp_engines::manager::{BreakerConfig, BreakerState, CircuitBreaker};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engines_api::http::ApiError;
use crate::engines_api::{lock, EngineHost};

/// Loaded weights, the fallback breaker and the counters behind the metrics.
pub struct AllocatorHost {
    model: Option<(Manifest, Model, Scale)>,
    load_error: Option<String>,
    breaker: CircuitBreaker,
    scratch: Scratch,
    placed: u64,
    deferred: u64,
    sla_misses: u64,
    fallbacks: [u64; 4],
    utilisation: f64,
}

const REASONS: [&str; 4] = [
    "non_finite",
    "invalid_action",
    "would_over_commit",
    "breaker_open",
];

impl Default for AllocatorHost {
    fn default() -> Self {
        Self {
            model: None,
            load_error: Some("not loaded yet".into()),
            breaker: CircuitBreaker::new(BreakerConfig::default()),
            scratch: Scratch::default(),
            placed: 0,
            deferred: 0,
            sla_misses: 0,
            fallbacks: [0; 4],
            utilisation: 0.0,
        }
    }
}

impl EngineHost {
    /// Load the allocator's weights (see the module docs); signals a hash mismatch.
    pub fn load_allocator(&self, dir: Option<std::path::PathBuf>) {
        let loaded = match &dir {
            Some(d) => weights::load_dir(d),
            None => weights::shipped(),
        };
        let mut a = lock(&self.allocator);
        match loaded {
            Ok((manifest, model)) => {
                let scale = Scale::new(
                    &Cluster::new(manifest.env.nodes.clone()),
                    manifest.env.max_slack,
                    manifest.env.max_queue,
                );
                tracing::info!(seed = manifest.seed, sha256 = %manifest.weights_sha256, "allocator weights loaded");
                a.model = Some((manifest, model, scale));
                a.load_error = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "allocator weights refused");
                a.model = None;
                a.load_error = Some(e.to_string());
                drop(a);
                if let Some(ev) = e.to_event(self.now_ms()) {
                    self.emit(ev);
                }
            }
        }
    }

    /// Prometheus text of the allocator's counters.
    pub fn allocator_metrics(&self) -> String {
        let a = lock(&self.allocator);
        let mut s = String::new();
        // Names, kinds and help come from the product's one list (`dwcp_core::names`).
        let mut m = |metric: &dwcp_core::names::Metric, lines: Vec<(String, f64)>| {
            let (name, help) = (metric.name, metric.help);
            let kind = metric.kind.as_str();
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in lines {
                s.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        m(
            &dwcp_core::names::ALLOCATOR_MODEL_LOADED,
            vec![(String::new(), f64::from(u8::from(a.model.is_some())))],
        );
        m(
            &dwcp_core::names::ALLOCATOR_DECISIONS,
            vec![
                ("{outcome=\"placed\"}".into(), a.placed as f64),
                ("{outcome=\"deferred\"}".into(), a.deferred as f64),
            ],
        );
        m(
            &dwcp_core::names::ALLOCATOR_SLA_MISSES,
            vec![(String::new(), a.sla_misses as f64)],
        );
        m(
            &dwcp_core::names::ALLOCATOR_FALLBACKS,
            REASONS
                .iter()
                .zip(a.fallbacks)
                .map(|(r, v)| (format!("{{reason=\"{r}\"}}"), v as f64))
                .collect(),
        );
        m(
            &dwcp_core::names::ALLOCATOR_UTILISATION,
            vec![(String::new(), a.utilisation)],
        );
        let state = match a.breaker.state() {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        m(
            &dwcp_core::names::ALLOCATOR_BREAKER_STATE,
            vec![(String::new(), state)],
        );
        s
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReq {
    capacity: Demand,
    used: Demand,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadReq {
    demand: Demand,
    slack: u32,
    #[serde(default)]
    queue_len: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceReq {
    nodes: Vec<NodeReq>,
    agents: Vec<Option<HeadReq>>,
}

fn bad(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into())
}

/// The handler of `POST /v1/engines/allocator/place`.
pub async fn place(
    State(host): State<Arc<EngineHost>>,
    body: Result<Json<PlaceReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    let now = host.now_ms();
    let mut guard = lock(&host.allocator);
    let a = &mut *guard;
    let Some((_, model, scale)) = &a.model else {
        let why = a.load_error.clone().unwrap_or_default();
        return Err(bad(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("allocator model not loaded: {why}"),
        ));
    };
    if req.nodes.len() != model.nodes || req.agents.len() > model.agents() {
        return Err(bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the model places {} agents on {} nodes; got {} agents, {} nodes",
                model.agents(),
                model.nodes,
                req.agents.len(),
                req.nodes.len()
            ),
        ));
    }
    let (cap, used) = req.nodes.iter().map(|n| (n.capacity, n.used)).unzip();
    let mut cluster = Cluster::from_used(cap, used)
        .map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let heads: Vec<Option<Head>> = req
        .agents
        .iter()
        .map(|h| {
            h.as_ref().map(|h| Head {
                demand: h.demand,
                slack: h.slack,
                queue_len: h.queue_len.max(1),
            })
        })
        .collect();
    let decisions: Vec<Decision>;
    let mut breaker_open = false;
    match a.breaker.acquire(now) {
        Ok(permit) => {
            decisions = model.place_all(&mut cluster, &heads, scale, &mut a.scratch);
            let ok = decisions.iter().all(|d| d.fallback.is_none());
            a.breaker.record(now, permit, ok);
        }
        Err(_) => {
            breaker_open = true;
            decisions = heads
                .iter()
                .map(|h| {
                    let action = h
                        .as_ref()
                        .map_or(Action::Defer, |h| safe_action(&cluster, h));
                    if let (Action::Place(n), Some(h)) = (action, h) {
                        let _ = cluster.place(n, h.demand, u32::MAX);
                    }
                    Decision {
                        action,
                        scores: Vec::new(),
                        fallback: None,
                    }
                })
                .collect();
        }
    }
    let opened = a
        .breaker
        .drain_transitions()
        .into_iter()
        .filter(|t| t.to == BreakerState::Open)
        .count();
    let mut out = Vec::with_capacity(decisions.len());
    let mut fallbacks = 0u64;
    for (agent, (d, h)) in decisions.iter().zip(&heads).enumerate() {
        let reason = match (breaker_open, d.fallback) {
            (true, _) if h.is_some() => Some(REASONS[3]),
            (_, Some(r)) => Some(r.name()),
            _ => None,
        };
        if let Some(r) = reason {
            fallbacks += 1;
            if let Some(i) = REASONS.iter().position(|x| *x == r) {
                a.fallbacks[i] += 1;
            }
        }
        let node = match d.action {
            Action::Place(n) => Some(n),
            Action::Defer => None,
        };
        if let Some(h) = h {
            if node.is_some() {
                a.placed += 1;
            } else {
                a.deferred += 1;
                a.sla_misses += u64::from(h.slack == 0);
            }
        }
        out.push(json!({ "agent": agent, "node": node, "scores": d.scores, "fallback": reason }));
    }
    let util = cluster.node_utilisation();
    a.utilisation = util.iter().sum::<f64>() / util.len().max(1) as f64;
    let utilisation = a.utilisation;
    drop(guard);
    for _ in 0..opened {
        host.emit(EngineEvent::BreakerOpened {
            engine: ENGINE.into(),
            at_ms: now,
            component: "policy".into(),
        });
    }
    Ok(Json(
        json!({ "placements": out, "fallbacks": fallbacks, "utilisation": utilisation }),
    ))
}
