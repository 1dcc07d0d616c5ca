//! The only module that talks to the host (Envoy). Every host status is handled: a failed host call
//! degrades to "stable, counted", never to a panic or a 5xx.

use crate::metrics;
use crate::vm::{Vm, SHARED_STATE_KEY, SHARED_VM_COUNTER_KEY};
use dwcp_core::config::FilterConfig;
use dwcp_core::decision::{decide, explain, match_rollout, Decision};
use proxy_wasm::hostcalls as hc;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// Tick period (ms) while a rollout has a shadow cluster and the wake-up queue could not be registered:
/// queued shadow copies then wait at most this long.
const SHADOW_TICK_MS: u64 = 20;

mod shadow;

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

/// A process-unique VM id: a shared-data counter (CAS-incremented) plus the VM's start time.
fn unique_vm_id(context_id: u32) -> String {
    let mut n = 0u64;
    for _ in 0..8 {
        let (cur, cas) = hc::get_shared_data(SHARED_VM_COUNTER_KEY).unwrap_or((None, None));
        n = cur
            .and_then(|b| std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
            + 1;
        if hc::set_shared_data(SHARED_VM_COUNTER_KEY, Some(n.to_string().as_bytes()), cas).is_ok() {
            break;
        }
    }
    format!("{:x}-{n}-{context_id}", now_us())
}

/// Adopts the process's newest state from shared data if it changed since this VM last looked.
fn read_shared_state(vm: &mut Vm) -> bool {
    if let Ok((Some(bytes), cas)) = hc::get_shared_data(SHARED_STATE_KEY) {
        if cas != vm.shared_cas {
            vm.shared_cas = cas;
            return vm.adopt_shared(&bytes);
        }
    }
    false
}

/// A VM that starts (first start, reload after a crash, plugin-config change) routes with the state the
/// other VMs of the process already hold from its very first request, not from its first tick.
fn adopt_at_start(vm: &mut Vm, nothing_routed_yet: bool) {
    if read_shared_state(vm) {
        vm.refresh(now_ms());
        if nothing_routed_yet {
            // Every request of this window will be routed with the adopted version.
            vm.window_version = vm.state_version();
        }
    }
}

struct Root {
    context_id: u32,
    vm: Option<Rc<RefCell<Vm>>>,
    metric_ids: HashMap<String, u32>,
    last_sync_status: Option<u16>,
    sync_period_ms: u64,
    /// The tick period actually set (the sync period, or shorter while shadow copies need pumping).
    tick_ms: u64,
    next_sync_ms: u64,
}

impl Root {
    fn new(context_id: u32) -> Self {
        Self {
            context_id,
            vm: None,
            metric_ids: HashMap::new(),
            last_sync_status: None,
            sync_period_ms: 1000,
            tick_ms: 1000,
            next_sync_ms: 0,
        }
    }

    fn metric(&mut self, name: &str, ty: MetricType) -> Option<u32> {
        if let Some(id) = self.metric_ids.get(name) {
            return Some(*id);
        }
        let id = hc::define_metric(ty, name).ok()?;
        self.metric_ids.insert(name.to_string(), id);
        Some(id)
    }

    fn sync(&mut self) {
        let Some(vm_rc) = self.vm.clone() else { return };
        let now = now_ms();
        let (fresh, batch, body, cfg) = {
            let mut vm = vm_rc.borrow_mut();
            let _ = read_shared_state(&mut vm);
            vm.refresh(now);
            if vm.in_flight.is_some() {
                // Previous exchange still pending: keep accumulating, do not pile up calls.
                return;
            }
            let fresh = vm.cut_batch(now);
            let batch = vm.to_send(&fresh);
            let body = serde_json::to_vec(&batch).unwrap_or_default();
            (fresh, batch, body, vm.cfg.companion.clone())
        };
        // Export what this batch adds to the Envoy counters (once per tick, not per request).
        for (name, delta) in metrics::deltas(&fresh) {
            // Defined even at 0 so that e.g. error counters exist (as 0) before the first error.
            if let Some(id) = self.metric(&name, MetricType::Counter) {
                if delta > 0 {
                    let _ = hc::increment_metric(id, delta as i64);
                }
            }
        }
        let freshness_gauge = {
            let vm = vm_rc.borrow();
            (vm.state_version(), vm.freshness)
        };
        if let Some(id) = self.metric("dwcp_state_version", MetricType::Gauge) {
            let _ = hc::record_metric(id, freshness_gauge.0);
        }
        if let Some(id) = self.metric("dwcp_state_stale", MetricType::Gauge) {
            let stale = !matches!(freshness_gauge.1, dwcp_core::decision::Freshness::Fresh);
            let _ = hc::record_metric(id, u64::from(stale));
        }
        let auth = format!("Bearer {}", cfg.token);
        let mut headers = vec![
            (":method", "POST"),
            (":path", "/v1/telemetry"),
            (":authority", cfg.authority.as_str()),
            ("content-type", "application/json"),
        ];
        if !cfg.token.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        match hc::dispatch_http_call(&cfg.cluster, headers, Some(&body), vec![], timeout) {
            Ok(token) => vm_rc.borrow_mut().in_flight = Some((token, batch)),
            Err(status) => {
                let mut vm = vm_rc.borrow_mut();
                vm.keep_unsent(batch);
                vm.acc.count("sync_failed");
                log(
                    LogLevel::Warn,
                    &format!(
                        "dwcp: cannot call companion cluster {:?}: {status:?}",
                        cfg.cluster
                    ),
                );
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        n_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(vm_rc) = self.vm.clone() else { return };
        if vm_rc.borrow().mirror.owns(token) {
            self.on_shadow_answer(&vm_rc, token, n_headers, body_size);
            return;
        }
        let status = hc::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        let body = hc::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let publish = vm_rc
            .borrow_mut()
            .on_sync_response(token, status, &body, now_ms());
        if let Some(bytes) = publish {
            // Last writer wins; every writer holds a state at least as new as what it read.
            let _ = hc::set_shared_data(SHARED_STATE_KEY, Some(&bytes), None);
        }
        if status != self.last_sync_status {
            // Log transitions only (every VM syncs every period).
            let level = if status == Some(200) {
                LogLevel::Info
            } else {
                LogLevel::Warn
            };
            let hint = if status == Some(401) {
                " (companion.token does not match the companion's token)"
            } else {
                ""
            };
            log(
                level,
                &format!("dwcp: companion sync status {status:?}{hint}"),
            );
            self.last_sync_status = status;
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = hc::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match FilterConfig::from_slice(&bytes) {
            Ok(cfg) => {
                self.sync_period_ms = cfg.companion.sync_period_ms;
                let shadowed = cfg.rollouts.iter().any(|r| r.shadow_cluster.is_some());
                let id = unique_vm_id(self.context_id);
                log(
                    LogLevel::Info,
                    &format!(
                        "dwcp: configured vm={id} rollouts={} segments={:?}",
                        cfg.rollouts.len(),
                        cfg.segments
                    ),
                );
                let mut vm = Vm::new(cfg, id);
                adopt_at_start(&mut vm, true);
                if shadowed {
                    Self::register_wake_queue(&mut vm);
                }
                // Shadow copies are sent from the root context when the wake-up queue fires; without
                // the queue, on a faster tick. The companion is still synced once per sync period.
                let tick_ms = if shadowed && vm.mirror.wake_queue.is_none() {
                    self.sync_period_ms.min(SHADOW_TICK_MS)
                } else {
                    self.sync_period_ms
                };
                self.vm = Some(Rc::new(RefCell::new(vm)));
                self.tick_ms = tick_ms;
                let _ = hc::set_tick_period(Duration::from_millis(tick_ms));
                true
            }
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("dwcp: plugin config rejected: {e}"),
                );
                false
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        // Drain the wake-up tokens (their content is irrelevant), then send what is queued.
        while let Ok(Some(_)) = hc::dequeue_shared_queue(queue_id) {}
        if let Some(vm) = &self.vm {
            vm.borrow_mut().mirror.wake_armed = false;
        }
        self.pump_shadow();
    }

    fn on_tick(&mut self) {
        if let Some(vm) = &self.vm {
            // A lost wake-up (e.g. a full queue) never strands copies for more than a tick.
            vm.borrow_mut().mirror.wake_armed = false;
        }
        self.pump_shadow();
        let now = now_ms();
        // A tick may fire a little early: half a tick of slack keeps the sync on every period instead
        // of skipping to every other one (which doubled the time a new state takes to reach a VM).
        if now + self.tick_ms / 2 >= self.next_sync_ms {
            self.next_sync_ms = now + self.sync_period_ms;
            self.sync();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            vm: self.vm.clone(),
            decision: None,
            shadow: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    vm: Option<Rc<RefCell<Vm>>>,
    decision: Option<Decision>,
    /// The shadow copy of this request (its id in the VM's mirror) and the primary answer as it arrives.
    shadow: Option<(u64, crate::shadow::Primary)>,
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

/// Queues a wake-up for the root context unless one is already pending.
fn wake_root(m: &mut crate::shadow::Mirror) {
    if let (Some(q), false, false) = (m.wake_queue, m.wake_armed, m.queue.is_empty()) {
        m.wake_armed = hc::enqueue_shared_queue(q, Some(b"w")).is_ok();
    }
}

/// Reads an int64 property (Envoy serialises integers and durations as 8 little-endian bytes).
fn int_property(path: Vec<&str>) -> Option<i64> {
    let b = hc::get_property(path).ok().flatten()?;
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

#[cfg(target_arch = "wasm32")]
fn crash_for_test() {
    // Test-only switch (config `test_panic_header`): trap the VM to prove the shipped configs fail safe.
    core::arch::wasm32::unreachable()
}
#[cfg(not(target_arch = "wasm32"))]
fn crash_for_test() {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        let Some(vm_rc) = self.vm.clone() else {
            return Action::Continue;
        };
        let headers = hc::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let mut guard = vm_rc.borrow_mut();
        let vm = &mut *guard;
        if vm.state.is_none() {
            // No state yet (e.g. configured before any VM had one): look again before routing.
            adopt_at_start(vm, false);
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .unwrap_or("")
        };
        if let Some(ph) = &vm.cfg.test_panic_header {
            if headers.iter().any(|(k, _)| k == ph) {
                crash_for_test();
            }
        }
        let track_header = vm.cfg.track_header.as_str();
        let Some(rollout) = match_rollout(&vm.cfg, find(":authority"), find(":path")) else {
            // Not ours: never let a client-supplied track header through.
            if headers.iter().any(|(k, _)| k == track_header) {
                let _ = hc::remove_map_value(MapType::HttpRequestHeaders, track_header);
                let _ = hc::call_foreign_function("clear_route_cache", None);
            }
            return Action::Continue;
        };
        let d = decide(
            &vm.cfg,
            vm.state.as_ref(),
            vm.freshness,
            rollout,
            headers.as_slice(),
        );
        vm.acc.count(d.why.as_str());
        let track = d.track.as_str();
        if hc::set_map_value(MapType::HttpRequestHeaders, track_header, Some(track)).is_err() {
            // Could not set our header: make sure no client value survives, then serve stable.
            let _ = hc::remove_map_value(MapType::HttpRequestHeaders, track_header);
        }
        if vm.cfg.explain {
            let e = explain(&vm.cfg, vm.state.as_ref(), &d);
            let _ = hc::set_map_value(
                MapType::HttpRequestHeaders,
                &vm.cfg.decision_header,
                Some(&e),
            );
        }
        let _ = hc::call_foreign_function("clear_route_cache", None);
        if let Some(id) = vm.shadow_capture(&d, &headers, !eos) {
            self.shadow = Some((id, crate::shadow::Primary::default()));
            wake_root(&mut vm.mirror);
        }
        self.decision = Some(d);
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
        let mut vm = vm_rc.borrow_mut();
        vm.record(&d, status, latency_us);
        if let Some((id, primary)) = self.shadow.take() {
            let vm = &mut *vm;
            vm.mirror
                .primary_done(&vm.cfg.shadow, &mut vm.acc, id, primary, status, latency_us);
        }
    }
}
