//! Demo upstream: answers every request with JSON and `x-served-by: <name>`, so a person can see where
//! they landed. `POST /_control {"error_rate":0.3,"delay_ms":200,"mutate_rate":0.1}` changes its
//! behaviour at runtime (fault injection for demos and tests). Errors and mutations are spread evenly
//! and deterministically (request n fails when ⌊n·rate⌋ > ⌊(n−1)·rate⌋). `GET /_seen` lists the request
//! headers of the last 256 requests it served (so tests can check what reached an upstream).
//! `"rules": [{"header": "x-user-tier", "contains": "premium", "error_rate": 0.5}]` fails the requests
//! whose header contains the text at the rule's rate instead (first matching rule; each rule spreads its
//! own errors evenly): users of one segment failing more, or one client failing always.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    name: String,
    #[arg(long)]
    listen: String,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
struct Behaviour {
    error_rate: f64,
    delay_ms: u64,
    mutate_rate: f64,
    rules: Vec<Rule>,
}

/// Requests whose `header` contains `contains` fail at `error_rate`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
struct Rule {
    header: String,
    contains: String,
    error_rate: f64,
}

struct Up {
    name: String,
    n: AtomicU64,
    b: Mutex<Behaviour>,
    /// Requests matched per rule (reset with the behaviour).
    rule_n: Mutex<Vec<u64>>,
    seen: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

const SEEN_KEPT: usize = 256;

async fn seen(State(up): State<Arc<Up>>) -> impl IntoResponse {
    let s = up.seen.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({ "requests": s.iter().collect::<Vec<_>>() }))
}

fn hit(n: u64, rate: f64) -> bool {
    let r = rate.clamp(0.0, 1.0);
    n > 0 && ((n as f64 * r).floor() > ((n - 1) as f64 * r).floor())
}

async fn control(State(up): State<Arc<Up>>, Json(b): Json<Behaviour>) -> impl IntoResponse {
    *up.rule_n.lock().unwrap_or_else(|p| p.into_inner()) = vec![0; b.rules.len()];
    let out = json!({"name": up.name, "behaviour": b});
    *up.b.lock().unwrap_or_else(|p| p.into_inner()) = b;
    Json(out)
}

async fn serve(
    State(up): State<Arc<Up>>,
    uri: Uri,
    headers: HeaderMap,
    req_body: axum::body::Bytes,
) -> impl IntoResponse {
    let n = up.n.fetch_add(1, Ordering::Relaxed) + 1;
    {
        let h: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        let mut s = up.seen.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back(json!({ "path": uri.path(), "headers": h }));
        while s.len() > SEEN_KEPT {
            s.pop_front();
        }
    }
    let b = up.b.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if b.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(b.delay_ms)).await;
    }
    let rule = b.rules.iter().position(|r| {
        headers
            .get(r.header.as_str())
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(&r.contains))
    });
    let fails = match rule {
        Some(i) => {
            let mut counts = up.rule_n.lock().unwrap_or_else(|p| p.into_inner());
            let k = counts.get_mut(i).map_or(0, |c| {
                *c += 1;
                *c
            });
            hit(k, b.rules.get(i).map_or(0.0, |r| r.error_rate))
        }
        None => hit(n, b.error_rate),
    };
    let status = if fails {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let user = headers
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let price = if hit(n, b.mutate_rate) { 10.5 } else { 10.0 };
    let decision = headers
        .get("x-dwcp-decision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = json!({
        "served_by": up.name,
        "path": uri.path(),
        "user": user,
        "item": {"sku": "A-1", "price": price},
        // What the request carried, so that a shadow copy that lost its body answers differently.
        "request_body": {"bytes": req_body.len(), "sum": req_body.iter().map(|b| u64::from(*b)).sum::<u64>()},
        "request_id": n,
        "timestamp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
    });
    let mut h = HeaderMap::new();
    if let Ok(v) = up.name.parse() {
        h.insert("x-served-by", v);
    }
    if let Ok(v) = decision.parse() {
        h.insert("x-dwcp-decision", v);
    }
    (status, h, Json(body))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let up = Arc::new(Up {
        name: a.name.clone(),
        n: AtomicU64::new(0),
        b: Mutex::new(Behaviour::default()),
        rule_n: Mutex::new(Vec::new()),
        seen: Mutex::new(Default::default()),
    });
    let app = Router::new()
        .route("/_control", post(control))
        .route("/_seen", axum::routing::get(seen))
        .fallback(serve)
        .with_state(up);
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "demo-upstream {}: cannot listen on {}: {e}",
                a.name, a.listen
            );
            return std::process::ExitCode::from(69);
        }
    };
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-upstream: {e}");
            std::process::ExitCode::from(69)
        }
    }
}
