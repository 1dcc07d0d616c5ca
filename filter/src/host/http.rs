//! One HTTP stream: read the request headers once, apply the core's [`route`] (set or strip our
//! headers, count the reason, queue the shadow copy), copy the bodies the shadow comparison needs, and
//! record status and latency at log time.

use super::root::adopt_at_start;
use super::wake_root;
use crate::shadow::{Primary, RequestInfo, SHADOW_HEADER, SHADOW_MAC_HEADER};
use crate::vm::Vm;
use dwcp_core::config::DEFAULT_TRACK_HEADER;
use dwcp_core::decision::{Decision, Headers};
use dwcp_core::route::{route, Route};
use proxy_wasm::hostcalls as hc;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::RefCell;
use std::rc::Rc;

pub(super) struct Http {
    vm: Option<Rc<RefCell<Vm>>>,
    decision: Option<Decision>,
    /// The shadow copy of this request (its id in the VM's mirror) and the primary answer as it arrives.
    shadow: Option<(u64, Primary)>,
}

impl Http {
    pub(super) fn new(vm: Option<Rc<RefCell<Vm>>>) -> Self {
        Self {
            vm,
            decision: None,
            shadow: None,
        }
    }
}

impl Context for Http {}

impl Drop for Http {
    fn drop(&mut self) {
        // A copy whose primary never reached on_log must not hold a slot of the in-flight bound.
        if let (Some(vm), Some((id, _))) = (&self.vm, self.shadow.take()) {
            if let Ok(mut vm) = vm.try_borrow_mut() {
                vm.mirror.abandon(id);
            }
        }
    }
}

/// Reads an int64 property (Envoy serialises integers and durations as 8 little-endian bytes).
fn int_property(path: Vec<&str>) -> Option<i64> {
    let b = hc::get_property(path).ok().flatten()?;
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

#[cfg(all(target_arch = "wasm32", feature = "test-hooks"))]
fn crash_for_test() {
    // Test-only switch (config `test_panic_header`): trap the VM to prove the shipped configs fail safe.
    core::arch::wasm32::unreachable()
}
#[cfg(not(all(target_arch = "wasm32", feature = "test-hooks")))]
fn crash_for_test() {}

/// Our marks a client may not send: the shadow mark and its authenticator. Removed from every
/// incoming request (the copies get them from the mirror, which never passes a client's on).
fn strip_forged_marks(headers: &[(String, Vec<u8>)]) {
    for name in [SHADOW_HEADER, SHADOW_MAC_HEADER] {
        if headers.iter().any(|(k, _)| k == name) {
            let _ = hc::remove_map_value(MapType::HttpRequestHeaders, name);
        }
    }
}

/// Envoy's legacy response-flag bit for "downstream connection termination" (`DC`).
const DOWNSTREAM_CONNECTION_TERMINATION: i64 = 0x4000;

/// Whether the client ended the stream (reset, disconnect) before an answer: Envoy's `DC` response
/// flag, or response code details naming a downstream disconnect.
fn client_gave_up() -> bool {
    if int_property(vec!["response", "flags"])
        .is_some_and(|f| f & DOWNSTREAM_CONNECTION_TERMINATION != 0)
    {
        return true;
    }
    hc::get_property(vec!["response", "code_details"])
        .ok()
        .flatten()
        .is_some_and(|d| {
            let d = String::from_utf8_lossy(&d);
            d.contains("downstream_remote_disconnect") || d.contains("downstream_local_disconnect")
        })
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        let Some(vm_rc) = self.vm.clone() else {
            // No usable config: still never let a client's track header or shadow mark through (the
            // shipped configs also strip them before this filter).
            for name in [DEFAULT_TRACK_HEADER, SHADOW_HEADER, SHADOW_MAC_HEADER] {
                let _ = hc::remove_map_value(MapType::HttpRequestHeaders, name);
            }
            return Action::Continue;
        };
        // The one read of the request headers: everything below borrows from it.
        let headers = hc::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        strip_forged_marks(&headers);
        let mut guard = vm_rc.borrow_mut();
        if guard.state.is_none() {
            // No state yet (e.g. configured before any VM had one): look again before routing.
            adopt_at_start(&mut guard, false);
        }
        // Staleness is judged at the request, not only on the VM's tick: every worker holds the same
        // shared receive time, so all of them go stable within milliseconds of each other when the
        // companion is gone, instead of flapping for up to a tick across connections.
        guard.refresh(super::now_ms());
        let Vm {
            cfg,
            state,
            freshness,
            acc,
            mirror,
            ..
        } = &mut *guard;
        if let Some(ph) = &cfg.test_panic_header {
            if headers.as_slice().has(ph) {
                crash_for_test();
            }
        }
        let routed = match route(cfg, state.as_ref(), *freshness, headers.as_slice()) {
            Route::NotOurs { strip_track_header } => {
                if strip_track_header {
                    // Never let a client-supplied track header through.
                    let _ = hc::remove_map_value(MapType::HttpRequestHeaders, &cfg.track_header);
                    // Rare path (a client forged our header): make sure the route is re-selected.
                    let _ = hc::call_foreign_function("clear_route_cache", None);
                }
                return Action::Continue;
            }
            Route::Routed(r) => r,
        };
        acc.count(routed.count());
        let req = MapType::HttpRequestHeaders;
        if hc::set_map_value(req, routed.track_header, Some(routed.track())).is_err() {
            // Could not set our header: make sure no client value survives, then serve stable.
            let _ = hc::remove_map_value(req, routed.track_header);
        }
        if let Some((name, value)) = &routed.explain {
            let _ = hc::set_map_value(req, name, Some(value));
        }
        // Envoy 1.40 re-selects the route after a filter changes a request header (tested end to end),
        // but not every Envoy an Istio sidecar may run does: one host call buys routing that follows our
        // header on all of them. Kept on purpose even though it costs CPU per request.
        let _ = hc::call_foreign_function("clear_route_cache", None);
        if let Some(plan) = &routed.shadow {
            let info = RequestInfo {
                rollout: plan.rollout,
                shadow_cluster: Some(plan.cluster),
                noise_cluster: plan.noise_cluster,
                shadow_bp: plan.bp,
                headers: &headers,
                has_body: !eos,
            };
            if let Some(id) = mirror.capture(&cfg.shadow, acc, &info) {
                self.shadow = Some((id, Primary::default()));
                wake_root(mirror);
            }
        }
        self.decision = Some(routed.decision);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, eos: bool) -> Action {
        // Copy the request body for the shadow (bounded); never pause the user's request.
        let (Some(vm_rc), Some((id, _))) = (self.vm.as_ref(), self.shadow.as_ref()) else {
            return Action::Continue;
        };
        let id = *id;
        let mut guard = vm_rc.borrow_mut();
        let vm = &mut *guard;
        if !vm.mirror.awaiting_body(id) {
            return Action::Continue;
        }
        let chunk = if body_size > 0 {
            hc::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if vm
            .mirror
            .request_body(&vm.cfg.shadow, &mut vm.acc, id, &chunk, eos)
        {
            wake_root(&mut vm.mirror);
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        // Trailers end the request: the body copied so far is the whole body.
        if let (Some(vm_rc), Some((id, _))) = (self.vm.as_ref(), self.shadow.as_ref()) {
            let mut guard = vm_rc.borrow_mut();
            let vm = &mut *guard;
            if vm
                .mirror
                .request_body(&vm.cfg.shadow, &mut vm.acc, *id, &[], true)
            {
                wake_root(&mut vm.mirror);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let (Some(vm_rc), Some((_, c))) = (self.vm.as_ref(), self.shadow.as_mut()) else {
            return Action::Continue;
        };
        let (max, compare) = {
            let vm = vm_rc.borrow();
            (
                vm.cfg.shadow.max_body_bytes,
                vm.cfg.shadow.compare_headers.clone(),
            )
        };
        let len = hc::get_map_value(MapType::HttpResponseHeaders, "content-length")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<usize>().ok());
        c.announce(len, max);
        for h in compare {
            if let Ok(Some(v)) = hc::get_map_value(MapType::HttpResponseHeaders, &h) {
                c.answer.headers.push((h, v));
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _eos: bool) -> Action {
        // Never pause the user's answer: copy the chunk (bounded) and let it through.
        let (Some(vm_rc), Some((_, c))) = (self.vm.as_ref(), self.shadow.as_mut()) else {
            return Action::Continue;
        };
        let max = vm_rc.borrow().cfg.shadow.max_body_bytes;
        if body_size == 0 || !c.accepts(body_size, max) {
            return Action::Continue;
        }
        if let Ok(Some(chunk)) = hc::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
            c.answer.body.extend_from_slice(&chunk);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(vm_rc), Some(d)) = (self.vm.as_ref(), self.decision.take()) else {
            return;
        };
        let status = int_property(vec!["response", "code"]).unwrap_or(0);
        let dur_ns = int_property(vec!["request", "duration"]).unwrap_or(0);
        let status = u16::try_from(status).unwrap_or(0);
        let latency_us = u64::try_from(dur_ns / 1000).unwrap_or(0);
        let client_aborted = status == 0 && client_gave_up();
        let mut vm = vm_rc.borrow_mut();
        vm.record(&d, status, latency_us, client_aborted);
        if let Some((id, primary)) = self.shadow.take() {
            let vm = &mut *vm;
            vm.mirror
                .primary_done(&vm.cfg.shadow, &mut vm.acc, id, primary, status, latency_us);
        }
    }
}
