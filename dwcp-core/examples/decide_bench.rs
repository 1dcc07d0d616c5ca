//! Native cost of the per-request decision (what the filter runs between its host calls).
#![allow(clippy::disallowed_methods)] // an example: it reads the clock to measure
use dwcp_core::config::FilterConfig;
use dwcp_core::decision::{decide, match_rollout, Freshness};
use dwcp_core::state::{DynamicState, RolloutState};
use std::time::Instant;

fn main() {
    let cfg = FilterConfig::from_slice(br#"{"rollouts":[{"name":"demo"}]}"#).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let mut st = DynamicState {
        version: 1,
        ..Default::default()
    };
    st.rollouts.insert(
        "demo".into(),
        RolloutState {
            phase: "5%".into(),
            segments: [("standard".to_string(), 500), ("premium".to_string(), 1000)].into(),
            ..Default::default()
        },
    );
    let headers: Vec<(String, Vec<u8>)> = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/"),
        (":method", "GET"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
        ("x-user-id", "user-42"),
        ("x-user-tier", "premium"),
        ("x-request-id", "abc"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    let n = 200_000;
    let t = Instant::now();
    let mut canary = 0;
    for _ in 0..n {
        let r = match_rollout(&cfg, "127.0.0.1:10000", "/").unwrap_or(0);
        let d = decide(&cfg, Some(&st), Freshness::Fresh, r, headers.as_slice());
        canary += usize::from(d.track == dwcp_core::decision::Track::Canary);
    }
    let per = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    println!("decide: {per:.2} us per request natively ({canary} canary)");
}
