//! The only module that talks to the host (Envoy): it reads and writes host state and applies what the
//! pure core decides ([`dwcp_core::route::route`] per request). Every host status is handled: a failed
//! host call degrades to "stable, counted", never to a panic or a 5xx.
//!
//! Seams: [`root`] (configuration, the tick, the companion sync, shared state), [`http`] (one request:
//! apply the route, copy for the shadow, record the outcome), [`shadow`] (the root context's side of
//! shadow copies).

use proxy_wasm::hostcalls as hc;
use proxy_wasm::types::LogLevel;
use std::time::UNIX_EPOCH;

mod http;
mod root;
mod shadow;

use root::Root;

pub fn start() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(Root::new(context_id)));
}

fn now_ms() -> u64 {
    hc::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_us() -> u64 {
    hc::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64)
}

fn log(level: LogLevel, msg: &str) {
    let _ = hc::log(level, msg);
}

/// Queues a wake-up for the root context unless one is already pending.
pub(super) fn wake_root(m: &mut crate::shadow::Mirror) {
    if let (Some(q), false, false) = (m.wake_queue, m.wake_armed, m.queue.is_empty()) {
        m.wake_armed = hc::enqueue_shared_queue(q, Some(b"w")).is_ok();
    }
}
