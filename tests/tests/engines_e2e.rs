//! Engine inputs are not signals, through the real companion binary: a client's corrupted frame is the
//! client's 422 (counted in `dwcp_engine_client_errors_total`), never a `DataIntegrityViolation`, so it
//! cannot abort the engine's rollout; engine writes need the operator role; a zstd bomb is refused
//! within the output budget and the companion's memory does not grow by the bomb's size.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use dwcp_e2e::*;
use serde_json::json;
use std::io::Read;
use std::time::Duration;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("no answer: {e}"),
    }
}

#[test]
fn client_frames_cannot_abort_the_engine_rollout_and_bombs_are_refused() {
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: "[[rollout]]\nname = \"compression-v2\"\nautostart = true\nskip_shadow = true\nengine = \"compression\"\n\
                        [[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\n"
            .into(),
        concurrency: 1,
    });
    let url = s.analyzer_url();
    let auth = format!("Bearer {TOKEN}");
    let payload = b64("a log line that repeats\n".repeat(200).as_bytes());
    let body =
        json!({"payload_b64": payload, "bandwidth_bytes_per_s": 1_000_000, "codec": "zstd3"});
    // Engine writes need a credential.
    let code = status_of(
        ureq::post(&format!("{url}/v1/engines/compression/compress")).send_json(body.clone()),
    );
    assert_eq!(code, 401);
    let frame: serde_json::Value = ureq::post(&format!("{url}/v1/engines/compression/compress"))
        .set("authorization", &auth)
        .send_json(body)
        .expect("compress")
        .into_json()
        .unwrap();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(frame["frame_b64"].as_str().unwrap())
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = b64(&bytes);
    let code = status_of(
        ureq::post(&format!("{url}/v1/engines/compression/decompress"))
            .send_json(json!({"frame_b64": bad})),
    );
    assert_eq!(
        code, 401,
        "an unauthenticated caller is refused before any codec runs"
    );
    for _ in 0..10 {
        let resp = ureq::post(&format!("{url}/v1/engines/compression/decompress"))
            .set("authorization", &auth)
            .send_json(json!({"frame_b64": bad}));
        match resp {
            Err(ureq::Error::Status(code, r)) => {
                assert_eq!(code, 422);
                let v: serde_json::Value = r.into_json().unwrap();
                assert!(v["error"].as_str().unwrap().contains("checksum"), "{v}");
            }
            other => panic!("a corrupted frame was accepted: {other:?}"),
        }
    }

    // A zstd bomb: 64 MiB of zeros in a few KiB, declared as 8 MiB (the budget) to get past the header
    // check; the bounded reader stops at the budget. Then declared honestly: 413 at once.
    let mut body = Vec::new();
    zstd::stream::copy_encode(std::io::repeat(0).take(64 << 20), &mut body, 3).unwrap();
    let (rss0, hwm0) = s.analyzer_rss_kib();
    for declared in [8u32 << 20, 64 << 20, 8 << 20] {
        let mut f = Vec::new();
        f.extend_from_slice(b"DWCF");
        f.push(1);
        f.push(dwcp_engines::compression::Codec::Zstd3.id());
        f.extend_from_slice(&declared.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&f);
        h.update(&body);
        f.extend_from_slice(&h.finalize().to_le_bytes());
        f.extend_from_slice(&body);
        let code = status_of(
            ureq::post(&format!("{url}/v1/engines/compression/decompress"))
                .set("authorization", &auth)
                .send_json(json!({"frame_b64": b64(&f)})),
        );
        let want = if declared > 8 << 20 { 413 } else { 422 };
        assert_eq!(code, want, "bomb declared as {declared} bytes");
    }
    let (rss1, hwm1) = s.analyzer_rss_kib();
    eprintln!(
        "companion RSS {} → {} MiB, peak {} → {} MiB after 3 bombs of 64 MiB (budget 8 MiB)",
        rss0 / 1024,
        rss1 / 1024,
        hwm0 / 1024,
        hwm1 / 1024
    );
    assert!(
        hwm1.saturating_sub(hwm0) < 32 << 10,
        "the companion's peak RSS grew by {} MiB",
        (hwm1 - hwm0) / 1024
    );

    // Nothing was a signal: the engine's rollout keeps running.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.rollout("compression-v2")["status"], "running");
    assert_eq!(s.rollout("demo")["status"], "running");
    let metrics = s.analyzer_metrics();
    for want in [
        "dwcp_engine_events_total{engine=\"compression\",kind=\"integrity_violation\"} 0",
        "dwcp_engine_client_errors_total{engine=\"compression\",reason=\"checksum\"} 10",
        "dwcp_engine_client_errors_total{engine=\"compression\",reason=\"undecodable\"} 2",
        "dwcp_engine_client_errors_total{engine=\"compression\",reason=\"over_budget\"} 1",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
}
