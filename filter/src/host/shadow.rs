//! The root context's side of shadow copies: register the wake-up queue, dispatch queued copies (and
//! noise copies), and hand the side calls' answers to the mirror.

use super::root::Root;
use super::{log, now_us};
use crate::vm::Vm;
use proxy_wasm::hostcalls as hc;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

impl Root {
    /// Sends the queued shadow copies. Dispatched from the root context so that the callout is owned
    /// by a context that outlives any HTTP stream (see `shadow.rs`).
    pub(super) fn pump_shadow(&mut self) {
        let Some(vm_rc) = self.vm.clone() else { return };
        let (ids, timeout) = {
            let mut vm = vm_rc.borrow_mut();
            if vm.mirror.queue.is_empty() {
                return;
            }
            (vm.mirror.take_queue(), vm.cfg.shadow.timeout_ms)
        };
        let timeout = Duration::from_millis(timeout);
        for id in ids {
            // Dispatching does not call back into the VM: the copy is read in place, not cloned.
            let (res, noise) = {
                let vm = vm_rc.borrow();
                let Some(req) = vm.mirror.request(id) else {
                    continue;
                };
                let mut headers: Vec<(&str, &str)> = req
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let len = req.body.len().to_string();
                let body = if req.body.is_empty() {
                    None
                } else {
                    headers.push(("content-length", len.as_str()));
                    Some(req.body.as_slice())
                };
                let res =
                    hc::dispatch_http_call(&req.cluster, headers.clone(), body, vec![], timeout);
                let noise = match (&res, &req.noise_cluster) {
                    (Ok(_), Some(nc)) => {
                        Some(hc::dispatch_http_call(nc, headers, body, vec![], timeout))
                    }
                    _ => None,
                };
                (res, noise)
            };
            let mut vm = vm_rc.borrow_mut();
            let vm = &mut *vm;
            match res {
                Ok(token) => {
                    let noise_token = match noise {
                        Some(Ok(t)) => Some(t),
                        Some(Err(_)) => {
                            vm.mirror.noise_send_failed(&mut vm.acc, id);
                            None
                        }
                        None => None,
                    };
                    vm.mirror
                        .sent(&mut vm.acc, id, token, noise_token, now_us())
                }
                Err(_) => vm.mirror.send_failed(&mut vm.acc, id),
            }
        }
    }

    /// Registers this VM's wake-up queue (a process-unique name: Envoy keeps one consumer per name).
    pub(super) fn register_wake_queue(vm: &mut Vm) {
        let name = format!("dwcp-shadow-{}", vm.vm_id);
        match hc::register_shared_queue(&name) {
            Ok(q) => vm.mirror.wake_queue = Some(q),
            Err(e) => log(
                LogLevel::Warn,
                &format!("dwcp: no shadow wake-up queue ({e:?}): copies leave on the 20 ms tick"),
            ),
        }
    }

    pub(super) fn on_shadow_answer(
        &mut self,
        vm_rc: &Rc<RefCell<Vm>>,
        token: u32,
        n_headers: usize,
        body_size: usize,
    ) {
        let (max, want_headers) = {
            let vm = vm_rc.borrow();
            (
                vm.cfg.shadow.max_body_bytes,
                !vm.cfg.shadow.compare_headers.is_empty(),
            )
        };
        let mut answer = crate::shadow::SideAnswer::default();
        if n_headers > 0 {
            if want_headers {
                let all = hc::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
                answer.status = all
                    .iter()
                    .find(|(k, _)| k == ":status")
                    .and_then(|(_, v)| v.parse().ok());
                answer.headers = all;
            } else {
                answer.status = hc::get_map_value(MapType::HttpCallResponseHeaders, ":status")
                    .ok()
                    .flatten()
                    .and_then(|s| s.parse::<u16>().ok());
            }
        }
        if body_size > max {
            answer.too_big = true;
        } else if body_size > 0 {
            answer.body = hc::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
        }
        let mut vm = vm_rc.borrow_mut();
        let vm = &mut *vm;
        vm.mirror
            .on_answer(&vm.cfg.shadow, &mut vm.acc, token, answer, now_us());
    }
}
