//! The inbound half of a validator: voting on headers, verifying and settling certificates into
//! the DAG (the commit rule runs on every insertion), fetching what is missing, retransmission,
//! garbage collection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::sim::crypto::Digest32;
use crate::sim::protocol::{AlarmKind, NodeId, Outbox};

use super::super::dag::InsertError;
use super::super::order::CommittedLeader;
use super::super::{vote_statement, BullsharkMsg, Certificate, Header, Ordered, Vote};
use super::{Validator, T_RETRANSMIT};

impl Validator {
    // ---- voting -------------------------------------------------------------------------

    /// Check the signature once, and the one-header-per-slot rule: a second header for a slot
    /// raises one alarm; a certified one is still admitted (2f + 1 voted for it).
    pub(super) fn admit_header(
        &mut self,
        h: &Header,
        digest: &Digest32,
        certified: bool,
        out: &mut Outbox<BullsharkMsg>,
    ) -> bool {
        if h.author >= self.cfg.n || h.round < self.dag.gc_round() {
            return false;
        }
        if !self.verified_headers.contains(digest) {
            if !self.keys.verify(h.author, digest, &h.sig) {
                self.alarm(out, AlarmKind::BadSignature, None, "header signature");
                return false;
            }
            self.verified_headers.insert(*digest);
        }
        let slot = (h.round, h.author);
        match self.seen_headers.get(&slot) {
            Some(first) if first != digest => {
                if self.accused.insert(slot) {
                    let detail =
                        format!("two signed headers of {} for round {}", h.author, h.round);
                    self.alarm(out, AlarmKind::Equivocation, Some(h.author), detail);
                }
                if certified {
                    self.seen_headers.insert(slot, *digest);
                }
                certified
            }
            Some(_) => true,
            None => {
                self.seen_headers.insert((h.round, h.author), *digest);
                true
            }
        }
    }

    pub(super) fn well_formed(&self, h: &Header) -> bool {
        let distinct = |v: &[Digest32]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
        let parents_ok = if h.round == 0 {
            h.parents.is_empty() && h.weak.is_empty()
        } else {
            h.parents.len() >= self.cfg.quorum() && h.parents.len() <= self.cfg.n as usize
        };
        let weak_ok = h.weak.iter().all(|(r, _)| r + 1 < h.round);
        parents_ok && weak_ok && distinct(&h.parents) && distinct(&h.batches)
    }

    pub(super) fn on_header(
        &mut self,
        from: NodeId,
        h: &Arc<Header>,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        let digest = h.digest();
        if !self.admit_header(h, &digest, false, out) || !self.well_formed(h) {
            return;
        }
        if let Some((d, sig)) = self.voted.get(&(h.round, h.author)) {
            if *d == digest {
                let vote = Vote {
                    header: digest,
                    round: h.round,
                    voter: self.me(),
                    sig: *sig,
                };
                out.send(h.author, BullsharkMsg::Vote(vote));
            }
            return;
        }
        let probe = Certificate::new((**h).clone(), Vec::new());
        let missing = self.dag.missing(&probe);
        let lacking: Vec<Digest32> = h
            .batches
            .iter()
            .filter(|b| !self.batches.contains_key(*b))
            .copied()
            .collect();
        if !missing.is_empty() || !lacking.is_empty() {
            self.fetch(missing, lacking, from, h.author, out);
            self.waiting_headers
                .insert((h.round, h.author), (Arc::clone(h), from));
            return;
        }
        // Distinct authors of round r − 1, all present: the parents are a real quorum.
        let authors: BTreeSet<NodeId> = h
            .parents
            .iter()
            .filter_map(|p| self.dag.get(p))
            .filter(|c| h.round > self.dag.gc_round() && c.round() + 1 == h.round)
            .map(|c| c.author())
            .collect();
        if h.round > self.dag.gc_round() && authors.len() < self.cfg.quorum() {
            return;
        }
        let sig = self.signer.sign(&vote_statement(&digest));
        self.voted.insert((h.round, h.author), (digest, sig));
        let vote = Vote {
            header: digest,
            round: h.round,
            voter: self.me(),
            sig,
        };
        out.send(h.author, BullsharkMsg::Vote(vote));
    }

    // ---- certificates -------------------------------------------------------------------

    pub(super) fn verify_cert(&mut self, c: &Certificate, out: &mut Outbox<BullsharkMsg>) -> bool {
        if !self.admit_header(&c.header, &c.digest, true, out) || !self.well_formed(&c.header) {
            return false;
        }
        let voters: BTreeSet<NodeId> = c.votes.iter().map(|(v, _)| *v).collect();
        if voters.len() != c.votes.len() || voters.len() < self.cfg.quorum() {
            return false;
        }
        let st = vote_statement(&c.digest);
        let items: Vec<(NodeId, &[u8], &[u8; 64])> = c
            .votes
            .iter()
            .map(|(v, s)| (*v, st.as_slice(), s))
            .collect();
        if !self.keys.verify_all(&items) {
            self.alarm(out, AlarmKind::BadSignature, None, "certificate votes");
            return false;
        }
        true
    }

    pub(super) fn on_cert(
        &mut self,
        now: u64,
        from: NodeId,
        c: &Arc<Certificate>,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        if self.dag.contains(&c.digest) || self.waiting_certs.contains_key(&c.digest) {
            return;
        }
        if c.round() < self.dag.gc_round() || c.digest != c.header.digest() {
            return;
        }
        // My own certificate, handed to myself: its votes were verified one by one.
        let own = from == self.me()
            && self
                .mine
                .as_ref()
                .is_some_and(|m| m.certified && m.digest == c.digest);
        if !own && !self.verify_cert(c, out) {
            return;
        }
        self.missing_certs.remove(&c.digest);
        self.waiting_certs.insert(c.digest, Arc::clone(c));
        self.settle(now, from, out);
    }

    /// Insert every waiting certificate whose parents and batches are here; fetch the rest.
    pub(super) fn settle(&mut self, now: u64, from: NodeId, out: &mut Outbox<BullsharkMsg>) {
        let mut progress = true;
        let mut inserted = false;
        while progress {
            progress = false;
            let ready: Vec<Arc<Certificate>> = self.waiting_certs.values().cloned().collect();
            for c in ready {
                let lacking: Vec<Digest32> = c
                    .header
                    .batches
                    .iter()
                    .filter(|b| !self.batches.contains_key(*b))
                    .copied()
                    .collect();
                let missing = self.dag.missing(&c);
                if !missing.is_empty() || !lacking.is_empty() {
                    self.fetch(missing, lacking, from, c.author(), out);
                    continue;
                }
                self.waiting_certs.remove(&c.digest);
                match self.dag.insert(Arc::clone(&c)) {
                    Ok(()) => {}
                    Err(InsertError::SlotTaken) => {
                        let detail =
                            format!("two certificates of {} for round {}", c.author(), c.round());
                        self.alarm(out, AlarmKind::Equivocation, Some(c.author()), detail);
                        continue;
                    }
                    Err(_) => continue,
                }
                for b in &c.header.batches {
                    if let Some(e) = self.batches.get_mut(b) {
                        e.1 = e.1.max(c.round());
                    }
                }
                progress = true;
                inserted = true;
                let done = self.orderer.try_order(&self.dag, c.round());
                self.emit(done);
            }
        }
        if inserted {
            self.collect();
            self.retry_headers(out);
            self.try_propose(now, out);
        }
    }

    pub(super) fn emit(&mut self, done: Vec<CommittedLeader>) {
        for l in done {
            let leader_round = l.leader.round();
            for c in l.certs {
                self.committed.push(Ordered::Cert {
                    leader_round,
                    round: c.round(),
                    author: c.author(),
                    digest: c.digest,
                });
                for b in &c.header.batches {
                    let Some((batch, _)) = self.batches.get(b) else {
                        continue; // unreachable: a certificate enters the DAG with its batches
                    };
                    for t in &batch.txs {
                        self.ordered_txs += 1;
                        self.committed.push(Ordered::Tx {
                            leader_round,
                            round: c.round(),
                            origin: c.author(),
                            id: t.id,
                            payload: Arc::clone(&t.payload),
                        });
                    }
                }
            }
        }
    }

    pub(super) fn collect(&mut self) {
        let h = self.orderer.horizon();
        if h <= self.dag.gc_round() {
            return;
        }
        self.dag.gc(h);
        self.seen_headers = self.seen_headers.split_off(&(h, 0));
        self.accused = self.accused.split_off(&(h, 0));
        self.voted = self.voted.split_off(&(h, 0));
        self.waiting_headers = self.waiting_headers.split_off(&(h, 0));
        self.waiting_certs.retain(|_, c| c.round() >= h);
        self.batches.retain(|_, (_, r)| *r >= h);
        if self.verified_headers.len()
            > 64 * self.cfg.n as usize * self.cfg.gc_depth.max(1) as usize
        {
            self.verified_headers.clear();
        }
    }

    /// Headers waiting for parents or batches are reconsidered after every arrival.
    pub(super) fn retry_headers(&mut self, out: &mut Outbox<BullsharkMsg>) {
        let hs: Vec<(Arc<Header>, NodeId)> = std::mem::take(&mut self.waiting_headers)
            .into_values()
            .collect();
        for (h, from) in hs {
            self.on_header(from, &h, out);
        }
    }

    // ---- fetching -----------------------------------------------------------------------

    pub(super) fn fetch(
        &mut self,
        certs: Vec<Digest32>,
        batches: Vec<Digest32>,
        from: NodeId,
        author: NodeId,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        let me = self.me();
        let hint = if from != me { from } else { author };
        let new_c: Vec<Digest32> = certs
            .into_iter()
            .filter(|d| !self.missing_certs.contains_key(d) && !self.waiting_certs.contains_key(d))
            .collect();
        let new_b: Vec<Digest32> = batches
            .into_iter()
            .filter(|d| !self.missing_batches.contains_key(d))
            .collect();
        if hint == me {
            return;
        }
        for d in &new_c {
            self.missing_certs.insert(*d, hint);
        }
        for d in &new_b {
            self.missing_batches.insert(*d, author);
        }
        self.fetches += u64::from(!new_c.is_empty()) + u64::from(!new_b.is_empty());
        if !new_c.is_empty() {
            out.send(hint, BullsharkMsg::FetchCerts(new_c));
        }
        if !new_b.is_empty() && author != me {
            out.send(author, BullsharkMsg::FetchBatches(new_b));
        }
    }

    pub(super) fn on_fetch_certs(
        &mut self,
        from: NodeId,
        ds: &[Digest32],
        out: &mut Outbox<BullsharkMsg>,
    ) {
        for d in ds.iter().take(1024) {
            if let Some(c) = self.dag.get(d).or_else(|| self.waiting_certs.get(d)) {
                out.send(from, BullsharkMsg::Cert(Arc::clone(c)));
            }
        }
    }

    pub(super) fn on_fetch_batches(
        &mut self,
        from: NodeId,
        ds: &[Digest32],
        out: &mut Outbox<BullsharkMsg>,
    ) {
        for d in ds.iter().take(1024) {
            if let Some((b, _)) = self.batches.get(d) {
                out.send(from, BullsharkMsg::Batch(Arc::clone(b)));
            }
        }
    }

    pub(super) fn retransmit(&mut self, now: u64, out: &mut Outbox<BullsharkMsg>) {
        out.set_timer(T_RETRANSMIT, now + self.cfg.retransmit_ms);
        let me = self.me();
        let n = self.cfg.n;
        if let Some(m) = &self.mine {
            if !m.certified {
                for to in (0..n).filter(|t| *t != me && !m.votes.contains_key(t)) {
                    out.send_shared(to, Arc::new(BullsharkMsg::Header(Arc::clone(&m.header))));
                }
            }
        }
        // The latest own certificate: a validator that missed rounds fetches its ancestry.
        let latest = self.dag.highest_round().and_then(|top| {
            (self.dag.gc_round()..=top)
                .rev()
                .find_map(|r| self.dag.at(r, me))
                .cloned()
        });
        if let Some(c) = latest {
            for to in (0..n).filter(|t| *t != me) {
                out.send_shared(to, Arc::new(BullsharkMsg::Cert(Arc::clone(&c))));
            }
        }
        // Ask the next peer for what is still missing (the hint may be dead or lying).
        let rotate = |h: NodeId| {
            let mut x = (h + 1) % n;
            if x == me {
                x = (x + 1) % n;
            }
            x
        };
        let mut by_peer: BTreeMap<NodeId, (Vec<Digest32>, Vec<Digest32>)> = BTreeMap::new();
        for (d, h) in self.missing_certs.iter_mut() {
            *h = rotate(*h);
            by_peer.entry(*h).or_default().0.push(*d);
        }
        for (d, h) in self.missing_batches.iter_mut() {
            *h = rotate(*h);
            by_peer.entry(*h).or_default().1.push(*d);
        }
        for (p, (c, b)) in by_peer {
            if !c.is_empty() {
                out.send(p, BullsharkMsg::FetchCerts(c));
            }
            if !b.is_empty() {
                out.send(p, BullsharkMsg::FetchBatches(b));
            }
        }
        self.try_propose(now, out);
    }

    pub(super) fn alarm(
        &mut self,
        out: &mut Outbox<BullsharkMsg>,
        kind: AlarmKind,
        suspect: Option<NodeId>,
        detail: impl Into<String>,
    ) {
        self.alarms += 1;
        out.alarm(kind, suspect, detail);
    }
}
