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
    let (mut canary, mut sum) = (0, 0u64);
    let mut first = Vec::new();
    for i in 0..5_000 {
        let id = format!("user-{i}");
        let h: Vec<(String, Vec<u8>)> = vec![("x-user-id".into(), id.clone().into_bytes())];
        let d = decide(&cfg, Some(&st), Freshness::Fresh, 0, h.as_slice());
        let b = d.bucket.unwrap();
        assert_eq!(b, bucket_bp("checkout", &id));
        sum += u64::from(b);
        if i < 5 {
            first.push(b);
        }
        canary += usize::from(d.track == Track::Canary);
    }
    // Expected values computed outside this code, by the independent pure-Python murmur3 of
    // `scripts/bucketing_vectors.py`:
    //   b = [(murmur3_32(("checkout" + f"user-{i}").encode()) * 10000) >> 32 for i in range(5000)]
    //   sum(x < 500 for x in b) == 270; sum(b) == 24917700; b[:5] == [3632, 7229, 3462, 3975, 1913]
    assert_eq!(canary, 270, "canary users at 5 %");
    assert_eq!(sum, 24_917_700, "sum of the 5 000 buckets");
    assert_eq!(first, [3632, 7229, 3462, 3975, 1913]);
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
