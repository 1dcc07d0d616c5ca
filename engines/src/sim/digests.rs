//! # Payload digests, computed once per shared payload
//!
//! The trace records each message as the FNV-1a digest of its [`Wire`] bytes, and the report
//! counts its encoded size. A payload is an `Arc<M>` that a node often sends many times — to each
//! recipient, then again in every retransmission round (a certificate-carrying relay is ~11 KB
//! at n = 256) — so the digest is cached per allocation. The cache holds a [`Weak`] to each
//! payload: that keeps the allocation's address from being reused while the entry exists (so a
//! pointer match is the same payload) and, because a `Weak` exists, the payload can no longer be
//! mutated through `Arc::get_mut`. The cache is pure memoisation: hits and misses yield the same
//! digest, so it cannot change a trace. It is a `HashMap` because it is only ever looked up,
//! never iterated into the run.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::protocol::Wire;
use super::trace::fnv1a;

/// Entries kept before dead payloads are pruned (and, if still full, everything is dropped).
const CAP: usize = 1 << 17;

/// What the simulator needs of one payload.
#[derive(Debug, Clone, Copy)]
pub(super) struct PayloadInfo {
    pub(super) digest: u64,
    pub(super) size: u64,
    pub(super) kind: &'static str,
}

pub(super) struct Digests<M> {
    cache: HashMap<usize, (Weak<M>, PayloadInfo)>,
    /// The last payload looked up (its entry is in `cache`, so its address is pinned): a
    /// broadcast's `n` sends of one payload skip the hash lookup.
    last: Option<(usize, PayloadInfo)>,
    scratch: Vec<u8>,
}

impl<M> Default for Digests<M> {
    fn default() -> Self {
        Self {
            cache: HashMap::new(),
            last: None,
            scratch: Vec::new(),
        }
    }
}

impl<M: Wire> Digests<M> {
    pub(super) fn get(&mut self, msg: &Arc<M>) -> PayloadInfo {
        let key = Arc::as_ptr(msg) as usize;
        if let Some((k, info)) = self.last {
            if k == key {
                return info;
            }
        }
        if let Some((_, info)) = self.cache.get(&key) {
            self.last = Some((key, *info));
            return *info;
        }
        self.scratch.clear();
        msg.wire(&mut self.scratch);
        let info = PayloadInfo {
            digest: fnv1a(&self.scratch),
            size: self.scratch.len() as u64,
            kind: msg.kind(),
        };
        if self.cache.len() >= CAP {
            self.last = None;
            self.cache.retain(|_, (w, _)| w.strong_count() > 0);
            if self.cache.len() >= CAP / 2 {
                self.cache.clear();
            }
        }
        self.cache.insert(key, (Arc::downgrade(msg), info));
        self.last = Some((key, info));
        info
    }
}
