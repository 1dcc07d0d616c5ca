//! # dwcp-filter — the proxy-wasm HTTP filter
//!
//! A thin adapter over `dwcp-core`: [`host`] is the only module that calls proxy-wasm host functions;
//! [`vm`] holds one VM's state (config, dynamic state, telemetry accumulator, sync bookkeeping) as plain
//! Rust that is tested natively; [`metrics`] names the Envoy metrics.
//!
//! Per request the filter makes few host calls (one to read all request headers, one to set the track
//! header, one `clear_route_cache`, two properties at log time): metrics and the dynamic state are
//! exchanged with the host once per tick, not per request. See FACTS.md: host calls are where the cost is.

pub mod metrics;
pub mod shadow;
pub mod vm;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod host;

#[cfg(all(target_arch = "wasm32", not(test)))]
proxy_wasm::main! {{
    host::start();
}}
