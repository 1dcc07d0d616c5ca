//! The normal case: batching, pre-prepare / prepare / commit, and their retransmission.

use std::sync::Arc;

use crate::sim::crypto::Digest32;
use crate::sim::protocol::{AlarmKind, NodeId, Outbox};

use super::replica::{certificate, Replica, BATCH_TIMER};
use super::{
    batch_digest, commit_statement, prepare_statement, Batch, LedgerEntry, PbftMsg, PreparedProof,
    Request,
};

impl Replica {
    /// Requests known here and not yet in an accepted pre-prepare of this view.
    fn unproposed(&self) -> Vec<Arc<Request>> {
        let mut inflight = std::collections::BTreeSet::new();
        for ((v, seq), (_, b)) in &self.accepted {
            if *v == self.view && *seq > self.executed {
                inflight.extend(b.iter().map(|r| (r.client, r.id)));
            }
        }
        self.pending
            .iter()
            .filter(|(k, _)| !inflight.contains(*k))
            .map(|(_, r)| Arc::clone(r))
            .collect()
    }

    /// The primary's batching: a full batch leaves at once, a partial one when the batch timer
    /// fires (`flush`).
    pub(super) fn propose(&mut self, now: u64, out: &mut Outbox<PbftMsg>, flush: bool) {
        if !self.is_primary() || self.in_vc {
            return;
        }
        let mut queue = self.unproposed();
        while !queue.is_empty() && self.in_window(self.next_seq) {
            if queue.len() < self.cfg.batch_max && !flush {
                // Armed once: re-arming on every arrival would hold a partial batch for as
                // long as requests keep coming faster than the delay.
                if !self.batch_armed {
                    self.batch_armed = true;
                    out.set_timer(BATCH_TIMER, now + self.cfg.batch_delay_ms);
                }
                return;
            }
            let rest = queue.split_off(queue.len().min(self.cfg.batch_max));
            let batch: Batch = Arc::new(queue.iter().map(|r| (**r).clone()).collect());
            queue = rest;
            let (view, seq) = (self.view, self.next_seq);
            let digest = batch_digest(&batch);
            self.next_seq += 1;
            self.persist_next_seq(out);
            let sig = self.signer.sign(&prepare_statement(view, seq, &digest));
            self.persist_vote(view, seq, &digest, out);
            out.broadcast(PbftMsg::PrePrepare {
                view,
                seq,
                batch,
                sig,
            });
        }
    }

    pub(super) fn on_pre_prepare(
        &mut self,
        now: u64,
        view: u64,
        seq: u64,
        batch: &Batch,
        sig: &[u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if view != self.view || self.in_vc || !self.in_window(seq) {
            return;
        }
        let digest = batch_digest(batch);
        if let Some((d, _)) = self.accepted.get(&(view, seq)) {
            if *d != digest {
                let primary = self.cfg.primary(view);
                if self
                    .keys
                    .verify(primary, &prepare_statement(view, seq, &digest), sig)
                {
                    out.alarm(
                        AlarmKind::Equivocation,
                        Some(primary),
                        format!("two signed pre-prepares for view {view} seq {seq}"),
                    );
                }
            }
            return;
        }
        let primary = self.cfg.primary(view);
        if !self
            .keys
            .verify(primary, &prepare_statement(view, seq, &digest), sig)
        {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                "pre-prepare with a bad signature",
            );
            return;
        }
        if !self.known_or_valid(batch) {
            out.alarm(
                AlarmKind::Garbage,
                Some(primary),
                format!("signed pre-prepare with a forged request (view {view} seq {seq})"),
            );
            return;
        }
        self.accept_pre_prepare(now, view, seq, Arc::clone(batch), digest, *sig, out);
    }

    /// Record a verified pre-prepare (from the normal case or a new view) and vote for it;
    /// `digest` is `batch_digest(&batch)`, computed once by the caller.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_pre_prepare(
        &mut self,
        now: u64,
        view: u64,
        seq: u64,
        batch: Batch,
        digest: Digest32,
        primary_sig: [u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if let Some(d) = self.voted.get(&(view, seq)) {
            if *d != digest {
                return; // never vote twice for one (view, seq)
            }
        }
        for r in batch.iter() {
            let key = (r.client, r.id);
            if !self.done.contains_key(&key) {
                self.pending
                    .entry(key)
                    .or_insert_with(|| Arc::new(r.clone()));
            }
        }
        self.accepted.insert((view, seq), (digest, batch));
        let primary = self.cfg.primary(view);
        self.prepares
            .entry((view, seq))
            .or_default()
            .entry(digest)
            .or_default()
            .insert(primary, primary_sig);
        let me = self.id();
        if primary != me && !self.voted.contains_key(&(view, seq)) {
            self.persist_vote(view, seq, &digest, out);
            let sig = self.signer.sign(&prepare_statement(view, seq, &digest));
            out.broadcast(PbftMsg::Prepare {
                view,
                seq,
                digest,
                signer: me,
                sig,
            });
        }
        self.wake(now, out);
        self.check_prepared(now, view, seq, out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_prepare(
        &mut self,
        now: u64,
        view: u64,
        seq: u64,
        digest: &Digest32,
        signer: NodeId,
        sig: &[u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if view != self.view || !self.in_window(seq) || signer == self.cfg.primary(view) {
            return;
        }
        let votes = self.prepares.entry((view, seq)).or_default();
        if votes.get(digest).and_then(|v| v.get(&signer)) == Some(sig) {
            return;
        }
        if !self
            .keys
            .verify(signer, &prepare_statement(view, seq, digest), sig)
        {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                "prepare with a bad signature",
            );
            return;
        }
        if votes
            .iter()
            .any(|(d, v)| d != digest && v.contains_key(&signer))
        {
            out.alarm(
                AlarmKind::Equivocation,
                Some(signer),
                format!("two signed prepares for view {view} seq {seq}"),
            );
        }
        votes.entry(*digest).or_default().insert(signer, *sig);
        self.check_prepared(now, view, seq, out);
    }

    fn check_prepared(&mut self, now: u64, view: u64, seq: u64, out: &mut Outbox<PbftMsg>) {
        let Some((digest, batch)) = self.accepted.get(&(view, seq)).cloned() else {
            return;
        };
        if self.commit_voted.contains_key(&(view, seq)) {
            return;
        }
        let Some(votes) = self.prepares.get(&(view, seq)).and_then(|v| v.get(&digest)) else {
            return;
        };
        if votes.len() < self.cfg.quorum() {
            return;
        }
        let cert = Arc::new(certificate(votes, prepare_statement(view, seq, &digest)));
        let proof = PreparedProof {
            view,
            seq,
            batch,
            cert,
        };
        self.persist_proof(&proof, out);
        self.proofs.insert(seq, proof);
        self.persist_commit_vote(view, seq, &digest, out);
        self.commit_voted.insert((view, seq), digest);
        let me = self.id();
        let sig = self.signer.sign(&commit_statement(view, seq, &digest));
        out.broadcast(PbftMsg::Commit {
            view,
            seq,
            digest,
            signer: me,
            sig,
        });
        self.check_committed(now, view, seq, out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_commit(
        &mut self,
        now: u64,
        view: u64,
        seq: u64,
        digest: &Digest32,
        signer: NodeId,
        sig: &[u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if view != self.view || !self.in_window(seq) {
            return;
        }
        let votes = self.commits.entry((view, seq)).or_default();
        if votes.get(digest).and_then(|v| v.get(&signer)) == Some(sig) {
            return;
        }
        if !self
            .keys
            .verify(signer, &commit_statement(view, seq, digest), sig)
        {
            out.alarm(AlarmKind::BadSignature, None, "commit with a bad signature");
            return;
        }
        votes.entry(*digest).or_default().insert(signer, *sig);
        self.check_committed(now, view, seq, out);
    }

    fn check_committed(&mut self, now: u64, view: u64, seq: u64, out: &mut Outbox<PbftMsg>) {
        if self.committed.contains_key(&seq) || seq <= self.executed {
            return;
        }
        let Some(digest) = self.commit_voted.get(&(view, seq)).copied() else {
            return; // committed-local needs prepared here first
        };
        let Some(votes) = self.commits.get(&(view, seq)).and_then(|v| v.get(&digest)) else {
            return;
        };
        if votes.len() < self.cfg.quorum() {
            return;
        }
        let Some((_, batch)) = self.accepted.get(&(view, seq)).cloned() else {
            return;
        };
        let cert = Arc::new(certificate(votes, commit_statement(view, seq, &digest)));
        self.committed_digest.insert(seq, digest);
        self.committed.insert(
            seq,
            LedgerEntry {
                view,
                seq,
                batch,
                cert,
            },
        );
        self.execute_ready(now, out);
    }

    /// Re-send this view's own pre-prepares / votes for unexecuted slots (lossy links).
    pub(super) fn retransmit_view(&self, out: &mut Outbox<PbftMsg>) {
        let me = self.id();
        let primary = self.is_primary();
        if primary {
            if let Some(nv) = &self.new_view {
                if nv.view == self.view && self.executed < self.next_seq.saturating_sub(1) {
                    out.broadcast(PbftMsg::NewView(Arc::clone(nv)));
                }
            }
        }
        for ((v, seq), (digest, batch)) in self.accepted.range((self.view, self.executed + 1)..) {
            if *v != self.view {
                break;
            }
            if primary {
                if let Some(sig) = self
                    .prepares
                    .get(&(*v, *seq))
                    .and_then(|p| p.get(digest))
                    .and_then(|p| p.get(&me))
                {
                    out.broadcast(PbftMsg::PrePrepare {
                        view: *v,
                        seq: *seq,
                        batch: Arc::clone(batch),
                        sig: *sig,
                    });
                }
            } else {
                let sig = self.signer.sign(&prepare_statement(*v, *seq, digest));
                out.broadcast(PbftMsg::Prepare {
                    view: *v,
                    seq: *seq,
                    digest: *digest,
                    signer: me,
                    sig,
                });
            }
            if let Some(d) = self.commit_voted.get(&(*v, *seq)) {
                let sig = self.signer.sign(&commit_statement(*v, *seq, d));
                out.broadcast(PbftMsg::Commit {
                    view: *v,
                    seq: *seq,
                    digest: *d,
                    signer: me,
                    sig,
                });
            }
        }
    }
}
