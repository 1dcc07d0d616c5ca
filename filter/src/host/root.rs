//! The root context: validates the plugin config, runs the tick (companion sync once per sync period,
//! shadow pumping in between), adopts the process's newest state from shared data, exports counters.

use super::http::Http;
use super::{log, now_ms, now_us};
use crate::metrics;
use crate::vm::{Vm, SHARED_STATE_KEY, SHARED_VM_COUNTER_KEY};
use proxy_wasm::hostcalls as hc;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Tick period (ms) while a rollout has a shadow cluster and the wake-up queue could not be registered:
/// queued shadow copies then wait at most this long.
const SHADOW_TICK_MS: u64 = 20;

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
pub(super) fn adopt_at_start(vm: &mut Vm, nothing_routed_yet: bool) {
    if read_shared_state(vm) {
        vm.refresh(now_ms());
        if nothing_routed_yet {
            // Every request of this window will be routed with the adopted version.
            vm.window_version = vm.state_version();
            vm.window_epoch = vm.state_epoch();
        }
    }
}

pub(super) struct Root {
    context_id: u32,
    pub(super) vm: Option<Rc<RefCell<Vm>>>,
    metric_ids: HashMap<String, u32>,
    last_sync_status: Option<u16>,
    sync_period_ms: u64,
    /// The tick period actually set (the sync period, or shorter while shadow copies need pumping).
    tick_ms: u64,
    next_sync_ms: u64,
}

impl Root {
    pub(super) fn new(context_id: u32) -> Self {
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
            let (batch, new) = vm.next_batch(now);
            let body = serde_json::to_vec(&batch).unwrap_or_default();
            let fresh = new.then(|| batch.clone());
            (fresh, batch, body, vm.cfg.companion.clone())
        };
        // Export what a new batch adds to the Envoy counters (once per tick, not per request; a resent
        // batch was exported when it was cut).
        for (name, delta) in fresh.as_ref().map(metrics::deltas).unwrap_or_default() {
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
        if let Some(id) = self.metric(metrics::STATE_VERSION, MetricType::Gauge) {
            let _ = hc::record_metric(id, freshness_gauge.0);
        }
        if let Some(id) = self.metric(metrics::STATE_STALE, MetricType::Gauge) {
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
        match crate::vm::accept_config(&bytes) {
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
        Some(Box::new(Http::new(self.vm.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
