//! Execution, client replies, checkpoints with garbage collection, and state transfer.

use std::sync::Arc;

use crate::sim::crypto::Digest32;
use crate::sim::protocol::{AlarmKind, NodeId, Outbox};

use super::replica::{certificate, Replica};
use super::{
    batch_digest, checkpoint_statement, commit_statement, next_state, reply_statement, Decided,
    LedgerEntry, PbftMsg, Stable,
};

/// Most ledger entries in one state-transfer answer.
const FETCH_MAX: u64 = 64;

impl Replica {
    /// Execute committed batches in sequence order.
    pub(super) fn execute_ready(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        let mut progressed = false;
        while let Some(entry) = self.committed.remove(&(self.executed + 1)) {
            self.execute(entry, out);
            progressed = true;
        }
        if progressed {
            self.vc_attempts = 0;
            self.arm_view_timer(now, out);
            self.propose(now, out, false);
        }
    }

    fn execute(&mut self, entry: LedgerEntry, out: &mut Outbox<PbftMsg>) {
        let seq = entry.seq;
        for (pos, r) in entry.batch.iter().enumerate() {
            let key = (r.client, r.id);
            if self.done.contains_key(&key) {
                continue; // a request in two batches executes once
            }
            self.done.insert(key, seq);
            self.pending.remove(&key);
            self.outputs.push(Decided {
                view: entry.view,
                seq,
                pos: pos as u32,
                batch: Arc::clone(&entry.batch),
                cert: Arc::clone(&entry.cert),
            });
            // The client is a replica: executing its own request is its answer (it holds the
            // commit certificate). Others answer it only when it retransmits the request (it
            // is behind), and it accepts on f + 1 matching replies (`on_request`).
            if r.client == self.id() && self.mine.remove(&r.id).is_some() {
                self.mine_sent.remove(&r.id);
                self.forget_request(r.id, out);
            }
        }
        let digest = self
            .committed_digest
            .remove(&seq)
            .unwrap_or_else(|| batch_digest(&entry.batch));
        self.state = next_state(&self.state, seq, &digest);
        self.digests.insert(seq, (digest, self.state));
        self.executed = seq;
        self.persist_entry(&entry, out);
        self.ledger.insert(seq, entry);
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            let me = self.id();
            let state = self.state;
            let sig = self.signer.sign(&checkpoint_statement(seq, &state));
            out.broadcast(PbftMsg::Checkpoint {
                seq,
                state,
                signer: me,
                sig,
            });
        }
    }

    pub(super) fn send_reply(&self, client: NodeId, id: u64, seq: u64, out: &mut Outbox<PbftMsg>) {
        let sig = self.signer.sign(&reply_statement(client, id, seq));
        out.send(
            client,
            PbftMsg::Reply {
                client,
                id,
                seq,
                signer: self.id(),
                sig,
            },
        );
    }

    pub(super) fn on_reply(
        &mut self,
        client: NodeId,
        id: u64,
        seq: u64,
        signer: NodeId,
        sig: &[u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if client != self.id() || !self.mine.contains_key(&id) {
            return;
        }
        if self.replies.add(id, seq, signer, sig).is_some() {
            self.mine.remove(&id);
            self.mine_sent.remove(&id);
            self.forget_request(id, out);
        }
    }

    pub(super) fn on_checkpoint(
        &mut self,
        now: u64,
        seq: u64,
        state: &Digest32,
        signer: NodeId,
        sig: &[u8; 64],
        out: &mut Outbox<PbftMsg>,
    ) {
        if seq <= self.stable.seq || !seq.is_multiple_of(self.cfg.checkpoint_interval) {
            return;
        }
        let votes = self.checkpoints.entry(seq).or_default();
        if votes.get(state).and_then(|v| v.get(&signer)) == Some(sig) {
            return;
        }
        if !self
            .keys
            .verify(signer, &checkpoint_statement(seq, state), sig)
        {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                "checkpoint with a bad signature",
            );
            return;
        }
        votes.entry(*state).or_default().insert(signer, *sig);
        if seq > self.executed {
            // Behind: ask this signer for what it executed (certificates are checked).
            out.send(
                signer,
                PbftMsg::Fetch {
                    from_seq: self.executed + 1,
                },
            );
        }
        self.try_stabilise(now, seq, out);
    }

    /// A checkpoint with `q` matching signatures that this replica has reached becomes stable.
    pub(super) fn try_stabilise(&mut self, now: u64, seq: u64, out: &mut Outbox<PbftMsg>) {
        if seq <= self.stable.seq || seq > self.executed {
            return;
        }
        let Some(mine) = self.ledger_state(seq) else {
            return;
        };
        let Some(votes) = self.checkpoints.get(&seq).and_then(|v| v.get(&mine)) else {
            return;
        };
        if votes.len() < self.cfg.quorum() {
            return;
        }
        let cert = Arc::new(certificate(votes, checkpoint_statement(seq, &mine)));
        self.adopt_stable(
            now,
            Stable {
                seq,
                state: mine,
                cert: Some(cert),
            },
            out,
        );
    }

    /// Move the low watermark to `stable` and garbage-collect the protocol log below it.
    pub(super) fn adopt_stable(&mut self, now: u64, stable: Stable, out: &mut Outbox<PbftMsg>) {
        if stable.seq <= self.stable.seq {
            return;
        }
        let s = stable.seq;
        self.persist_stable(&stable, out);
        self.stable = stable;
        self.accepted.retain(|(_, q), _| *q > s);
        self.prepares.retain(|(_, q), _| *q > s);
        self.commits.retain(|(_, q), _| *q > s);
        self.committed.retain(|q, _| *q > s);
        self.committed_digest.retain(|q, _| *q > s);
        self.checkpoints.retain(|q, _| *q > s);
        let dropped: Vec<(u64, u64)> = self
            .voted
            .range(..)
            .filter(|((_, q), _)| *q <= s)
            .map(|(k, _)| *k)
            .collect();
        for k in dropped {
            self.voted.remove(&k);
            self.commit_voted.remove(&k);
            self.forget_votes(k, out);
        }
        let proofs: Vec<u64> = self.proofs.range(..=s).map(|(q, _)| *q).collect();
        for q in proofs {
            self.proofs.remove(&q);
            self.forget_proof(q, out);
        }
        if self.next_seq <= s {
            self.next_seq = s + 1;
        }
        self.propose(now, out, false);
    }

    /// The state digest after `seq`, if this replica executed it.
    fn ledger_state(&self, seq: u64) -> Option<Digest32> {
        if seq == self.executed {
            return Some(self.state);
        }
        if self.stable.seq < seq && seq < self.executed {
            if let Some((_, state)) = self.digests.get(&seq) {
                return Some(*state);
            }
        }
        let mut state = if self.stable.seq < seq {
            self.stable.state
        } else {
            return None;
        };
        for q in self.stable.seq + 1..=seq {
            let e = self.ledger.get(&q)?;
            state = next_state(&state, q, &batch_digest(&e.batch));
        }
        Some(state)
    }

    pub(super) fn retransmit_checkpoint(&self, out: &mut Outbox<PbftMsg>) {
        let k = self.cfg.checkpoint_interval.max(1);
        let last = self.executed / k * k;
        if last == 0 {
            return;
        }
        if let Some(state) = self.ledger_state(last) {
            let sig = self.signer.sign(&checkpoint_statement(last, &state));
            out.broadcast(PbftMsg::Checkpoint {
                seq: last,
                state,
                signer: self.id(),
                sig,
            });
        }
    }

    /// Serve executed entries from `from_seq` on (rate-limited per peer).
    pub(super) fn serve(&mut self, now: u64, to: NodeId, from_seq: u64, out: &mut Outbox<PbftMsg>) {
        if from_seq > self.executed || to == self.id() {
            return;
        }
        if self
            .last_served
            .get(&to)
            .is_some_and(|t| now < t + self.cfg.retransmit_ms / 2)
        {
            return;
        }
        self.last_served.insert(to, now);
        let end = self.executed.min(from_seq + FETCH_MAX - 1);
        let es: Vec<LedgerEntry> = self
            .ledger
            .range(from_seq..=end)
            .map(|(_, e)| e.clone())
            .collect();
        if !es.is_empty() {
            out.send(to, PbftMsg::Entries(Arc::new(es)));
        }
    }

    pub(super) fn on_fetch(
        &mut self,
        now: u64,
        from: NodeId,
        from_seq: u64,
        out: &mut Outbox<PbftMsg>,
    ) {
        self.serve(now, from, from_seq, out);
    }

    /// State transfer: execute entries whose commit certificate verifies.
    pub(super) fn on_entries(&mut self, now: u64, es: &[LedgerEntry], out: &mut Outbox<PbftMsg>) {
        for e in es {
            if e.seq <= self.executed || self.committed.contains_key(&e.seq) {
                continue;
            }
            let digest = batch_digest(&e.batch);
            let stmt = commit_statement(e.view, e.seq, &digest);
            if e.cert.statement != stmt || e.cert.verify(&self.keys, self.cfg.quorum()).is_err() {
                out.alarm(
                    AlarmKind::Garbage,
                    None,
                    "state transfer entry without a valid commit certificate",
                );
                return;
            }
            if !self.valid_batch(e.batch.iter()) {
                return;
            }
            self.committed_digest.insert(e.seq, digest);
            self.committed.insert(e.seq, e.clone());
        }
        self.execute_ready(now, out);
        let seqs: Vec<u64> = self.checkpoints.keys().copied().collect();
        for s in seqs {
            self.try_stabilise(now, s, out);
        }
    }
}
