//! The per-request path allocates nothing it can avoid: counts heap allocations of one `route` (and
//! one `decide`) on the project's own plugin config (`envoy/envoy.yaml`, `explain` off as in the
//! benchmark) with a counting global allocator. `explain` on allocates its header value, by design.
#![cfg(not(target_arch = "wasm32"))]

use dwcp_core::config::FilterConfig;
use dwcp_core::decision::{decide, Freshness};
use dwcp_core::route::{route, Route};
use dwcp_core::state::{DynamicState, RolloutState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the allocations of the calling thread only (the test harness allocates on its own threads).
struct Counting;
thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> u64 {
    ALLOCS.try_with(Cell::get).unwrap_or(0)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The plugin config embedded in `envoy/envoy.yaml` (the block under `value: |`).
fn plugin(explain: bool) -> Result<FilterConfig, Box<dyn std::error::Error>> {
    let yaml = include_str!("../../envoy/envoy.yaml");
    let start = yaml.find("value: |").ok_or("no plugin config")? + "value: |".len();
    let rest = &yaml[start..];
    let end = rest.find("- name:").ok_or("no end of plugin config")?;
    let mut v: serde_json::Value = serde_json::from_str(&rest[..end])?;
    v["explain"] = serde_json::Value::Bool(explain);
    Ok(FilterConfig::from_slice(v.to_string().as_bytes())?)
}

fn state(cfg: &FilterConfig) -> DynamicState {
    let mut s = DynamicState {
        version: 3,
        ..Default::default()
    };
    let segments = cfg.segments.iter().map(|n| (n.clone(), 2_500)).collect();
    s.rollouts.insert(
        "demo".into(),
        RolloutState {
            phase: "25%".into(),
            segments,
            shadow_bp: 0,
            ..Default::default()
        },
    );
    s
}

/// Mean heap allocations per call of `f` over `n` calls.
fn per_call(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let before = allocs();
    for i in 0..n {
        f(i);
    }
    (allocs() - before) as f64 / n as f64
}

#[test]
fn route_allocates_nothing_per_request() {
    let cfg = plugin(false).unwrap();
    let st = state(&cfg);
    // The request the benchmark sends (wrk), plus a user that varies per iteration.
    let users: Vec<String> = (0..64).map(|i| format!("user-{i}")).collect();
    let headers: Vec<Vec<(String, Vec<u8>)>> = users
        .iter()
        .map(|u| {
            [
                (":authority", "127.0.0.1:10000"),
                (":path", "/"),
                (":method", "GET"),
                (":scheme", "http"),
                ("x-user-id", u.as_str()),
                ("x-user-tier", "premium"),
                ("x-forwarded-proto", "http"),
                ("x-request-id", "8f6b7b0e-3b5a-4c55-9d1b-5d2b6f1f6b1e"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
        })
        .collect();
    let n = 10_000;
    let mut canary = 0u64;
    let decide_allocs = per_call(n, |i| {
        let h = headers[(i % 64) as usize].as_slice();
        let d = decide(&cfg, Some(&st), Freshness::Fresh, 0, h);
        canary += u64::from(d.track == dwcp_core::decision::Track::Canary);
    });
    let route_allocs = per_call(n, |i| {
        let h = headers[(i % 64) as usize].as_slice();
        if let Route::Routed(r) = route(&cfg, Some(&st), Freshness::Fresh, h) {
            canary += u64::from(r.track() == "canary");
        }
    });
    println!("heap allocations per decide: {decide_allocs:.2}, per route: {route_allocs:.2}");
    assert!(canary > 0, "some requests are routed to canary");
    assert_eq!(decide_allocs, 0.0, "decide allocates");
    assert_eq!(route_allocs, 0.0, "route allocates");

    // With the explanation header on, the header value is the only allocation.
    let cfg = plugin(true).unwrap();
    let explain_allocs = per_call(n, |i| {
        let _ = route(
            &cfg,
            Some(&st),
            Freshness::Fresh,
            headers[(i % 64) as usize].as_slice(),
        );
    });
    println!("heap allocations per route with explain on: {explain_allocs:.2}");
    assert!((1.0..=4.0).contains(&explain_allocs), "{explain_allocs}");
}
