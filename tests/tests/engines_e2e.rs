//! Issue "engine foundation": a compression integrity failure during the rollout of that engine aborts
//! the rollout, with the engine event in its evidence — through the real companion binary.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use dwcp_e2e::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn integrity_failure_aborts_the_engine_rollout_with_evidence() {
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: "[[rollout]]\nname = \"compression-v2\"\nautostart = true\nskip_shadow = true\nengine = \"compression\"\n\
                        [[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\n"
            .into(),
        concurrency: 1,
    });
    let url = s.analyzer_url();
    let payload =
        base64::engine::general_purpose::STANDARD.encode("a log line that repeats\n".repeat(200));
    let frame: serde_json::Value = ureq::post(&format!("{url}/v1/engines/compression/compress"))
        .send_json(
            json!({"payload_b64": payload, "bandwidth_bytes_per_s": 1_000_000, "codec": "zstd3"}),
        )
        .expect("compress")
        .into_json()
        .unwrap();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(frame["frame_b64"].as_str().unwrap())
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let resp = ureq::post(&format!("{url}/v1/engines/compression/decompress"))
        .send_json(json!({"frame_b64": bad}));
    match resp {
        Err(ureq::Error::Status(code, r)) => {
            assert_eq!(code, 422);
            let v: serde_json::Value = r.into_json().unwrap();
            assert!(v["error"].as_str().unwrap().contains("checksum"), "{v}");
        }
        other => panic!("a corrupted frame was accepted: {other:?}"),
    }
    let rolled = eventually(Duration::from_secs(5), || {
        s.rollout("compression-v2")["status"] == "rolled_back"
    });
    assert!(rolled.is_some(), "the engine's rollout was not aborted");
    assert_eq!(
        s.rollout("demo")["status"],
        "running",
        "other rollouts are untouched"
    );
    let rb = s.rolled_back_event("compression-v2");
    assert_eq!(rb["verdict"]["trigger"], "6:DataIntegrity");
    assert_eq!(
        rb["evidence"]["engine_event"]["evidence"]["kind"],
        "DataIntegrityViolation"
    );
    assert_eq!(
        rb["evidence"]["engine_event"]["evidence"]["violation"],
        "checksum_mismatch"
    );
    let metrics = s.analyzer_metrics();
    assert!(
        metrics.contains(
            "dwcp_engine_events_total{engine=\"compression\",kind=\"integrity_violation\"} 1"
        ),
        "{metrics}"
    );
}
