//! Engine inputs are not signals: a client's malformed or hostile frame to
//! `/v1/engines/compression/decompress` is the client's 4xx (counted), never a breaker failure nor a
//! `DataIntegrityViolation`; a zstd bomb (a few KiB that expand to 64 MiB) is refused within the
//! output budget and the process's peak RSS does not grow by the bomb's size.
//! (One test in this binary: the peak RSS it reads is the whole process's.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use dwcp_analyzer::api::{now_ms, App};
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use dwcp_analyzer::engines_api::EngineHost;
use dwcp_core::signals::EngineEvent;
use dwcp_engines::compression::Codec;
use dwcp_engines::manager::{BreakerState, ManagerConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::Arc;
use tower::ServiceExt;

const OPERATOR: &str = "operator-token-engine-inputs";
const BOMB: u64 = 64 << 20;
const BUDGET: u64 = 8 << 20;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The frame layout of `dwcp_engines::compression::frame`, written out here so a test can lie in it.
fn frame(codec: Codec, declared_len: u32, content_crc: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"DWCF");
    out.push(1);
    out.push(codec.id());
    out.extend_from_slice(&declared_len.to_le_bytes());
    out.extend_from_slice(&content_crc.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out);
    h.update(body);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A zstd frame of `n` zero bytes, made by streaming (the test never holds the expansion).
fn zstd_bomb(n: u64) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    zstd::stream::copy_encode(std::io::repeat(0).take(n), &mut out, 3).unwrap();
    let mut h = crc32fast::Hasher::new();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..n / (1 << 20) {
        h.update(&chunk);
    }
    (out, h.finalize())
}

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn post(a: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {OPERATOR}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = a.clone().oneshot(req).await.unwrap();
    let s = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_are_the_clients_error_and_bombs_stay_within_the_budget() {
    let d = tempfile::tempdir().unwrap();
    let toml = format!(
        "db = \"{}\"\ndecompress_budget_bytes = {BUDGET}\n[[credential]]\nname = \"ops\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n",
        d.path().join("a.db").display()
    );
    let cfg = Config::parse(&toml, "t.toml").unwrap();
    let c = Controller::open(&cfg, now_ms()).unwrap();
    let app = Arc::new(App::new(c, cfg.auth.clone()));
    let host = Arc::new(
        EngineHost::bootstrap(3, ManagerConfig::default())
            .unwrap()
            .with_decompress_budget(cfg.decompress_budget_bytes),
    );
    let _ = app.engines.set(host.clone());
    let mut signals = host.events.subscribe();
    let a = dwcp_analyzer::serve::router(app, host.clone(), None, None);
    let url = "/v1/engines/compression/decompress";

    // A good frame still decodes (made by the engine itself).
    let payload = "a log line that repeats\n".repeat(200);
    let (s, v) = post(
        &a,
        "/v1/engines/compression/compress",
        json!({"payload_b64": b64(payload.as_bytes()), "bandwidth_bytes_per_s": 1_000_000, "codec": "zstd3"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let good = v["frame_b64"].as_str().unwrap().to_string();
    let (s, v) = post(&a, url, json!({ "frame_b64": good })).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Corrupted frames, many in a row: each a 422, none a breaker failure or a signal.
    let mut bad = base64::engine::general_purpose::STANDARD
        .decode(&good)
        .unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    for _ in 0..20 {
        let (s, v) = post(&a, url, json!({ "frame_b64": b64(&bad) })).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"].as_str().unwrap().contains("client"), "{v}");
    }
    let (s, _) = post(&a, url, json!({ "frame_b64": b64(b"not a frame at all") })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // (Made before the measurement: the encoder's own tables are not the server's memory.)
    let (bomb, crc) = zstd_bomb(BOMB);
    assert!(
        bomb.len() < 64 << 10,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let rss_before = peak_rss_kib();
    // 1. Honest header: 64 MiB declared → 413 before any decoder runs.
    let f = frame(Codec::Zstd3, BOMB as u32, crc, &bomb);
    let (s, v) = post(&a, url, json!({ "frame_b64": b64(&f) })).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // 2. Lying header: 4 KiB declared, 64 MiB inside → the bounded reader stops at 4 KiB + 1.
    let f = frame(Codec::Zstd3, 4096, crc, &bomb);
    let (s, v) = post(&a, url, json!({ "frame_b64": b64(&f) })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // 3. Declared exactly the budget, 64 MiB inside → stops at the budget + 1.
    let f = frame(Codec::Zstd3, BUDGET as u32, crc, &bomb);
    let (s, v) = post(&a, url, json!({ "frame_b64": b64(&f) })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let grown_mib = (peak_rss_kib().saturating_sub(rss_before)) as f64 / 1024.0;
    eprintln!("peak RSS grew by {grown_mib:.1} MiB over three 64 MiB bombs (budget 8 MiB)");
    assert!(
        grown_mib < 32.0,
        "peak RSS grew by {grown_mib:.1} MiB: the bomb was expanded"
    );

    // Counted as the client's errors; the breaker never saw a failure; no safety signal.
    let counts: std::collections::BTreeMap<_, _> = host.client_errors().into_iter().collect();
    assert_eq!(counts["checksum"], 20, "{counts:?}");
    assert_eq!(counts["malformed"], 1, "{counts:?}");
    assert_eq!(counts["over_budget"], 1, "{counts:?}");
    assert_eq!(counts["undecodable"], 2, "{counts:?}");
    let b = host.manager.lock().unwrap().breaker("codec-zstd3").unwrap();
    assert_eq!(b.state, BreakerState::Closed);
    assert_eq!((b.window_failures, b.opens_total), (0, 0), "{b:?}");
    while let Ok(ev) = signals.try_recv() {
        assert!(
            !matches!(ev, EngineEvent::DataIntegrityViolation { .. }),
            "a client's frame raised {ev:?}"
        );
    }
    let m = dwcp_analyzer::metrics::render_engines(&host);
    assert!(
        m.contains(
            "dwcp_engine_client_errors_total{engine=\"compression\",reason=\"checksum\"} 20"
        ),
        "{m}"
    );
}
