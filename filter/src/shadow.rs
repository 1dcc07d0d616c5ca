//! Shadow copies, host-free (tested natively). The host glue lives in `host.rs`.
//!
//! Life of a copy: at request headers the HTTP context decides whether the request is mirrored
//! ([`Mirror::capture`]: shadow_bp sampling, eligibility, skips counted) and keeps the request headers; it
//! buffers the primary answer (bounded by `max_body_bytes`, never pausing it); at `on_log` the finished
//! primary moves into the per-VM [`Mirror`] queue ([`Mirror::enqueue`], bounded by `max_in_flight`). The
//! *root* context dispatches queued copies on its next tick and receives their answers, so a callout is
//! always owned by a context that lives as long as the VM — an HTTP context may be gone long before a
//! slow shadow answers (the SDK would drop that answer). The user's request never waits for any of this.
//!
//! With `shadow.noise_copy`, a second copy goes to the rollout's stable `noise_cluster`; the comparison
//! waits for both side calls and discounts what the two stable answers disagree on ([`NoiseModel`]).

use dwcp_core::shadow::{compare, Answer, MismatchSample, NoiseModel, ShadowSettings, Skip};
use dwcp_core::telemetry::Accumulator;
use std::collections::{HashMap, VecDeque};

/// Marks the copy as shadow traffic, so the shadow side can avoid side effects.
pub const SHADOW_HEADER: &str = "x-dwcp-shadow";

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
];

/// A request being mirrored: what the copy needs, and the primary answer as it arrives.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub rollout: String,
    pub cluster: String,
    /// Stable cluster for the second (noise) copy.
    pub noise_cluster: Option<String>,
    pub method: String,
    pub path: String,
    /// Headers of the copy (already filtered, with [`SHADOW_HEADER`] and `:authority`).
    pub headers: Vec<(String, String)>,
    pub primary: Answer,
    /// The primary body exceeded `max_body_bytes`: no comparison.
    pub too_big: bool,
}

impl Capture {
    /// Appends a chunk of the primary body; over `max` the body is dropped and the capture marked.
    pub fn body_chunk(&mut self, chunk: &[u8], max: usize) {
        if self.too_big {
            return;
        }
        if self.primary.body.len() + chunk.len() > max {
            self.too_big = true;
            self.primary.body = Vec::new();
        } else {
            self.primary.body.extend_from_slice(chunk);
        }
    }

    /// Would a body of `len` bytes (announced) be too big?
    pub fn announce(&mut self, len: Option<usize>, max: usize) {
        if len.is_some_and(|n| n > max) {
            self.too_big = true;
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.rollout.capacity()
            + self.cluster.capacity()
            + self.noise_cluster.as_ref().map_or(0, String::capacity)
            + self.method.capacity()
            + self.path.capacity()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() + std::mem::size_of::<(String, String)>())
                .sum::<usize>()
            + self
                .primary
                .headers
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() + std::mem::size_of::<(String, String)>())
                .sum::<usize>()
            + self.primary.body.capacity()
    }
}

/// A copy whose side call(s) are in flight.
#[derive(Debug, Clone)]
pub struct Sent {
    pub capture: Capture,
    pub sent_at_us: u64,
    /// The shadow's answer, once in.
    pub shadow: Option<SideAnswer>,
    /// The second stable answer: `Some(None)` while awaited, `None` when no noise copy was sent.
    pub noise: Option<Option<SideAnswer>>,
}

impl Sent {
    fn complete(&self) -> bool {
        self.shadow.is_some() && !matches!(self.noise, Some(None))
    }

    fn bytes(&self) -> usize {
        let answer = |a: &SideAnswer| {
            a.body.capacity()
                + a.headers
                    .iter()
                    .map(|(k, v)| {
                        k.capacity() + v.capacity() + std::mem::size_of::<(String, String)>()
                    })
                    .sum::<usize>()
        };
        self.capture.bytes()
            + std::mem::size_of::<Self>()
            + self.shadow.as_ref().map_or(0, answer)
            + self
                .noise
                .as_ref()
                .and_then(Option::as_ref)
                .map_or(0, answer)
    }
}

/// Which side call a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Shadow,
    Noise,
}

/// The shadow's answer to a side call.
#[derive(Debug, Clone, Default)]
pub struct SideAnswer {
    /// None: no `:status` (call failed).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was larger than `max_body_bytes` (not read).
    pub too_big: bool,
    /// Filled in by [`Mirror::on_answer`] for the shadow call.
    pub latency_us: u64,
}

impl SideAnswer {
    /// Envoy's own reply to a side call that could not reach the shadow (refused, reset, timeout).
    pub fn is_local_failure(&self) -> bool {
        match self.status {
            None | Some(0) | Some(504) => true,
            Some(503) => {
                self.body.is_empty()
                    || self.body.starts_with(b"upstream connect error")
                    || self.body.starts_with(b"upstream request timeout")
                    || self.body.starts_with(b"no healthy upstream")
            }
            _ => false,
        }
    }
}

/// Per-VM shadow state: sampling, queued copies (waiting for the root tick), in-flight side calls.
#[derive(Debug, Default)]
pub struct Mirror {
    /// Deterministic sampler: adds `shadow_bp` per candidate, mirrors each time it passes 10 000.
    sampler: u32,
    pub queue: VecDeque<Capture>,
    /// Copies in flight, by id.
    pub in_flight: HashMap<u64, Sent>,
    /// Side-call token → (copy id, which call).
    pub tokens: HashMap<u32, (u64, Role)>,
    next_id: u64,
    /// Per rollout: what two stable answers disagree on.
    pub noise: HashMap<String, NoiseModel>,
    /// This VM's shared queue: a copy queued by an HTTP context wakes the root context through it
    /// (`on_queue_ready`), so copies leave at once instead of waiting for a tick.
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
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

impl Mirror {
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Approximate heap + inline bytes held by queued and in-flight copies.
    pub fn bytes(&self) -> usize {
        self.queue.iter().map(Capture::bytes).sum::<usize>()
            + self
                .in_flight
                .values()
                .map(|s| s.bytes() + std::mem::size_of::<u64>())
                .sum::<usize>()
            + self.tokens.len() * std::mem::size_of::<(u32, (u64, Role))>()
    }

    /// Decides whether a request is mirrored; counts the skips. Returns the capture to keep in the
    /// HTTP context.
    pub fn capture(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        r: &RequestInfo<'_>,
    ) -> Option<Capture> {
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
        let chunked = header(r.headers, "transfer-encoding").is_some();
        if let Err(skip) = s.eligible(method, path, len, chunked) {
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
            if DROP_HEADERS.contains(&k.as_str()) {
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
        Some(Capture {
            rollout: r.rollout.to_string(),
            cluster: cluster.to_string(),
            noise_cluster: r.noise_cluster.map(str::to_string),
            method: method.to_string(),
            path: path.to_string(),
            headers,
            ..Default::default()
        })
    }

    /// The primary finished (`on_log`): queue the copy for the root context to send.
    pub fn enqueue(
        &mut self,
        s: &ShadowSettings,
        acc: &mut Accumulator,
        mut c: Capture,
        status: u16,
        latency_us: u64,
    ) {
        if c.too_big {
            acc.shadow_mut(&c.rollout).skipped_body_too_big += 1;
            return;
        }
        if self.pending() >= s.max_in_flight {
            acc.shadow_mut(&c.rollout).skipped_in_flight += 1;
            return;
        }
        c.primary.status = status;
        c.primary.latency_us = latency_us;
        self.queue.push_back(c);
    }

    /// The copies to send now (the root context dispatches them and reports back with
    /// [`Mirror::sent`] or [`Mirror::send_failed`]).
    pub fn take_queue(&mut self) -> Vec<Capture> {
        self.queue.drain(..).collect()
    }

    /// The copy was dispatched: `token` for the shadow call, `noise_token` for the second stable copy
    /// (None: not sent — no noise cluster, or it could not be dispatched).
    pub fn sent(
        &mut self,
        acc: &mut Accumulator,
        token: u32,
        noise_token: Option<u32>,
        capture: Capture,
        now_us: u64,
    ) {
        acc.shadow_mut(&capture.rollout).requests += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.tokens.insert(token, (id, Role::Shadow));
        if let Some(t) = noise_token {
            self.tokens.insert(t, (id, Role::Noise));
        }
        self.in_flight.insert(
            id,
            Sent {
                capture,
                sent_at_us: now_us,
                shadow: None,
                noise: noise_token.map(|_| None),
            },
        );
    }

    /// The side call could not be dispatched (e.g. unknown cluster).
    pub fn send_failed(&mut self, acc: &mut Accumulator, capture: &Capture) {
        acc.shadow_mut(&capture.rollout).side_call_failed += 1;
    }

    pub fn owns(&self, token: u32) -> bool {
        self.tokens.contains_key(&token)
    }

    /// A side call answered (or failed). Once both answers of a copy are in, compares and counts.
    /// Returns false for a token that is not a shadow call.
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
        let Some(sent) = self.in_flight.get_mut(&id) else {
            return true;
        };
        match role {
            Role::Shadow => {
                // The shadow's latency is measured when its own answer arrives.
                answer.latency_us = now_us.saturating_sub(sent.sent_at_us);
                sent.shadow = Some(answer);
            }
            Role::Noise => sent.noise = Some(Some(answer)),
        }
        if !sent.complete() {
            return true;
        }
        let Some(sent) = self.in_flight.remove(&id) else {
            return true;
        };
        self.finish(s, acc, sent);
        true
    }

    fn finish(&mut self, s: &ShadowSettings, acc: &mut Accumulator, sent: Sent) {
        let c = sent.capture;
        let Some(answer) = sent.shadow else { return };
        let st = acc.shadow_mut(&c.rollout);
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
        let mut o = compare(s, &c.primary, &shadow);
        // The second stable answer, if it came back (a failed noise call only loses the estimate).
        let stable = match sent.noise.flatten() {
            Some(n) if !n.too_big && !n.is_local_failure() => {
                let a = Answer {
                    status: n.status.unwrap_or(0),
                    headers: n.headers,
                    body: n.body,
                    latency_us: 0,
                };
                Some(compare(s, &c.primary, &a))
            }
            Some(_) => {
                st.noise_call_failed += 1;
                None
            }
            None => None,
        };
        if c.noise_cluster.is_some() || stable.is_some() {
            let model = self.noise.entry(c.rollout.clone()).or_default();
            model.classify(s, &mut o, stable.as_ref());
        }
        st.record(&o);
        if o.mismatch() && !o.noise {
            acc.sample(MismatchSample::new(
                &c.rollout, &c.method, &c.path, &c.primary, &shadow, &o,
            ));
        }
    }
}

#[cfg(test)]
mod tests;
