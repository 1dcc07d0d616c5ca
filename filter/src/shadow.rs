//! Shadow copies, host-free (tested natively). The host glue lives in `host.rs`.
//!
//! Life of a copy: at request headers the HTTP context decides whether the request is mirrored
//! ([`Mirror::capture`]: shadow_bp sampling, eligibility, skips counted); the copy is queued in the per-VM
//! [`Mirror`] and the *root* context is woken (shared queue) to dispatch it at once, so the side call runs
//! while the primary request is in flight, as Envoy's own mirroring does. A callout is always owned by a
//! context that lives as long as the VM — an HTTP context may be gone long before a slow shadow answers
//! (the SDK would drop that answer). The HTTP context buffers the primary answer (bounded by
//! `max_body_bytes`, never pausing it) and hands it over at `on_log` ([`Mirror::primary_done`]). The
//! comparison runs when the primary and the side answers are all in. The user's request never waits for
//! any of this.
//!
//! With `shadow.noise_copy`, a second copy goes to the rollout's stable `noise_cluster`, and what the two
//! stable answers disagree on is discounted ([`NoiseModel`]).

use dwcp_core::shadow::{compare, Answer, MismatchSample, NoiseModel, ShadowSettings, Skip};
use dwcp_core::telemetry::Accumulator;
use std::collections::{HashMap, VecDeque};

mod copy;
pub use copy::{Copy, Primary, Request, Role, SideAnswer};

/// Marks the copy as shadow traffic, so the shadow side can avoid side effects. Stripped from every
/// incoming request (a client cannot forge it), set only on copies.
pub const SHADOW_HEADER: &str = "x-dwcp-shadow";
/// With `shadow.mark_key`: hex HMAC-SHA256 of the copy's `x-request-id` under the key, so a service
/// can check that the mark comes from this deployment's filter ([`shadow_mac`]).
pub const SHADOW_MAC_HEADER: &str = "x-dwcp-shadow-mac";

/// The mark's authenticator: lower-case hex of HMAC-SHA256(key, request_id).
pub fn shadow_mac(key: &str, request_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; keep the function total anyway.
        Err(_) => return String::new(),
    };
    mac.update(request_id.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(tag.len() * 2);
    for b in tag {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

/// Request headers never copied (hop-by-hop, body framing, our own marks).
const DROP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "te",
    "proxy-connection",
    SHADOW_HEADER,
    SHADOW_MAC_HEADER,
];

/// Per-VM shadow state: sampling, copies queued for the root context and in flight, noise models.
#[derive(Debug, Default)]
pub struct Mirror {
    /// Deterministic sampler: adds `shadow_bp` per candidate, mirrors each time it passes 10 000.
    sampler: u32,
    /// Copies waiting for the root context to dispatch them.
    pub queue: VecDeque<u64>,
    /// Live copies by id (queued, in flight, or waiting for the primary to finish).
    pub copies: HashMap<u64, Copy>,
    /// Side-call token → (copy id, which call).
    pub tokens: HashMap<u32, (u64, Role)>,
    next_id: u64,
    /// Per rollout: what two stable answers disagree on.
    pub noise: HashMap<String, NoiseModel>,
    /// This VM's shared queue: a queued copy wakes the root context through it (`on_queue_ready`), so
    /// copies leave at once instead of waiting for a tick.
    pub wake_queue: Option<u32>,
    /// A wake-up is already queued and not yet handled: do not queue another.
    pub wake_armed: bool,
}

/// Inputs of [`Mirror::capture`] read from the request headers.
pub struct RequestInfo<'a> {
    pub rollout: &'a str,
    pub shadow_cluster: Option<&'a str>,
    pub noise_cluster: Option<&'a str>,
    pub shadow_bp: u32,
    pub headers: &'a [(String, Vec<u8>)],
    /// The request headers did not end the stream: a body follows.
    pub has_body: bool,
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

impl Mirror {
    /// Live copies (the bound `max_in_flight` applies to this).
    pub fn pending(&self) -> usize {
        self.copies.len()
    }

    /// Approximate heap + inline bytes held by live copies.
    pub fn bytes(&self) -> usize {
        self.copies
            .values()
            .map(|c| c.bytes() + std::mem::size_of::<u64>())
            .sum::<usize>()
            + self.tokens.len() * std::mem::size_of::<(u32, (u64, Role))>()
            + self.queue.len() * std::mem::size_of::<u64>()
    }

    /// Decides whether a request is mirrored; counts the skips. A mirrored request is queued for the
    /// root context at once; the returned id is what the HTTP context hands back at `on_log`.
    pub fn capture(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        r: &RequestInfo<'_>,
    ) -> Option<u64> {
        let cluster = r.shadow_cluster?;
        if r.shadow_bp == 0 {
            return None;
        }
        self.sampler = self.sampler.saturating_add(r.shadow_bp.min(10_000));
        if self.sampler < 10_000 {
            return None;
        }
        self.sampler -= 10_000;
        let method = header(r.headers, ":method").unwrap_or("");
        let path = header(r.headers, ":path").unwrap_or("");
        let len = header(r.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if let Err(skip) = s.eligible(method, path, len) {
            let st = acc.shadow_mut(r.rollout);
            match skip {
                Skip::NotEligible => st.skipped_not_eligible += 1,
                Skip::BodyTooBig => st.skipped_body_too_big += 1,
            }
            return None;
        }
        if self.pending() >= s.max_in_flight {
            acc.shadow_mut(r.rollout).skipped_in_flight += 1;
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::with_capacity(r.headers.len() + 1);
        let mut authority = false;
        for (k, v) in r.headers {
            if DROP_HEADERS.contains(&k.as_str()) || s.strip_headers.iter().any(|h| h == k) {
                continue;
            }
            let Ok(v) = std::str::from_utf8(v) else {
                continue;
            };
            if k == ":authority" {
                if v.is_empty() {
                    continue;
                }
                authority = true;
            }
            headers.push((k.clone(), v.to_string()));
        }
        if !authority {
            headers.push((":authority".into(), cluster.to_string()));
        }
        headers.push((SHADOW_HEADER.into(), "1".into()));
        if let Some(key) = &s.mark_key {
            let rid = header(r.headers, "x-request-id").unwrap_or("");
            headers.push((SHADOW_MAC_HEADER.into(), shadow_mac(key, rid)));
        }
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            rollout: r.rollout.to_string(),
            cluster: cluster.to_string(),
            noise_cluster: r.noise_cluster.map(str::to_string),
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body: Vec::new(),
            awaiting_body: r.has_body,
        };
        self.copies.insert(
            id,
            Copy {
                request,
                ..Default::default()
            },
        );
        if !r.has_body {
            self.queue.push_back(id);
        }
        Some(id)
    }

    /// A chunk of the request body (`end`: the last one). Copies it (bounded); at the end the copy is
    /// queued for dispatch and true is returned (wake the root context). Over the bound the copy is
    /// dropped and counted.
    pub fn request_body(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        id: u64,
        chunk: &[u8],
        end: bool,
    ) -> bool {
        let Some(c) = self.copies.get_mut(&id) else {
            return false;
        };
        if !c.request.awaiting_body {
            return false;
        }
        if c.request.body.len() + chunk.len() > s.max_body_bytes {
            acc.shadow_mut(&c.request.rollout).skipped_body_too_big += 1;
            self.drop_copy(id);
            return false;
        }
        c.request.body.extend_from_slice(chunk);
        if end {
            c.request.awaiting_body = false;
            self.queue.push_back(id);
        }
        end
    }

    /// Whether the copy still waits for request body chunks.
    pub fn awaiting_body(&self, id: u64) -> bool {
        self.copies
            .get(&id)
            .is_some_and(|c| c.request.awaiting_body)
    }

    pub fn request(&self, id: u64) -> Option<&Request> {
        self.copies.get(&id).map(|c| &c.request)
    }

    /// The copies to send now (the root context dispatches them and reports back with
    /// [`Mirror::sent`] or [`Mirror::send_failed`]).
    pub fn take_queue(&mut self) -> Vec<u64> {
        self.queue.drain(..).collect()
    }

    /// The copy was dispatched: `token` for the shadow call, `noise_token` for the second stable copy
    /// (None: not sent — no noise cluster, or it could not be dispatched).
    pub fn sent(
        &mut self,
        acc: &mut Accumulator,
        id: u64,
        token: u32,
        noise_token: Option<u32>,
        now_us: u64,
    ) {
        let Some(c) = self.copies.get_mut(&id) else {
            return;
        };
        acc.shadow_mut(&c.request.rollout).requests += 1;
        c.sent_at_us = Some(now_us);
        c.noise = noise_token.map(|_| None);
        self.tokens.insert(token, (id, Role::Shadow));
        if let Some(t) = noise_token {
            self.tokens.insert(t, (id, Role::Noise));
        }
    }

    /// The side call could not be dispatched (e.g. unknown cluster): the copy is dropped.
    pub fn send_failed(&mut self, acc: &mut Accumulator, id: u64) {
        if let Some(c) = self.copies.remove(&id) {
            acc.shadow_mut(&c.request.rollout).side_call_failed += 1;
        }
    }

    /// The noise copy could not be dispatched: the shadow copy goes on without its noise estimate.
    pub fn noise_send_failed(&mut self, acc: &mut Accumulator, id: u64) {
        if let Some(c) = self.copies.get(&id) {
            acc.shadow_mut(&c.request.rollout).noise_call_failed += 1;
        }
    }

    pub fn owns(&self, token: u32) -> bool {
        self.tokens.contains_key(&token)
    }

    /// The primary finished (`on_log`) with this answer: compare if the side answers are in.
    pub fn primary_done(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        id: u64,
        mut primary: Primary,
        status: u16,
        latency_us: u64,
    ) {
        let Some(c) = self.copies.get_mut(&id) else {
            return;
        };
        if primary.too_big {
            acc.shadow_mut(&c.request.rollout).skipped_body_too_big += 1;
            self.drop_copy(id);
            return;
        }
        if status == 0 || c.request.awaiting_body {
            // No response reached the client (it went away, or the stream was reset): the primary
            // answer is incomplete, so a difference would say nothing about the shadow.
            acc.shadow_mut(&c.request.rollout)
                .skipped_primary_incomplete += 1;
            self.drop_copy(id);
            return;
        }
        primary.answer.status = status;
        primary.answer.latency_us = latency_us;
        c.primary = Some(primary.answer);
        self.try_finish(s, acc, id);
    }

    /// The HTTP context went away without `on_log` (should not happen in Envoy): forget the copy.
    pub fn abandon(&mut self, id: u64) {
        self.drop_copy(id);
    }

    fn drop_copy(&mut self, id: u64) {
        if self.copies.remove(&id).is_some() {
            // Late answers of a dropped copy are recognised by token and discarded.
            self.queue.retain(|q| *q != id);
        }
    }

    /// A side call answered (or failed). Returns false for a token that is not a shadow call.
    pub fn on_answer(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        token: u32,
        mut answer: SideAnswer,
        now_us: u64,
    ) -> bool {
        let Some((id, role)) = self.tokens.remove(&token) else {
            return false;
        };
        let Some(c) = self.copies.get_mut(&id) else {
            return true;
        };
        match role {
            Role::Shadow => {
                answer.latency_us = now_us.saturating_sub(c.sent_at_us.unwrap_or(now_us));
                c.shadow = Some(answer);
            }
            Role::Noise => c.noise = Some(Some(answer)),
        }
        self.try_finish(s, acc, id);
        true
    }

    fn try_finish(&mut self, s: &ShadowSettings, acc: &mut Accumulator, id: u64) {
        if !self.copies.get(&id).is_some_and(Copy::complete) {
            return;
        }
        let Some(c) = self.copies.remove(&id) else {
            return;
        };
        let (Some(primary), Some(answer)) = (c.primary, c.shadow) else {
            return;
        };
        let r = c.request;
        let st = acc.shadow_mut(&r.rollout);
        if answer.too_big {
            st.skipped_body_too_big += 1;
            return;
        }
        if answer.is_local_failure() {
            st.side_call_failed += 1;
        }
        let shadow = Answer {
            status: answer.status.unwrap_or(0),
            headers: answer.headers,
            body: answer.body,
            latency_us: answer.latency_us,
        };
        let mut o = compare(s, &primary, &shadow);
        // The second stable answer, if it came back (a failed noise call only loses the estimate).
        let stable = match c.noise.flatten() {
            Some(n) if !n.too_big && !n.is_local_failure() => {
                let a = Answer {
                    status: n.status.unwrap_or(0),
                    headers: n.headers,
                    body: n.body,
                    latency_us: 0,
                };
                Some(compare(s, &primary, &a))
            }
            Some(_) => {
                st.noise_call_failed += 1;
                None
            }
            None => None,
        };
        if r.noise_cluster.is_some() || stable.is_some() {
            let model = self.noise.entry(r.rollout.clone()).or_default();
            model.classify(s, &mut o, stable.as_ref());
        }
        st.record(&o);
        if o.mismatch() && !o.noise {
            acc.sample(MismatchSample::new(
                &r.rollout, &r.method, &r.path, &primary, &shadow, &o,
            ));
        }
    }
}

#[cfg(test)]
mod tests;
