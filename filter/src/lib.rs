//! # dwcp-filter — the proxy-wasm HTTP filter
//!
//! A thin adapter over `dwcp-core`: [`host`] is the only module that calls proxy-wasm host functions,
//! and it decides nothing (the core's `route` says what each request gets); [`vm`] holds one VM's state (config, dynamic state, telemetry accumulator, sync bookkeeping) as plain
//! Rust that is tested natively; [`metrics`] names the Envoy metrics.
//!
//! Per request the filter makes few host calls (one to read all request headers, one to set the track
//! header, two properties at log time; the explanation header only when `explain` is on): metrics and
//! the dynamic state are exchanged with the host once per tick, not per request. Host calls are where
//! the cost is, and the decision itself allocates nothing (`dwcp-core/tests/alloc_per_route.rs`).

pub mod metrics;
pub mod shadow;
pub mod vm;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod host;

#[cfg(all(target_arch = "wasm32", not(test)))]
proxy_wasm::main! {{
    host::start();
}}
