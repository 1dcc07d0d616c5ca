//! One mirrored request: what the side call needs, the primary answer as the HTTP context buffers it,
//! and the answers of the side calls as they come in.

use dwcp_core::shadow::Answer;

fn pairs_bytes(h: &[(String, String)]) -> usize {
    h.iter()
        .map(|(k, v)| k.capacity() + v.capacity() + std::mem::size_of::<(String, String)>())
        .sum()
}

/// The request part of a copy: what the side call needs.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub rollout: String,
    pub cluster: String,
    /// Stable cluster for the second (noise) copy.
    pub noise_cluster: Option<String>,
    pub method: String,
    pub path: String,
    /// Headers of the copy (already filtered, with [`super::SHADOW_HEADER`] and `:authority`).
    pub headers: Vec<(String, String)>,
    /// The request body, copied as it streams through (bounded by `max_body_bytes`).
    pub body: Vec<u8>,
    /// The request has a body that is still being copied: not dispatched yet.
    pub awaiting_body: bool,
}

impl Request {
    pub(super) fn bytes(&self) -> usize {
        self.rollout.capacity()
            + self.cluster.capacity()
            + self.noise_cluster.as_ref().map_or(0, String::capacity)
            + self.method.capacity()
            + self.path.capacity()
            + pairs_bytes(&self.headers)
            + self.body.capacity()
    }
}

/// The primary answer as it arrives, buffered by the HTTP context (bounded).
#[derive(Debug, Clone, Default)]
pub struct Primary {
    pub answer: Answer,
    /// The primary body exceeded `max_body_bytes`: no comparison.
    pub too_big: bool,
}

impl Primary {
    /// Whether `n` more body bytes fit under `max`; if not, the body is dropped and the answer marked
    /// (checked before reading a chunk from the host, so an oversized one is never copied).
    pub fn accepts(&mut self, n: usize, max: usize) -> bool {
        if self.too_big {
            return false;
        }
        if self.answer.body.len() + n > max {
            self.too_big = true;
            self.answer.body = Vec::new();
            return false;
        }
        true
    }

    /// Appends a chunk of the primary body; over `max` the body is dropped and the answer marked.
    pub fn body_chunk(&mut self, chunk: &[u8], max: usize) {
        if self.accepts(chunk.len(), max) {
            self.answer.body.extend_from_slice(chunk);
        }
    }

    /// Would a body of `len` bytes (announced) be too big?
    pub fn announce(&mut self, len: Option<usize>, max: usize) {
        if len.is_some_and(|n| n > max) {
            self.too_big = true;
        }
    }
}

/// A live copy: queued for dispatch, or with side calls in flight, until it is compared.
#[derive(Debug, Clone, Default)]
pub struct Copy {
    pub request: Request,
    /// Set at the primary's `on_log`.
    pub primary: Option<Answer>,
    /// When the side call left (None: still queued).
    pub sent_at_us: Option<u64>,
    /// The shadow's answer, once in.
    pub shadow: Option<SideAnswer>,
    /// The second stable answer: `Some(None)` while awaited, `None` when no noise copy was sent.
    pub noise: Option<Option<SideAnswer>>,
}

impl Copy {
    pub(super) fn complete(&self) -> bool {
        self.primary.is_some() && self.shadow.is_some() && !matches!(self.noise, Some(None))
    }

    pub(super) fn bytes(&self) -> usize {
        let side = |a: &SideAnswer| a.body.capacity() + pairs_bytes(&a.headers);
        std::mem::size_of::<Self>()
            + self.request.bytes()
            + self
                .primary
                .as_ref()
                .map_or(0, |p| p.body.capacity() + pairs_bytes(&p.headers))
            + self.shadow.as_ref().map_or(0, side)
            + self.noise.as_ref().and_then(Option::as_ref).map_or(0, side)
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
    /// Filled in by [`super::Mirror::on_answer`] for the shadow call.
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
