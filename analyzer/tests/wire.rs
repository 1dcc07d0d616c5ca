//! Version skew between filters and the companion (they are upgraded at different times): a batch of the
//! first release, committed verbatim in `dwcp-core/testdata/wire/`, is taken whole by this companion, and
//! the state it gets back parses with the first release's strict parser; a batch from a newer filter
//! (unknown fields, a rollout this companion does not know) is accepted, and the unknown cells are
//! counted in `/metrics`.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dwcp_analyzer::api::{self, now_ms, App};
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "wire-test-token";
const V0_BATCH: &str = include_str!("../../dwcp-core/testdata/wire/batch-v0.json");

/// The first release's state types, copied as they were (strict: any unknown field is refused).
mod v0 {
    use super::BTreeMap;
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read by Debug and the asserts
    pub struct DynamicState {
        pub version: u64,
        #[serde(default)]
        pub kill_all: bool,
        #[serde(default)]
        pub rollouts: BTreeMap<String, RolloutState>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct RolloutState {
        pub phase: String,
        #[serde(default)]
        pub segments: BTreeMap<String, u32>,
        #[serde(default)]
        pub killed: bool,
        #[serde(default)]
        pub shadow_bp: u32,
    }
    #[derive(Debug, serde::Deserialize)]
    pub struct SyncResponse {
        pub state: DynamicState,
    }
}

fn app(dir: &std::path::Path) -> axum::Router {
    app_and_state(dir).0
}

/// The router and its state (to tick the companion: the tick closes the telemetry time slices).
fn app_and_state(dir: &std::path::Path) -> (axum::Router, Arc<App>) {
    let toml = format!(
        "token = \"{TOKEN}\"\ndb = \"{}\"\n[[rollout]]\nname = \"checkout\"\nautostart = true\nskip_shadow = true\n",
        dir.join("w.db").display()
    );
    let cfg = Config::parse(&toml, "test.toml").unwrap();
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let state = Arc::new(App::new(c, cfg.auth.clone()));
    (
        dwcp_analyzer::serve::secure(api::router(state.clone()), state.clone()),
        state,
    )
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).to_string())
}

/// The first-release batch, re-dated to now and labelled with the companion's current version.
fn v0_batch(version: u64) -> Value {
    let mut b: Value = serde_json::from_str(V0_BATCH).unwrap();
    assert!(
        b.get("protocol").is_none(),
        "the fixture is a first-release batch"
    );
    b["sent_at_ms"] = json!(now_ms());
    b["state_version"] = json!(version);
    b["routing_version"] = json!(version);
    b
}

async fn version(a: &axum::Router) -> u64 {
    let (_, text) = call(a, "GET", "/v1/config", "").await;
    serde_json::from_str::<Value>(&text).unwrap()["state"]["version"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn an_old_filter_batch_is_taken_whole_and_answered_in_its_protocol() {
    let d = tempfile::tempdir().unwrap();
    let (a, state) = app_and_state(d.path());
    let v = version(&a).await;
    let (s, text) = call(&a, "POST", "/v1/telemetry", &v0_batch(v).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    // The first release's strict parser takes the answer: nothing it does not know is in it.
    let old: v0::SyncResponse = serde_json::from_str(&text).unwrap();
    assert_eq!(old.state.version, v);
    assert_eq!(old.state.rollouts["checkout"].phase, "1%");
    // Nothing lost: every request of the fixture (10 stable + 2 canary) is counted, per cell.
    let (_, metrics) = call(&a, "GET", "/metrics", "").await;
    for line in [
        "dwcp_rollout_requests_total{rollout=\"checkout\",track=\"stable\",segment=\"standard\"} 10",
        "dwcp_rollout_requests_total{rollout=\"checkout\",track=\"canary\",segment=\"standard\"} 1",
        "dwcp_rollout_requests_total{rollout=\"checkout\",track=\"canary\",segment=\"beta\"} 1",
        "dwcp_rollout_errors_total{rollout=\"checkout\",track=\"canary\",segment=\"standard\"} 1",
        "dwcp_telemetry_batches_by_protocol_total{protocol=\"0\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    state.controller.lock().unwrap().tick(now_ms()).unwrap();
    let (_, r) = call(&a, "GET", "/v1/rollouts/checkout", "").await;
    let r: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(
        (
            r["stable"]["requests"].clone(),
            r["canary"]["requests"].clone()
        ),
        (json!(10), json!(2))
    );
}

#[tokio::test]
async fn a_newer_filter_batch_with_an_unknown_rollout_is_accepted_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    let v = version(&a).await;
    let mut b = v0_batch(v);
    b["protocol"] = json!(7);
    b["a_field_from_the_future"] = json!({"anything": [1, 2, 3]});
    let mut extra = b["cells"][0].clone();
    extra["rollout"] = json!("newer");
    extra["weight"] = json!(0.5);
    b["cells"].as_array_mut().unwrap().push(extra.clone());
    extra["segment"] = json!("beta");
    b["cells"].as_array_mut().unwrap().push(extra);
    let (s, text) = call(&a, "POST", "/v1/telemetry", &b.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["state"]["protocol"],
        dwcp_core::telemetry::PROTOCOL_VERSION
    );
    let (_, metrics) = call(&a, "GET", "/metrics", "").await;
    for line in [
        "dwcp_telemetry_unknown_total{rollout=\"newer\",part=\"cells\"} 2",
        "dwcp_telemetry_batches_total{result=\"accepted\"} 1",
        "dwcp_telemetry_batches_total{result=\"rejected\"} 0",
        "dwcp_telemetry_batches_by_protocol_total{protocol=\"7\"} 1",
        "dwcp_rollout_requests_total{rollout=\"checkout\",track=\"stable\",segment=\"standard\"} 10",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains("rollout=\"newer\",track"),
        "unknown cells are not judged"
    );
}
