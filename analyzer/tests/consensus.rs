//! The consensus engines' HTTP face through the full router (auth middleware included) with real
//! in-process clusters: transactions commit and the status shows the height; bad input is a 4xx
//! naming the field; writes need the operator role; an injected equivocating PBFT replica becomes a
//! `ByzantineAttackDetected` signal for `pbft`; the config section is validated with the field named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dwcp_analyzer::api::{now_ms, App};
use dwcp_analyzer::config::Config;
use dwcp_analyzer::consensus::ConsensusHost;
use dwcp_analyzer::controller::Controller;
use dwcp_analyzer::engines_api::EngineHost;
use dwcp_core::signals::EngineEvent;
use dwcp_engines::manager::ManagerConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const OPERATOR: &str = "operator-token-for-consensus-tests";
const READ: &str = "read-only-token-for-consensus-test";

fn toml(dir: &std::path::Path, consensus: &str) -> String {
    format!(
        "listen = \"0.0.0.0:8080\"\ndb = \"{}\"\n[[credential]]\nname = \"ops\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n\
         [[credential]]\nname = \"grafana\"\nrole = \"read\"\ntoken = \"{READ}\"\n{consensus}",
        dir.join("a.db").display()
    )
}

async fn stack(dir: &std::path::Path, consensus: &str) -> (axum::Router, Arc<EngineHost>) {
    let cfg = Config::parse(&toml(dir, consensus), "c.toml").unwrap();
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let app = Arc::new(App::new(c, cfg.auth.clone()));
    let host = Arc::new(EngineHost::bootstrap(5, ManagerConfig::default()).unwrap());
    let _ = host
        .consensus
        .set(ConsensusHost::start(&cfg.consensus, host.events.clone()));
    let _ = app.engines.set(host.clone());
    (
        dwcp_analyzer::serve::router(app, host.clone(), None, None),
        host,
    )
}

async fn call(
    a: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let resp = a
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(a: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(a, "POST", uri, Some(OPERATOR), body).await
}

async fn get(a: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call(a, "GET", uri, Some(READ), Value::Null).await
}

const SMALL: &str = "[consensus.pbft]\nn = 4\n[consensus.tpbft]\nn = 7\ncommittee = 4\n[consensus.probft]\nn = 7\n[consensus.bullshark]\nenabled = false\n";

/// Only Bullshark (n = 4) runs.
const BULLSHARK_ONLY: &str = "[consensus.pbft]\nenabled = false\n[consensus.tpbft]\nenabled = false\n[consensus.probft]\nenabled = false\n[consensus.bullshark]\nn = 4\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_on_every_engine_and_the_status_shows_the_height() {
    let d = tempfile::tempdir().unwrap();
    let (a, _host) = stack(d.path(), SMALL).await;
    for engine in ["pbft", "tpbft", "probft"] {
        let mut last = 0;
        for i in 0..3 {
            let (s, v) = post(
                &a,
                &format!("/v1/engines/{engine}/tx"),
                json!({"payload": format!("tx-{i}")}),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{engine}: {v}");
            assert_eq!(v["committed"], true, "{engine}: {v}");
            let h = v["height"].as_u64().unwrap();
            assert!(
                h >= 1 && h >= last,
                "{engine}: height {h} after {last}: {v}"
            );
            last = h;
            assert!(v["latency_ms"].as_f64().unwrap() > 0.0, "{v}");
        }
        let (s, st) = get(&a, &format!("/v1/engines/{engine}/status")).await;
        assert_eq!(s, StatusCode::OK, "{st}");
        assert!(
            st["committed_height"].as_u64().unwrap() >= last,
            "{engine}: {st}"
        );
        assert!(st["decisions"].as_u64().unwrap() >= 1, "{engine}: {st}");
        assert_eq!(st["txs"]["committed"], 3, "{engine}: {st}");
        assert!(
            !st["messages"].as_object().unwrap().is_empty(),
            "{engine}: {st}"
        );
        assert_eq!(
            st["members"].as_array().unwrap().len(),
            st["n"].as_u64().unwrap() as usize
        );
        eprintln!("{engine}: {st}");
    }
    let (_, st) = get(&a, "/v1/engines/tpbft/status").await;
    assert_eq!(
        st["engine_state"]["trust"].as_array().unwrap().len(),
        7,
        "{st}"
    );
    assert_eq!(
        st["engine_state"]["committee"].as_array().unwrap().len(),
        4,
        "{st}"
    );
    let (_, st) = get(&a, "/v1/engines/probft/status").await;
    // n = 7: s = min(7, ⌈2·√7⌉) = 6, q = min(6, ⌈1.5·√7⌉) = 4.
    assert_eq!(st["engine_state"]["sample_size"], 6, "{st}");
    assert_eq!(st["engine_state"]["quorum"], 4, "{st}");
    // Metrics render from the same counters.
    let (s, _) = call(&a, "GET", "/metrics", None, Value::Null).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_the_clients_4xx_and_writes_need_the_operator() {
    let d = tempfile::tempdir().unwrap();
    let (a, _host) = stack(d.path(), SMALL).await;
    let tx = "/v1/engines/pbft/tx";
    for (body, want) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (
            json!({"payload": "a", "payload_b64": "YQ=="}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"payload_b64": "not base64!"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"payload": ""}), StatusCode::BAD_REQUEST),
        (json!({"payload": "a", "extra": 1}), StatusCode::BAD_REQUEST),
        (
            json!({"payload": "x".repeat(65 << 10)}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, v) = post(&a, tx, body.clone()).await;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let faults = "/v1/engines/pbft/faults";
    for (body, want, says) in [
        (
            json!({"replica": 4, "behaviour": "silent"}),
            StatusCode::BAD_REQUEST,
            "replica",
        ),
        (
            json!({"replica": 1, "behaviour": "forge_vrf"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "behaviour",
        ),
        (
            json!({"replica": 1, "behaviour": "dance"}),
            StatusCode::BAD_REQUEST,
            "behaviour",
        ),
    ] {
        let (s, v) = post(&a, faults, body.clone()).await;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    // At most f = 1 Byzantine replica of 4.
    let (s, v) = post(&a, faults, json!({"replica": 1, "behaviour": "silent"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(&a, faults, json!({"replica": 2, "behaviour": "silent"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // With one silent backup the other three still commit.
    let (s, v) = post(&a, tx, json!({"payload": "with a silent backup"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Authorization: POST needs the operator, GET the read role.
    let (s, _) = call(&a, "POST", tx, None, json!({"payload": "a"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&a, "POST", tx, Some(READ), json!({"payload": "a"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &a,
        "POST",
        faults,
        Some(READ),
        json!({"replica": 1, "behaviour": "honest"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&a, "GET", "/v1/engines/pbft/status", None, Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_pbft_backup_is_a_byzantine_signal_for_pbft() {
    let d = tempfile::tempdir().unwrap();
    let consensus = "[consensus.pbft]\nn = 4\n[consensus.tpbft]\nenabled = false\n[consensus.probft]\nenabled = false\n[consensus.bullshark]\nenabled = false\n";
    let (a, host) = stack(d.path(), consensus).await;
    let mut signals = host.events.subscribe();
    let (s, v) = get(&a, "/v1/engines/tpbft/status").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a disabled engine: {v}");
    let (s, v) = post(&a, "/v1/engines/pbft/tx", json!({"payload": "honest"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        &a,
        "/v1/engines/pbft/faults",
        json!({"replica": 2, "behaviour": "equivocate"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(&a, "/v1/engines/pbft/tx", json!({"payload": "after"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(e @ EngineEvent::ByzantineAttackDetected { .. }) = signals.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("no ByzantineAttackDetected within 10 s");
    match ev {
        EngineEvent::ByzantineAttackDetected {
            engine,
            suspect,
            behaviour,
            ..
        } => {
            assert_eq!(engine, "pbft");
            assert_eq!(suspect, Some(2));
            assert_eq!(behaviour, "equivocation");
        }
        other => panic!("{other:?}"),
    }
    let (_, st) = get(&a, "/v1/engines/pbft/status").await;
    assert!(
        st["byzantine_detections"]["equivocation"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(st["replicas"][2]["behaviour"], "equivocate", "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bullshark_transactions_commit_and_the_status_shows_round_and_height() {
    let d = tempfile::tempdir().unwrap();
    let (a, _host) = stack(d.path(), BULLSHARK_ONLY).await;
    let mut last = 0;
    for i in 0..3 {
        let (s, v) = post(
            &a,
            "/v1/engines/bullshark/tx",
            json!({"payload": format!("bs-{i}")}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["committed"], true, "{v}");
        let h = v["height"].as_u64().unwrap();
        assert!(h >= 1 && h >= last, "height {h} after {last}: {v}");
        last = h;
    }
    let (s, st) = get(&a, "/v1/engines/bullshark/status").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    eprintln!("bullshark: {st}");
    assert_eq!(st["engine"], "bullshark", "{st}");
    assert_eq!((st["n"].as_u64(), st["f"].as_u64()), (Some(4), Some(1)));
    assert_eq!(st["txs"]["committed"], 3, "{st}");
    assert!(st["committed_height"].as_u64().unwrap() >= last, "{st}");
    assert!(st["decisions"].as_u64().unwrap() >= 1, "{st}");
    let es = &st["engine_state"];
    // A leader of even round r commits with support from round r + 1: the DAG is past round 1.
    assert!(es["round"].as_u64().unwrap() >= 2, "{st}");
    assert!(es["committed_leaders"].as_u64().unwrap() >= last, "{st}");
    assert!(es["ordered_txs"].as_u64().unwrap() >= 3, "{st}");
    assert!(
        es["gc_round"].is_u64() && es["last_committed_round"].is_u64(),
        "{st}"
    );
    let kinds = st["messages"].as_object().unwrap();
    for k in ["batch", "header", "vote", "certificate"] {
        assert!(
            kinds.get(k).and_then(Value::as_u64).unwrap_or(0) > 0,
            "{k}: {st}"
        );
    }
    assert_eq!(st["integrity_violations"], 0, "{st}");
    let (s, v) = post(
        &a,
        "/v1/engines/bullshark/faults",
        json!({"replica": 1, "behaviour": "forge_vrf"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_bullshark_validator_is_a_byzantine_signal_for_bullshark() {
    let d = tempfile::tempdir().unwrap();
    let (a, host) = stack(d.path(), BULLSHARK_ONLY).await;
    let mut signals = host.events.subscribe();
    let (s, v) = post(&a, "/v1/engines/bullshark/tx", json!({"payload": "honest"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, st) = get(&a, "/v1/engines/bullshark/status").await;
    assert!(
        st["byzantine_detections"].as_object().unwrap().is_empty(),
        "{st}"
    );
    let (s, v) = post(
        &a,
        "/v1/engines/bullshark/faults",
        json!({"replica": 3, "behaviour": "equivocate"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(e @ EngineEvent::ByzantineAttackDetected { .. }) = signals.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("no ByzantineAttackDetected within 10 s");
    match ev {
        EngineEvent::ByzantineAttackDetected {
            engine,
            suspect,
            behaviour,
            ..
        } => {
            assert_eq!(engine, "bullshark");
            assert_eq!(suspect, Some(3));
            assert_eq!(behaviour, "equivocation");
        }
        other => panic!("{other:?}"),
    }
    // The honest three keep committing.
    let (s, v) = post(&a, "/v1/engines/bullshark/tx", json!({"payload": "after"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["committed"], true, "{v}");
    assert_ne!(v["replica"], 3, "{v}");
    let (_, st) = get(&a, "/v1/engines/bullshark/status").await;
    assert!(
        st["byzantine_detections"]["equivocation"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(st["replicas"][3]["behaviour"], "equivocate", "{st}");
    assert_eq!(st["integrity_violations"], 0, "{st}");
}

#[test]
fn the_config_section_is_validated_with_the_field_named() {
    let d = tempfile::tempdir().unwrap();
    for (section, field) in [
        ("[consensus.pbft]\nn = 2\n", "consensus.pbft.n"),
        ("[consensus.probft]\nn = 1000\n", "consensus.probft.n"),
        ("[consensus.bullshark]\nn = 3\n", "consensus.bullshark.n"),
        (
            "[consensus.bullshark]\ncommittee = 4\n",
            "consensus.bullshark.committee",
        ),
        (
            "[consensus.tpbft]\nn = 16\ncommittee = 5\n",
            "consensus.tpbft.committee",
        ),
        (
            "[consensus.tpbft]\nn = 4\ncommittee = 7\n",
            "consensus.tpbft.committee",
        ),
        (
            "[consensus.pbft]\ncommittee = 4\n",
            "consensus.pbft.committee",
        ),
        (
            "[consensus.pbft]\ntx_wait_ms = 1\n",
            "consensus.pbft.tx_wait_ms",
        ),
    ] {
        let e = Config::parse(&toml(d.path(), section), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{section}: {e}");
    }
    let e = Config::parse(
        &toml(d.path(), "[consensus.pbft]\nreplicas = 4\n"),
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("replicas"), "{e}");
    let c = Config::parse(&toml(d.path(), ""), "c.toml").unwrap();
    assert!(c.consensus.pbft.enabled && c.consensus.tpbft.enabled && c.consensus.probft.enabled);
    assert!(c.consensus.bullshark.enabled && c.consensus.bullshark.n.is_none());
}
