//! # What a replica persists, and how it is rebuilt from it
//!
//! Keys (all synced before the step's messages leave):
//! * `view` — current view and whether a view change is under way;
//! * `n` — the primary's next sequence number (never two batches for one `(view, seq)`);
//! * `v‖view‖seq` / `c‖view‖seq` — the digest this replica signed a prepare / commit for;
//! * `p‖seq` — its latest prepare certificate (what its view change must carry);
//! * `l‖seq` — the executed ledger with commit certificates (so a restart neither re-executes
//!   nor re-outputs anything, and can serve state transfer);
//! * `s` — the stable checkpoint; `r‖id` — own requests still waiting for `f + 1` replies.
//!
//! Vote sets, pending requests and view-change sets are volatile: peers retransmit them.

use std::sync::Arc;

use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::durable::Durable;
use crate::sim::protocol::Outbox;
use crate::sim::wire::Reader;

use super::replica::Replica;
use super::wire::{
    get_entry, get_proof, get_request, get_stable, put_entry, put_request, put_stable,
};
use super::LedgerEntry;
use super::{batch_digest, next_state, PbftConfig, PbftMsg, PreparedProof, Request, Stable};

fn key2(tag: u8, a: u64, b: u64) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&a.to_be_bytes());
    k.extend_from_slice(&b.to_be_bytes());
    k
}

fn key1(tag: u8, a: u64) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&a.to_be_bytes());
    k
}

fn be(k: &[u8], at: usize) -> Option<u64> {
    k.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

impl Replica {
    pub(super) fn persist_view(&self, out: &mut Outbox<PbftMsg>) {
        let mut v = self.view.to_le_bytes().to_vec();
        v.push(u8::from(self.in_vc));
        out.persist(b"view".to_vec(), v);
    }

    pub(super) fn persist_next_seq(&self, out: &mut Outbox<PbftMsg>) {
        out.persist(b"n".to_vec(), self.next_seq.to_le_bytes().to_vec());
    }

    pub(super) fn persist_vote(
        &mut self,
        view: u64,
        seq: u64,
        d: &Digest32,
        out: &mut Outbox<PbftMsg>,
    ) {
        self.voted.insert((view, seq), *d);
        out.persist(key2(b'v', view, seq), d.to_vec());
    }

    pub(super) fn persist_commit_vote(
        &self,
        view: u64,
        seq: u64,
        d: &Digest32,
        out: &mut Outbox<PbftMsg>,
    ) {
        out.persist(key2(b'c', view, seq), d.to_vec());
    }

    pub(super) fn forget_votes(&self, (view, seq): (u64, u64), out: &mut Outbox<PbftMsg>) {
        out.unpersist(key2(b'v', view, seq));
        out.unpersist(key2(b'c', view, seq));
    }

    pub(super) fn persist_proof(&self, p: &PreparedProof, out: &mut Outbox<PbftMsg>) {
        let mut buf = Vec::new();
        put_entry(&mut buf, p.view, p.seq, &p.batch, &p.cert);
        out.persist(key1(b'p', p.seq), buf);
    }

    pub(super) fn forget_proof(&self, seq: u64, out: &mut Outbox<PbftMsg>) {
        out.unpersist(key1(b'p', seq));
    }

    pub(super) fn persist_entry(&self, e: &LedgerEntry, out: &mut Outbox<PbftMsg>) {
        let mut buf = Vec::new();
        put_entry(&mut buf, e.view, e.seq, &e.batch, &e.cert);
        out.persist(key1(b'l', e.seq), buf);
    }

    pub(super) fn persist_stable(&self, s: &Stable, out: &mut Outbox<PbftMsg>) {
        let mut buf = Vec::new();
        put_stable(&mut buf, s);
        out.persist(b"s".to_vec(), buf);
    }

    pub(super) fn persist_request(&self, r: &Request, out: &mut Outbox<PbftMsg>) {
        let mut buf = Vec::new();
        put_request(&mut buf, r);
        out.persist(key1(b'r', r.id), buf);
    }

    pub(super) fn forget_request(&self, id: u64, out: &mut Outbox<PbftMsg>) {
        out.unpersist(key1(b'r', id));
    }

    /// Rebuild a replica from its durable store alone (a restart after a crash). Records that do
    /// not decode are skipped: the network supplies what is missing.
    pub fn restore(cfg: PbftConfig, signer: NodeSigner, keys: PublicKeys, store: &Durable) -> Self {
        let mut r = Self::new(cfg, signer, keys);
        if let Some(v) = store.get(b"view") {
            if let Some(view) = be_le(v) {
                r.view = view;
                r.in_vc = v.get(8) == Some(&1);
            }
        }
        if let Some(n) = store.get(b"n").and_then(be_le) {
            r.next_seq = n;
        }
        if let Some(s) = store
            .get(b"s")
            .and_then(|b| get_stable(&mut Reader::new(b)).ok())
        {
            r.stable = s;
        }
        for (k, v) in store.with_prefix(b"l") {
            if k.len() != 9 {
                continue;
            }
            let Ok(e) = get_entry(&mut Reader::new(v)) else {
                continue;
            };
            if e.seq != r.executed + 1 {
                continue;
            }
            for req in e.batch.iter() {
                r.done.entry((req.client, req.id)).or_insert(e.seq);
            }
            r.state = next_state(&r.state, e.seq, &batch_digest(&e.batch));
            r.executed = e.seq;
            r.ledger.insert(e.seq, e);
        }
        for (tag, map) in [(b'v', &mut r.voted), (b'c', &mut r.commit_voted)] {
            for (k, v) in store.with_prefix(&[tag]) {
                if let (Some(view), Some(seq), Ok(d)) =
                    (be(k, 1), be(k, 9), <[u8; 32]>::try_from(v))
                {
                    map.insert((view, seq), d);
                }
            }
        }
        for (k, v) in store.with_prefix(b"p") {
            if k.len() != 9 {
                continue;
            }
            if let Ok(p) = get_proof(&mut Reader::new(v)) {
                r.proofs.insert(p.seq, p);
            }
        }
        for (k, v) in store.with_prefix(b"r") {
            if k.len() != 9 {
                continue;
            }
            if let Ok(req) = get_request(&mut Reader::new(v)) {
                r.mine.insert(req.id, Arc::new(req));
            }
        }
        r.next_seq = r.next_seq.max(r.stable.seq + 1);
        r
    }
}

fn be_le(v: &[u8]) -> Option<u64> {
    v.get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}
