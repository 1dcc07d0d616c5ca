//! Evidence and the epoch boundary: the equivocation watch, each member's account of the epoch
//! committed as an ordinary request, its checking, and the switch to the next committee chosen
//! by EigenTrust over the committed evidence.

use std::collections::BTreeSet;

use crate::pbft::{batch_digest, commit_statement, prepare_statement, PbftMsg, Submit};
use crate::sim::crypto::Digest32;
use crate::sim::protocol::{Outbox, Protocol};
use crate::sim::wire::encode;

use super::node::{TpbftNode, INNER_TIMER};
use super::trust::{committee, eigentrust, local_trust, pre_trust, to_ppb};
use super::{
    epoch_context, EquivocationProof, Evidence, EvidenceEntry, Payload, TpbftMsg, TpbftOut,
};

impl TpbftNode {
    /// Keep only the parts of `ev` whose signatures verify against this epoch's batches. The
    /// commit signatures (up to `epoch_len × c` of them) are checked in one ed25519 batch
    /// verification, each alone only if the batch fails; the outcome depends only on the
    /// evidence, so every node keeps the same parts.
    pub(super) fn check_evidence(&self, ev: Evidence) -> Evidence {
        let mut entries: Vec<(EvidenceEntry, Vec<u8>)> = ev
            .entries
            .into_iter()
            .filter_map(|en| {
                let (view, digest) = *self.batches.get(&en.seq)?;
                if view != en.view || digest != en.digest || en.seq > self.cfg.epoch_len {
                    return None;
                }
                let st = commit_statement(view, en.seq, &digest);
                // The first signature of each member counts.
                let mut seen = BTreeSet::new();
                let sigs: Vec<(u32, [u8; 64])> = en
                    .sigs
                    .into_iter()
                    .filter(|(id, _)| seen.insert(*id))
                    .collect();
                Some((EvidenceEntry { sigs, ..en }, st))
            })
            .collect();
        let items: Vec<(u32, &[u8], &[u8; 64])> = entries
            .iter()
            .flat_map(|(en, st)| {
                en.sigs
                    .iter()
                    .map(move |(id, sig)| (*id, st.as_slice(), sig))
            })
            .collect();
        if !self.scoped.verify_all(&items) {
            for (en, st) in &mut entries {
                en.sigs.retain(|(id, sig)| self.scoped.verify(*id, st, sig));
            }
        }
        let entries = entries.into_iter().map(|(en, _)| en).collect();
        let proofs = ev
            .proofs
            .into_iter()
            .filter(|p| {
                p.a.0 != p.b.0
                    && self.scoped.verify(
                        p.signer,
                        &prepare_statement(p.view, p.seq, &p.a.0),
                        &p.a.1,
                    )
                    && self.scoped.verify(
                        p.signer,
                        &prepare_statement(p.view, p.seq, &p.b.0),
                        &p.b.1,
                    )
            })
            .collect();
        Evidence {
            epoch: ev.epoch,
            entries,
            proofs,
        }
    }

    pub(super) fn maybe_submit_evidence(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        if self.evidence_sent || self.applied < self.cfg.epoch_len || self.inner.is_none() {
            return;
        }
        let Some(replica) = self.inner.as_ref() else {
            return;
        };
        let entries = (1..=self.cfg.epoch_len)
            .filter_map(|seq| replica.ledger_entry(seq))
            .map(|e| EvidenceEntry {
                seq: e.seq,
                view: e.view,
                digest: replica
                    .ledger_digest(e.seq)
                    .unwrap_or_else(|| batch_digest(&e.batch)),
                sigs: e.cert.sigs.clone(),
            })
            .collect();
        let ev = Evidence {
            epoch: self.epoch,
            entries,
            proofs: self.proofs.values().cloned().collect(),
        };
        self.evidence_sent = true;
        let payload = encode(&Payload::Evidence(ev));
        let id = self.next_local_id();
        self.run_inner(now, out, |r, o| r.on_input(now, Submit { id, payload }, o));
    }

    pub(super) fn end_epoch(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        let n = self.cfg.n as usize;
        for ev in self.evidence.values() {
            for p in &ev.proofs {
                if let Some(g) = self.committee.get(p.signer as usize) {
                    self.faulty.insert(*g);
                }
            }
        }
        let mut s = vec![vec![0.0f64; n]; n];
        for (i, ev) in &self.evidence {
            if self.faulty.contains(i) {
                continue;
            }
            for en in &ev.entries {
                for (l, _) in &en.sigs {
                    if let Some(j) = self.committee.get(*l as usize) {
                        if j != i && !self.faulty.contains(j) {
                            s[*i as usize][*j as usize] += 1.0;
                        }
                    }
                }
            }
        }
        let p = pre_trust(n, &self.faulty);
        let c = local_trust(&s, &p);
        let (t, _) = eigentrust(&c, &p, self.cfg.alpha);
        let next = committee(&t, self.cfg.c as usize, &self.faulty, &self.committee);
        self.trust = t;
        // Start the next epoch.
        for id in [1, 2, 3] {
            out.cancel_timer(INNER_TIMER + id);
        }
        self.epoch += 1;
        self.committee = next;
        self.scoped = self.keys.scoped(&self.committee, epoch_context(self.epoch));
        self.batches.clear();
        self.applied = 0;
        self.evidence.clear();
        self.evidence_sent = false;
        self.seen.clear();
        self.proofs.clear();
        self.submitted.clear();
        self.inner = self.make_inner();
        self.outputs.push(TpbftOut::Epoch {
            epoch: self.epoch,
            committee: self.committee.clone(),
            trust_ppb: to_ppb(&self.trust),
            faulty: self.faulty.iter().copied().collect(),
        });
        if self.inner.is_some() {
            self.run_inner(now, out, |r, o| r.on_start(now, o));
        }
        // Replay what arrived early, resend own transactions to the new committee.
        let early = std::mem::take(&mut self.future_msgs);
        for (from, m) in early {
            self.on_message(now, from, &m, out);
        }
        let ids: Vec<u64> = self.mine.keys().copied().collect();
        for id in ids {
            self.send_tx(now, id, out);
        }
        self.drain_pending(now, out);
        self.wake(now, out);
    }

    /// Record prepare statements and turn two valid conflicting ones into a proof.
    pub(super) fn watch(&mut self, msg: &PbftMsg) {
        let (view, seq, digest, signer, sig) = match msg {
            PbftMsg::Prepare {
                view,
                seq,
                digest,
                signer,
                sig,
            } => (*view, *seq, *digest, *signer, *sig),
            PbftMsg::PrePrepare {
                view,
                seq,
                batch,
                sig,
            } => (
                *view,
                *seq,
                self.inner
                    .as_ref()
                    .and_then(|r| r.accepted_digest(*view, *seq, batch))
                    .unwrap_or_else(|| batch_digest(batch)),
                self.cfg.inner.primary(*view),
                *sig,
            ),
            _ => return,
        };
        let key = (view, seq, signer);
        if self.proofs.contains_key(&key) {
            return;
        }
        let Some((d0, s0)) = self.seen.get(&key).copied() else {
            if self.seen.len() < 1 << 16 {
                self.seen.insert(key, (digest, sig));
            }
            return;
        };
        if d0 == digest {
            return;
        }
        let ok = |d: &Digest32, s: &[u8; 64]| {
            self.scoped
                .verify(signer, &prepare_statement(view, seq, d), s)
        };
        match (ok(&d0, &s0), ok(&digest, &sig)) {
            (true, true) => {
                self.proofs.insert(
                    key,
                    EquivocationProof {
                        signer,
                        view,
                        seq,
                        a: (d0, s0),
                        b: (digest, sig),
                    },
                );
            }
            (false, true) => {
                self.seen.insert(key, (digest, sig));
            }
            _ => {}
        }
    }
}
