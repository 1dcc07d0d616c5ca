//! Trust boundaries of the companion's API, through the full router (every module's routes behind the
//! one middleware): each mutating route answers 401 without a credential and 403 with the wrong role;
//! a telemetry credential cannot promote or abort; the audit actor is the credential's name; rotated
//! tokens both work; reads need the read role; the public exceptions are exactly the listed ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dwcp_analyzer::api::{now_ms, App};
use dwcp_analyzer::auth;
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use dwcp_analyzer::engines_api::EngineHost;
use dwcp_engines::manager::ManagerConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const TELEMETRY: &str = "sidecar-telemetry-token-0001";
const OPERATOR_OLD: &str = "operator-token-before-rotation";
const OPERATOR_NEW: &str = "operator-token-after-rotation";
const READ: &str = "read-only-token-for-dashboards";

/// Every route that changes something, with a body it accepts, and the role it needs. A route added
/// to the companion is covered by the middleware's default (non-GET → operator); this list is what the
/// test drives, and `public_exceptions_are_exactly_these` fails when someone opens a route.
const MUTATING: &[(&str, &str, &str, auth::Role)] = {
    use auth::Role::{Operator, Telemetry};
    &[
        ("POST", "/v1/telemetry", "{}", Telemetry),
        ("POST", "/v1/rollouts/checkout/start", "{}", Operator),
        ("POST", "/v1/rollouts/checkout/promote", "{}", Operator),
        ("POST", "/v1/rollouts/checkout/pause", "{}", Operator),
        ("POST", "/v1/rollouts/checkout/resume", "{}", Operator),
        ("POST", "/v1/rollouts/checkout/abort", "{}", Operator),
        ("POST", "/v1/kill", r#"{"kill_all": false}"#, Operator),
        (
            "POST",
            "/v1/engines/manager/breakers/codec-zstd3/reset",
            "",
            Operator,
        ),
        (
            "POST",
            "/v1/engines/compression/select",
            r#"{"payload_b64": "aGVsbG8=", "bandwidth_bytes_per_s": 1000000}"#,
            Operator,
        ),
        (
            "POST",
            "/v1/engines/compression/compress",
            r#"{"payload_b64": "aGVsbG8=", "bandwidth_bytes_per_s": 1000000}"#,
            Operator,
        ),
        (
            "POST",
            "/v1/engines/compression/decompress",
            r#"{"frame_b64": "AAAA"}"#,
            Operator,
        ),
        ("POST", "/v1/engines/allocator/place", "{}", Operator),
        ("POST", "/v1/plan/checkout/hold", "{}", Operator),
        ("POST", "/v1/plan/checkout/release", "{}", Operator),
        ("POST", "/v1/plan/checkout/skip", "{}", Operator),
        ("POST", "/v1/plan/checkout/approve", "{}", Operator),
        // Routes of other modules (consensus engines) are covered by the prefix rule.
        ("POST", "/v1/engines/pbft/propose", "{}", Operator),
        ("POST", "/v1/engines/tpbft/reset", "{}", Operator),
    ]
};

/// Reads that need the read role (status, events, samples, engine state).
const READS: &[&str] = &[
    "/v1/rollouts",
    "/v1/rollouts/checkout",
    "/v1/rollouts/checkout/events",
    "/v1/filters",
    "/v1/plan",
    "/v1/engines/manager/health",
    "/v1/engines/manager/breakers",
    "/v1/engines/compression/model",
];

fn config(dir: &std::path::Path) -> Config {
    let toml = format!(
        r#"listen = "0.0.0.0:8080"
db = "{}"
[[credential]]
name = "sidecars"
role = "telemetry"
token = "{TELEMETRY}"
[[credential]]
name = "ops-alice-2025"
role = "operator"
token = "{OPERATOR_OLD}"
[[credential]]
name = "ops-alice-2026"
role = "operator"
token = "{OPERATOR_NEW}"
[[credential]]
name = "grafana"
role = "read"
token = "{READ}"
[[rollout]]
name = "checkout"
autostart = true
skip_shadow = true
"#,
        dir.join("a.db").display()
    );
    Config::parse(&toml, "auth.toml").unwrap()
}

fn router(dir: &std::path::Path) -> axum::Router {
    let cfg = config(dir);
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let app = Arc::new(App::new(c, cfg.auth.clone()));
    let host = Arc::new(EngineHost::bootstrap(7, ManagerConfig::default()).unwrap());
    let _ = app.engines.set(host.clone());
    dwcp_analyzer::serve::router(app, host, None, None)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
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
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn token_of(role: auth::Role) -> &'static str {
    match role {
        auth::Role::Telemetry => TELEMETRY,
        auth::Role::Operator => OPERATOR_NEW,
        auth::Role::Read => READ,
    }
}

#[tokio::test]
async fn every_mutating_route_needs_its_role() {
    let d = tempfile::tempdir().unwrap();
    let a = router(d.path());
    let before = call(&a, "GET", "/v1/rollouts/checkout", Some(READ), "")
        .await
        .1;
    for (method, path, body, role) in MUTATING {
        let (s, v) = call(&a, method, path, None, body).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without credential: {v}"
        );
        let (s, v) = call(&a, method, path, Some("not-a-known-token-at-all"), body).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} unknown token: {v}"
        );
        for wrong in [
            auth::Role::Telemetry,
            auth::Role::Operator,
            auth::Role::Read,
        ] {
            if wrong == *role {
                continue;
            }
            let (s, v) = call(&a, method, path, Some(token_of(wrong)), body).await;
            assert_eq!(
                s,
                StatusCode::FORBIDDEN,
                "{method} {path} with the {} role: {v}",
                wrong.as_str()
            );
        }
    }
    let after = call(&a, "GET", "/v1/rollouts/checkout", Some(READ), "")
        .await
        .1;
    assert_eq!(before["status"], after["status"]);
    assert_eq!(
        before["phase"], after["phase"],
        "refused calls changed nothing"
    );
    // Every refusal is counted: MUTATING × (none, unknown, two wrong roles).
    let (_, _) = call(&a, "GET", "/healthz", None, "").await;
    let resp = a
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let want = MUTATING.len() * 4;
    assert!(
        text.contains(&format!("dwcp_auth_failures_total {want}")),
        "want {want} refusals counted: {}",
        text.lines()
            .filter(|l| l.starts_with("dwcp_auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_right_role_reaches_the_handler() {
    let d = tempfile::tempdir().unwrap();
    let a = router(d.path());
    for (method, path, body, role) in MUTATING {
        let (s, v) = call(&a, method, path, Some(token_of(*role)), body).await;
        assert!(
            s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
            "{method} {path} refused with its own role: {s} {v}"
        );
        // The route exists (the plan routes answer 404 "no plan" without a train, the consensus
        // engines are not in this build).
        if !path.starts_with("/v1/plan/") && !path.contains("pbft") {
            assert_ne!(
                s,
                StatusCode::NOT_FOUND,
                "{method} {path} is not a route: {v}"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {v}");
        }
    }
}

#[tokio::test]
async fn telemetry_cannot_promote_or_abort_and_the_actor_is_the_credential() {
    let d = tempfile::tempdir().unwrap();
    let a = router(d.path());
    for action in ["promote", "abort", "pause"] {
        let (s, v) = call(
            &a,
            "POST",
            &format!("/v1/rollouts/checkout/{action}"),
            Some(TELEMETRY),
            "{}",
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{action}: {v}");
        assert!(v["error"].as_str().unwrap().contains("operator"), "{v}");
    }
    let (_, r) = call(&a, "GET", "/v1/rollouts/checkout", Some(READ), "").await;
    assert_eq!(
        (r["status"].as_str(), r["phase"].as_str()),
        (Some("running"), Some("1%"))
    );
    // Both tokens of a rotation work; each is its own actor; the body cannot name another.
    let (s, v) = call(
        &a,
        "POST",
        "/v1/rollouts/checkout/promote",
        Some(OPERATOR_OLD),
        r#"{"actor": "someone-else"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &a,
        "POST",
        "/v1/rollouts/checkout/pause",
        Some(OPERATOR_NEW),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &a,
        "POST",
        "/v1/kill",
        Some(OPERATOR_NEW),
        r#"{"kill_all": true, "actor": "x"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, ev) = call(&a, "GET", "/v1/rollouts/checkout/events", Some(READ), "").await;
    let actors: Vec<(String, String)> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        actors.contains(&("promoted".into(), "ops-alice-2025".into())),
        "{actors:?}"
    );
    assert!(
        actors.contains(&("paused".into(), "ops-alice-2026".into())),
        "{actors:?}"
    );
    assert!(
        actors.iter().all(|(_, a)| a != "someone-else" && a != "x"),
        "{actors:?}"
    );
    let (_, all) = call(&a, "GET", "/v1/rollouts/*/events", Some(READ), "").await;
    assert!(
        all.to_string().contains("ops-alice-2026"),
        "kill switch actor: {all}"
    );
}

#[tokio::test]
async fn reads_need_the_read_role() {
    let d = tempfile::tempdir().unwrap();
    let a = router(d.path());
    for path in READS {
        let (s, v) = call(&a, "GET", path, None, "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        let (s, v) = call(&a, "GET", path, Some(TELEMETRY), "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        for t in [READ, OPERATOR_OLD] {
            let (s, v) = call(&a, "GET", path, Some(t), "").await;
            // /v1/plan answers 404 without a train: it got past the policy.
            assert!(
                s == StatusCode::OK || *path == "/v1/plan",
                "{path}: {s} {v}"
            );
        }
    }
    let (_, r) = call(&a, "GET", "/v1/rollouts/checkout", Some(READ), "").await;
    assert!(r.get("shadow_samples").is_some(), "{r}");
    for path in ["/healthz", "/metrics", "/v1/config"] {
        let (s, _) = call(&a, "GET", path, None, "").await;
        assert_eq!(s, StatusCode::OK, "{path} is public");
    }
}

#[test]
fn public_exceptions_are_exactly_these() {
    // Opening a route to callers without a credential is a security decision: it must change this test.
    assert_eq!(
        auth::PUBLIC_GETS,
        &["/healthz", "/metrics", "/", "/plan", "/v1/config"]
    );
    assert_eq!(auth::PUBLIC_POST_PREFIXES, &["/ofrep/v1/evaluate/"]);
    for (method, path, _, role) in MUTATING {
        let m: axum::http::Method = method.parse().unwrap();
        assert_eq!(auth::required(&m, path), auth::Need::Role(*role), "{path}");
    }
}

#[test]
fn weak_tokens_and_shared_roles_are_refused_beyond_loopback() {
    let cred =
        |t: &str| format!("[[credential]]\nname = \"x\"\nrole = \"operator\"\ntoken = \"{t}\"\n");
    let cases = [
        (
            format!("listen = \"0.0.0.0:8080\"\n{}", cred("dev-token")),
            "credential[0].token",
        ),
        (
            format!(
                "listen = \"0.0.0.0:8080\"\n{}",
                cred("REPLACE-WITH-DWCP-TOKEN")
            ),
            "placeholder",
        ),
        (
            format!("listen = \"10.0.0.1:8080\"\n{}", cred("short-token-1")),
            "shorter",
        ),
        (
            "listen = \"0.0.0.0:8080\"\ntoken = \"a-long-enough-token-123\"".to_string(),
            "loopback",
        ),
        (
            format!(
                "listen = \"0.0.0.0:8080\"\npublic_reads = true\n{}",
                cred("a-long-enough-token-123")
            ),
            "public_reads",
        ),
        ("listen = \"127.0.0.1:8080\"".to_string(), "credential"),
    ];
    for (text, want) in cases {
        let e = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(e.contains(want), "{text:?} -> {e}");
    }
    // On loopback the demo's tokens are fine.
    assert!(Config::parse(
        &format!(
            "listen = \"127.0.0.1:8080\"\npublic_reads = true\n{}",
            cred("dev-token")
        ),
        "x"
    )
    .is_ok());
    assert!(Config::parse(
        &format!("listen = \"[::1]:8080\"\n{}", cred("dev-token")),
        "x"
    )
    .is_ok());
    // token_file: trimmed, read at load.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("tok");
    std::fs::write(&f, "file-token-0123456789abcdef\n").unwrap();
    let c = Config::parse(
        &format!(
            "listen = \"0.0.0.0:8080\"\n[[credential]]\nname = \"f\"\nrole = \"read\"\ntoken_file = \"{}\"\n",
            f.display()
        ),
        "x",
    )
    .unwrap();
    assert_eq!(
        c.auth.identify("file-token-0123456789abcdef").unwrap().name,
        "f"
    );
}
