//! The pure core compiled to wasm (wasm32-unknown-unknown) and run under Node.js by
//! `wasm-bindgen-test-runner`, so we know the logic behaves the same inside a wasm VM as natively.
//! Run: `make test-wasm` (natively these are plain tests too).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use dwcp_core::bucket::{bucket_bp, fractional_index, murmur3_32};
use dwcp_core::config::FilterConfig;
use dwcp_core::decision::{decide, Freshness, Track};
use dwcp_core::histogram::Histogram;
use dwcp_core::state::{DynamicState, RolloutState};

#[test]
fn flagd_vectors_in_wasm() {
    assert_eq!(murmur3_32(b"hello"), 0x248b_fa47);
    let names = ["clubs", "diamonds", "hearts", "spades"];
    for (user, want) in [
        ("jack", "hearts"),
        ("queen", "spades"),
        ("ten", "clubs"),
        ("nine", "diamonds"),
        ("3", "clubs"),
    ] {
        let key = format!("fractional-flag{user}");
        assert_eq!(
            fractional_index(key.as_bytes(), &[25, 25, 25, 25]).map(|i| names[i]),
            Some(want)
        );
    }
}

#[test]
fn decisions_match_native_shares() {
    let cfg = FilterConfig::from_slice(br#"{"rollouts":[{"name":"checkout"}]}"#).unwrap();
    let mut st = DynamicState {
        version: 1,
        ..Default::default()
    };
    st.rollouts.insert(
        "checkout".into(),
        RolloutState {
            phase: "5%".into(),
            segments: [("standard".to_string(), 500)].into(),
            ..Default::default()
        },
    );
    let mut canary = 0;
    for i in 0..5_000 {
        let id = format!("user-{i}");
        let h: Vec<(String, Vec<u8>)> = vec![("x-user-id".into(), id.clone().into_bytes())];
        let d = decide(&cfg, Some(&st), Freshness::Fresh, 0, h.as_slice());
        assert_eq!(d.bucket, Some(bucket_bp("checkout", &id)));
        canary += usize::from(d.track == Track::Canary);
    }
    // The same count as the native build computes for these 5 000 users (a fixed, deterministic number).
    let native: usize = (0..5_000)
        .filter(|i| bucket_bp("checkout", &format!("user-{i}")) < 500)
        .count();
    assert_eq!(canary, native);
    assert!((200..300).contains(&canary), "{canary}");
}

#[test]
fn histogram_quantiles_in_wasm() {
    let mut h = Histogram::new();
    for v in 1..=10_000u64 {
        h.record(v);
    }
    let p99 = h.quantile(0.99).unwrap();
    assert!((p99 - 9_900.0).abs() / 9_900.0 <= 0.02, "{p99}");
}
