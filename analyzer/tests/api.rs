//! API tests for every endpoint of the companion (in process, no network): reads, commands with who/when,
//! telemetry with the bad inputs of the issue (malformed JSON, negative counts, absurd values, batches
//! from the future), and the token rule (401, counted). Unknown rollouts and fields: `tests/wire.rs`.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dwcp_analyzer::api::{self, now_ms, App};
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use dwcp_core::decision::Track;
use dwcp_core::telemetry::Accumulator;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "test-token-1";

/// A named operator credential's token (the audit actor is the name).
fn tok(name: &str) -> String {
    format!("{name}-operator-token-0123456789")
}

fn app(dir: &std::path::Path) -> axum::Router {
    app_and_state(dir).0
}

/// The router and its state, for tests that drive the companion's tick (which closes the telemetry
/// time slices the judge sees).
fn app_and_state(dir: &std::path::Path) -> (axum::Router, Arc<App>) {
    let mut creds = String::new();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        creds.push_str(&format!(
            "[[credential]]\nname = \"{name}\"\nrole = \"operator\"\ntoken = \"{}\"\n",
            tok(name)
        ));
    }
    let toml = format!(
        "token = \"{TOKEN}\"\npublic_reads = true\ndb = \"{}\"\n{creds}[[rollout]]\nname = \"checkout\"\nautostart = true\nskip_shadow = true\n[[rollout]]\nname = \"search\"\n",
        dir.join("a.db").display()
    );
    let cfg = Config::parse(&toml, "test.toml").unwrap();
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let state = Arc::new(App::new(c, cfg.auth.clone()));
    (
        dwcp_analyzer::serve::secure(api::router(state.clone()), state.clone()),
        state,
    )
}

/// One tick of the companion, as its timer does every `tick_ms`.
fn tick(state: &App) {
    state.controller.lock().unwrap().tick(now_ms()).unwrap();
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn batch(vm: &str, seq: u64, version: u64) -> Value {
    let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
    for i in 0..10 {
        a.record(0, Track::Stable, 0, Some(1), i == 0, 1_000);
    }
    a.record(0, Track::Canary, 0, Some(1), false, 1_200);
    serde_json::to_value(a.take_batch(vm, seq, version, now_ms())).unwrap()
}

#[tokio::test]
async fn reads_are_open() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    let (s, _, text) = call(&a, "GET", "/healthz", None, "").await;
    assert_eq!((s, text.trim()), (StatusCode::OK, "ok"));
    let (s, v, _) = call(&a, "GET", "/v1/rollouts", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["rollouts"].as_array().unwrap().len(), 2);
    let (s, v, _) = call(&a, "GET", "/v1/rollouts/checkout", None, "").await;
    assert_eq!((s, v["phase"].as_str()), (StatusCode::OK, Some("1%")));
    assert!(
        v["checks"].as_array().unwrap().len() >= 4,
        "every check with its reason"
    );
    let (s, v, _) = call(&a, "GET", "/v1/config", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["state"]["rollouts"]["checkout"]["segments"]["standard"],
        100
    );
    assert_eq!(
        v["state"]["rollouts"]["search"]["segments"]["standard"], 0,
        "pending rollout routes nobody"
    );
    let (s, _, text) = call(&a, "GET", "/metrics", None, "").await;
    assert_eq!(s, StatusCode::OK);
    for name in [
        "dwcp_rollout_phase_index",
        "dwcp_rollout_canary_weight",
        "dwcp_rollout_e_value",
        "dwcp_rollbacks_total",
        "dwcp_decision_latency_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let (s, v, _) = call(&a, "GET", "/v1/rollouts/nope", None, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("nope"));
    let (s, v, _) = call(&a, "GET", "/v1/rollouts/checkout/events", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["events"][0]["kind"], "started");
}

#[tokio::test]
async fn token_rule_and_counting() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    for (token, uri, body) in [
        (None, "/v1/rollouts/checkout/pause", "{}"),
        (Some("wrong-token"), "/v1/rollouts/checkout/pause", "{}"),
        (None, "/v1/telemetry", "{}"),
        (Some("wrong-token"), "/v1/kill", "{\"kill_all\": true}"),
    ] {
        let (s, v, _) = call(&a, "POST", uri, token, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(v["error"].as_str().unwrap().contains("token"));
    }
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/checkout", None, "").await;
    assert_eq!(v["status"], "running", "refused commands changed nothing");
    let (_, _, metrics) = call(&a, "GET", "/metrics", None, "").await;
    assert!(metrics.contains("dwcp_auth_failures_total 4"), "{metrics}");
}

#[tokio::test]
async fn commands_record_who_and_refuse_what_does_not_apply() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    let t = Some(TOKEN);
    // The actor is the credential's name: a body naming someone else is ignored.
    let cases = [
        (
            "pause",
            "alice",
            r#"{"actor":"mallory"}"#,
            StatusCode::OK,
            "paused",
        ),
        ("pause", "alice", "", StatusCode::CONFLICT, "paused"),
        (
            "resume",
            "bob",
            r#"{"actor":"mallory"}"#,
            StatusCode::OK,
            "running",
        ),
        ("promote", "bob", "", StatusCode::OK, "running"),
        (
            "abort",
            "carol",
            r#"{"actor":"mallory"}"#,
            StatusCode::OK,
            "rolled_back",
        ),
        ("abort", "carol", "", StatusCode::CONFLICT, "rolled_back"),
    ];
    for (action, who, body, want, status) in cases {
        let (s, v, _) = call(
            &a,
            "POST",
            &format!("/v1/rollouts/checkout/{action}"),
            Some(&tok(who)),
            body,
        )
        .await;
        assert_eq!(s, want, "{action}: {v}");
        let (_, r, _) = call(&a, "GET", "/v1/rollouts/checkout", None, "").await;
        assert_eq!(r["status"], status, "{action}");
    }
    let (s, _, _) = call(&a, "POST", "/v1/rollouts/checkout/explode", t, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&a, "POST", "/v1/rollouts/nope/pause", t, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&a, "POST", "/v1/rollouts/checkout/resume", t, "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/checkout/events", None, "").await;
    let actors: Vec<(String, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        actors.contains(&("paused".into(), "alice".into())),
        "{actors:?}"
    );
    assert!(actors.contains(&("resumed".into(), "bob".into())));
    assert!(actors.contains(&("rolled_back".into(), "carol".into())));
    assert!(
        actors.iter().all(|(_, a)| a != "mallory"),
        "the body never names the actor: {actors:?}"
    );
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["at_ms"].as_u64().unwrap() > 0),
        "when is recorded"
    );
    // Kill switch.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/kill",
        t,
        r#"{"kill_all": true, "actor": "dave"}"#,
    )
    .await;
    assert_eq!((s, v["kill_all"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, v, _) = call(&a, "GET", "/v1/config", None, "").await;
    assert_eq!(v["state"]["kill_all"], true);
}

#[tokio::test]
async fn telemetry_accepts_good_batches_and_refuses_bad_ones_changing_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (a, state) = app_and_state(d.path());
    let t = Some(TOKEN);
    let (_, cfg, _) = call(&a, "GET", "/v1/config", None, "").await;
    let version = cfg["state"]["version"].as_u64().unwrap();
    let good = batch("vm-1", 1, version);
    let (s, v, _) = call(&a, "POST", "/v1/telemetry", t, &good.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["state"]["version"], version,
        "the state comes back in the answer"
    );
    let snapshot = || async {
        tick(&state);
        let (_, v, _) = call(&a, "GET", "/v1/rollouts/checkout", None, "").await;
        (
            v["stable"]["requests"].clone(),
            v["canary"]["requests"].clone(),
        )
    };
    let before = snapshot().await;
    assert_eq!(before, (json!(10), json!(1)));
    let future = {
        let mut b = batch("vm-2", 1, version);
        b["sent_at_ms"] = json!(now_ms() + 3_600_000);
        b
    };
    let mut negative = batch("vm-3", 1, version);
    negative["cells"][0]["requests"] = json!(-5);
    let mut more_errors = batch("vm-4", 1, version);
    more_errors["cells"][0]["errors"] = json!(1_000);
    let mut absurd = batch("vm-5", 1, version);
    absurd["cells"][0]["requests"] = json!(u64::MAX);
    let mut hist = batch("vm-7", 1, version);
    hist["cells"][0]["latency_us"]["count"] = json!(3);
    let mut newer_state = batch("vm-8", 1, version);
    newer_state["state_version"] = json!(version + 100);
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            "{\"vm\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "wrong shape",
            "[1,2,3]".into(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "negative count",
            negative.to_string(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "errors > requests",
            more_errors.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "errors",
        ),
        (
            "absurd count",
            absurd.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "plausible",
        ),
        (
            "batch from the future",
            future.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "future",
        ),
        (
            "histogram disagrees",
            hist.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "latency_us",
        ),
        (
            "state from the future",
            newer_state.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "state_version",
        ),
        (
            "seq 0",
            batch("vm-9", 0, version).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "seq",
        ),
    ];
    for (desc, body, want, mention) in cases {
        let (s, v, _) = call(&a, "POST", "/v1/telemetry", t, &body).await;
        assert_eq!(s, want, "{desc}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(mention),
            "{desc}: {v}"
        );
    }
    assert_eq!(snapshot().await, before, "refused batches changed nothing");
    // A replay of an accepted batch is acknowledged and ignored.
    let (s, _, _) = call(&a, "POST", "/v1/telemetry", t, &good.to_string()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(snapshot().await, before, "replay ignored");
    let (_, _, metrics) = call(&a, "GET", "/metrics", None, "").await;
    assert!(
        metrics.contains("dwcp_telemetry_batches_total{result=\"duplicate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("dwcp_rollout_requests_total{rollout=\"checkout\",track=\"stable\",segment=\"standard\"} 10"));
}

#[tokio::test]
async fn state_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let a = app(d.path());
        call(
            &a,
            "POST",
            "/v1/rollouts/checkout/promote",
            Some(&tok("erin")),
            r#"{"actor":"erin"}"#,
        )
        .await;
    }
    let a = app(d.path());
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/checkout", None, "").await;
    assert_eq!(v["phase"], "5%");
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/checkout/events", None, "").await;
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "erin"));
    let (_, c, _) = call(&a, "GET", "/v1/config", None, "").await;
    assert!(
        c["state"]["version"].as_u64().unwrap() >= 3,
        "version never goes back after a restart"
    );
}

/// The kill switch is durable state: a restart (or a crash) keeps it on, and off stays off.
#[tokio::test]
async fn kill_switch_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let a = app(d.path());
        let (st, v, _) = call(
            &a,
            "POST",
            "/v1/kill",
            Some(TOKEN),
            r#"{"kill_all":true,"actor":"erin"}"#,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (_, c, _) = call(&a, "GET", "/v1/config", None, "").await;
        assert_eq!(c["state"]["kill_all"], true);
    }
    let a = app(d.path());
    let (_, c, _) = call(&a, "GET", "/v1/config", None, "").await;
    assert_eq!(
        c["state"]["kill_all"], true,
        "kill switch lost on restart: {c}"
    );
    let metrics = call(&a, "GET", "/metrics", None, "").await.2;
    assert!(metrics.contains("dwcp_kill_all 1"), "{metrics}");
    call(
        &a,
        "POST",
        "/v1/kill",
        Some(TOKEN),
        r#"{"kill_all":false,"actor":"erin"}"#,
    )
    .await;
    drop(a);
    let a = app(d.path());
    let (_, c, _) = call(&a, "GET", "/v1/config", None, "").await;
    assert_eq!(
        c["state"]["kill_all"], false,
        "kill switch came back on: {c}"
    );
}

/// `/v1/filters` shows each VM's routing version, and whether all of them have the current state.
#[tokio::test]
async fn filters_report_the_state_version_each_vm_routes_with() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    let (_, c, _) = call(&a, "GET", "/v1/config", None, "").await;
    let v = c["state"]["version"].as_u64().unwrap();
    let (_, f, _) = call(&a, "GET", "/v1/filters", None, "").await;
    assert_eq!(f["all_current"], false, "no VM seen yet: {f}");
    let mut old = batch("vm-old", 1, v - 1);
    old["routing_version"] = json!(v - 1);
    let (st, _, text) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &old.to_string()).await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let new = batch("vm-new", 1, v);
    call(&a, "POST", "/v1/telemetry", Some(TOKEN), &new.to_string()).await;
    let (_, f, _) = call(&a, "GET", "/v1/filters", None, "").await;
    assert_eq!(f["vms"]["vm-old"]["routing_version"], v - 1, "{f}");
    assert_eq!(f["vms"]["vm-new"]["routing_version"], v, "{f}");
    assert_eq!(f["oldest_routing_version"], v - 1);
    assert_eq!(f["all_current"], false);
    let metrics = call(&a, "GET", "/metrics", None, "").await.2;
    assert!(
        metrics.contains("dwcp_filter_oldest_state_version_lag 1"),
        "{metrics}"
    );
    let mut caught_up = batch("vm-old", 2, v - 1);
    caught_up["routing_version"] = json!(v);
    call(
        &a,
        "POST",
        "/v1/telemetry",
        Some(TOKEN),
        &caught_up.to_string(),
    )
    .await;
    let (_, f, _) = call(&a, "GET", "/v1/filters", None, "").await;
    assert_eq!(f["all_current"], true, "{f}");
}

/// A batch of shadow comparisons for `rollout`: `n` compared, `mismatched` of them on `item.price`,
/// shadow `delta_ms` slower.
fn shadow_batch(
    vm: &str,
    seq: u64,
    version: u64,
    rollout: &str,
    n: u64,
    mismatched: u64,
    delta_ms: u64,
) -> Value {
    use dwcp_core::shadow::{compare, Answer, MismatchSample, ShadowSettings};
    let mut a = Accumulator::new(vec![rollout.into()], vec!["standard".into()]);
    let s = ShadowSettings::default();
    let p = Answer {
        status: 200,
        body: br#"{"item":{"price":10},"timestamp":1}"#.to_vec(),
        latency_us: 1_000,
        ..Default::default()
    };
    for i in 0..n {
        let body: &[u8] = if i < mismatched {
            br#"{"item":{"price":11},"timestamp":2}"#
        } else {
            br#"{"item":{"price":10},"timestamp":3}"#
        };
        let sh = Answer {
            status: 200,
            body: body.to_vec(),
            latency_us: 1_000 + delta_ms * 1000,
            ..Default::default()
        };
        let o = compare(&s, &p, &sh);
        a.shadow_mut(rollout).requests += 1;
        a.shadow_mut(rollout).record(&o);
        if o.mismatch() {
            a.sample(MismatchSample::new(rollout, "GET", "/items/1", &p, &sh, &o));
        }
    }
    serde_json::to_value(a.take_batch(vm, seq, version, now_ms())).unwrap()
}

async fn start_search(a: &axum::Router) -> u64 {
    let (s, _, body) = call(a, "POST", "/v1/rollouts/search/start", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, v, _) = call(a, "GET", "/v1/rollouts/search", None, "").await;
    assert_eq!(v["phase"], "shadow", "{v}");
    let (_, cfg, _) = call(a, "GET", "/v1/config", None, "").await;
    assert_eq!(
        cfg["state"]["rollouts"]["search"]["shadow_bp"], 10000,
        "{cfg}"
    );
    cfg["state"]["version"].as_u64().unwrap()
}

#[tokio::test]
async fn shadow_mismatches_fail_the_shadow_phase_with_samples_as_evidence() {
    let d = tempfile::tempdir().unwrap();
    let (a, state) = app_and_state(d.path());
    let version = start_search(&a).await;
    let mut rolled_back = false;
    for seq in 1..=20 {
        let b = shadow_batch("vm-s", seq, version, "search", 100, 10, 0);
        let (s, _, body) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        tick(&state);
        let (_, v, _) = call(&a, "GET", "/v1/rollouts/search", Some(TOKEN), "").await;
        if v["status"] == "rolled_back" {
            rolled_back = true;
            assert_eq!(
                v["shadow_samples"][0]["diffs"][0]["path"], "item.price",
                "{v}"
            );
            break;
        }
    }
    assert!(rolled_back, "10 % mismatches must fail the shadow phase");
    let (_, ev, _) = call(&a, "GET", "/v1/rollouts/search/events", Some(TOKEN), "").await;
    let txt = ev.to_string();
    assert!(
        txt.contains("shadow:mismatch") && txt.contains("item.price"),
        "{txt}"
    );
    // Reads are public in this config, samples are not: without the read role they are withheld.
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/search", None, "").await;
    assert!(v.get("shadow_samples").is_none(), "{v}");
    assert_eq!(v["shadow_samples_withheld"], true);
    let (_, ev, _) = call(&a, "GET", "/v1/rollouts/search/events", None, "").await;
    let txt = ev.to_string();
    assert!(txt.contains("shadow_samples_withheld"), "{txt}");
    assert!(!txt.contains("\"shadow_samples\""), "{txt}");
}

#[tokio::test]
async fn identical_shadow_passes_and_slow_shadow_fails_on_latency() {
    let d = tempfile::tempdir().unwrap();
    let (a, state) = app_and_state(d.path());
    let version = start_search(&a).await;
    for seq in 1..=10 {
        let b = shadow_batch("vm-s", seq, version, "search", 100, 0, 0);
        let (s, _, _) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
        assert_eq!(s, StatusCode::OK);
        tick(&state);
    }
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/search", None, "").await;
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["phase"], "shadow", "{v}");
    // The latency check looks at the phase's median delta: slow copies must become the majority.
    for seq in 11..=40 {
        let b = shadow_batch("vm-s", seq, version, "search", 100, 0, 200);
        call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
        tick(&state);
    }
    let (_, v, _) = call(&a, "GET", "/v1/rollouts/search", None, "").await;
    assert_eq!(v["status"], "rolled_back", "{v}");
    let (_, ev, _) = call(&a, "GET", "/v1/rollouts/search/events", None, "").await;
    assert!(ev.to_string().contains("shadow:latency"), "{ev}");
}

#[tokio::test]
async fn bad_shadow_stats_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = app(d.path());
    let version = start_search(&a).await;
    let mut b = shadow_batch("vm-s", 1, version, "search", 10, 1, 0);
    b["shadow"]["search"]["mismatches"] = json!(11);
    let (s, _, body) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
    assert!(s.is_client_error(), "{s} {body}");
    assert!(body.contains("shadow.search.mismatches"), "{body}");
    // A rollout this companion does not know, and a counter it does not know (a newer filter): the
    // batch is taken, the unknown rollout's stats are counted, the unknown counter ignored.
    let b = shadow_batch("vm-s", 1, version, "nope", 10, 1, 0);
    let (s, _, body) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let mut b = shadow_batch("vm-s", 2, version, "search", 10, 1, 0);
    b["shadow"]["search"]["bogus"] = json!(1);
    let (s, _, body) = call(&a, "POST", "/v1/telemetry", Some(TOKEN), &b.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, _, metrics) = call(&a, "GET", "/metrics", None, "").await;
    assert!(
        metrics.contains("dwcp_telemetry_unknown_total{rollout=\"nope\",part=\"shadow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dwcp_rollout_shadow_total{rollout=\"search\",event=\"compared\"} 10"),
        "{metrics}"
    );
}

/// Shadow totals and the mismatch samples shown at `GET /v1/rollouts/{name}` survive a restart of the
/// companion (saved on its tick).
#[tokio::test]
async fn shadow_totals_and_samples_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let toml = format!(
        "token = \"{TOKEN}\"\ndb = \"{}\"\n[[rollout]]\nname = \"search\"\nautostart = true\n",
        d.path().join("a.db").display()
    );
    let cfg = Config::parse(&toml, "test.toml").unwrap();
    {
        let mut c = Controller::open(&cfg, now_ms()).unwrap();
        let b = shadow_batch("vm-s", 1, c.version(), "search", 50, 2, 0);
        c.ingest(serde_json::from_value(b).unwrap(), now_ms())
            .unwrap();
        c.tick(now_ms()).unwrap();
    }
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let t = &c.ledger.shadow_totals["search"];
    assert_eq!((t.compared, t.mismatches), (50, 2));
    let samples = &c.ledger.shadow_samples["search"];
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].diffs[0].path, "item.price");
}

/// Only the engine's own integrity failures are signals, and those still roll its rollout back at once
/// (trigger 6); other rollouts are untouched. (A client's bad frame never gets here:
/// `tests/engine_inputs.rs`.)
#[tokio::test]
async fn an_engines_own_integrity_failure_still_aborts_its_rollout() {
    use dwcp_core::signals::{EngineEvent, IntegrityKind};
    let d = tempfile::tempdir().unwrap();
    let toml = format!(
        "token = \"{TOKEN}\"\ndb = \"{}\"\n[[rollout]]\nname = \"compression-v2\"\nautostart = true\nskip_shadow = true\nengine = \"compression\"\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\n",
        d.path().join("e.db").display()
    );
    let cfg = Config::parse(&toml, "e.toml").unwrap();
    let mut c = Controller::open(&cfg, now_ms()).unwrap();
    let ev = EngineEvent::DataIntegrityViolation {
        engine: "compression".into(),
        at_ms: now_ms(),
        violation: IntegrityKind::RoundTripMismatch,
        detail: "the engine's own frame failed verification".into(),
    };
    c.on_engine_event(&ev, now_ms()).unwrap();
    assert_eq!(
        c.ledger.rollouts["compression-v2"].status.as_str(),
        "rolled_back"
    );
    assert_eq!(c.ledger.rollouts["demo"].status.as_str(), "running");
}

/// Mismatch samples are redacted when they arrive and kept within the configured count and age.
#[test]
fn samples_are_redacted_and_expire() {
    use dwcp_core::shadow::{compare, Answer, MismatchSample, ShadowSettings};
    let d = tempfile::tempdir().unwrap();
    let toml = format!(
        "token = \"{TOKEN}\"\ndb = \"{}\"\n[samples]\nmax_per_rollout = 3\nmax_age_seconds = 60\nredact_fields = [\"email\"]\n[[rollout]]\nname = \"search\"\nautostart = true\n",
        d.path().join("s.db").display()
    );
    let cfg = Config::parse(&toml, "s.toml").unwrap();
    let t0 = now_ms();
    let mut c = Controller::open(&cfg, t0).unwrap();
    let version = c.version();
    let s = ShadowSettings::default();
    let p = Answer {
        status: 200,
        body: br#"{"email":"a@x.com","price":10}"#.to_vec(),
        ..Default::default()
    };
    let sh = Answer {
        status: 200,
        body: br#"{"email":"b@x.com","price":11}"#.to_vec(),
        ..Default::default()
    };
    let o = compare(&s, &p, &sh);
    let mut a = Accumulator::new(vec!["search".into()], vec!["standard".into()]);
    for i in 0..5 {
        a.shadow_mut("search").requests += 1;
        a.shadow_mut("search").record(&o);
        a.sample(MismatchSample::new(
            "search",
            "GET",
            &format!("/items/{i}?user=alice&token=s3cr3t"),
            &p,
            &sh,
            &o,
        ));
    }
    let b = a.take_batch("vm-1", 1, version, t0);
    c.ingest(b, t0).unwrap();
    let kept = &c.ledger.shadow_samples["search"];
    assert_eq!(kept.len(), 3, "count limit");
    for smp in kept {
        assert!(smp.request.ends_with("?user=_&token=_"), "{}", smp.request);
        let email = smp.diffs.iter().find(|d| d.path == "email").unwrap();
        assert_eq!(
            (email.primary.as_str(), email.shadow.as_str()),
            ("[redacted]", "[redacted]")
        );
        let price = smp.diffs.iter().find(|d| d.path == "price").unwrap();
        assert_eq!(price.shadow, "11", "other fields kept");
    }
    c.tick(t0 + 30_000).unwrap();
    assert_eq!(
        c.ledger.shadow_samples["search"].len(),
        3,
        "younger than 60 s: kept"
    );
    c.tick(t0 + 61_000).unwrap();
    assert!(
        c.ledger.shadow_samples["search"].is_empty(),
        "older than 60 s: gone"
    );
}
