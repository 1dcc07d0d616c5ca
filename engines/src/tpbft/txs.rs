//! Transactions: an origin signs its own and routes it to one member (the next on every retry);
//! a member checks it and submits it to its replica; every node re-checks the origin signatures
//! of a batch when it applies it.

use std::sync::Arc;

use crate::pbft::Submit;
use crate::sim::protocol::{AlarmKind, NodeId, Outbox, Protocol};
use crate::sim::wire::encode;

use super::node::{Own, TpbftNode};
use super::{tx_statement, tx_statement_of, Payload, TpbftMsg, Tx, TxSubmit};
use crate::sim::crypto::{hash_parts, Digest32};

impl TpbftNode {
    /// Whether each payload is a transaction correctly signed by its origin: one batch
    /// verification for the batch, each one alone if the batch fails (the answer depends only
    /// on the batch, so every node decides alike at the same log position). A valid one comes
    /// with its payload digest.
    pub(super) fn origin_signatures(&self, ps: &[Option<Payload>]) -> Vec<Option<Digest32>> {
        let txs: Vec<(usize, &Tx, Vec<u8>, Digest32)> = ps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Some(Payload::Tx(tx)) if !self.done.contains(&(tx.origin, tx.id)) => {
                    let d = hash_parts(&[&tx.payload]);
                    Some((i, tx, tx_statement_of(tx.origin, tx.id, &d), d))
                }
                _ => None,
            })
            .collect();
        let items: Vec<(NodeId, &[u8], &[u8; 64])> = txs
            .iter()
            .map(|(_, tx, st, _)| (tx.origin, st.as_slice(), &tx.sig))
            .collect();
        let mut valid = vec![None; ps.len()];
        let all = self.keys.verify_all(&items);
        for ((i, _, _, d), (id, st, sig)) in txs.iter().zip(&items) {
            if all || self.keys.verify(*id, st, sig) {
                valid[*i] = Some(*d);
            }
        }
        valid
    }

    /// The inner view: a member's own, else the view of the last batch applied this epoch.
    fn view_hint(&self) -> u64 {
        self.view()
            .or_else(|| self.batches.values().next_back().map(|(v, _)| *v))
            .unwrap_or(0)
    }

    /// Route own transaction `id` to its member for this attempt.
    pub(super) fn send_tx(&mut self, now: u64, id: u64, out: &mut Outbox<TpbftMsg>) {
        let Some(own) = self.mine.get_mut(&id) else {
            return;
        };
        own.sent_ms = now;
        let (tx, tries) = (Arc::clone(&own.tx), own.tries);
        // First to the committee's primary as this node knows it (a PBFT client sends to the
        // primary: no member-to-primary hop), then to the next member on every retry (a primary
        // that ignores it is bypassed, and the member's own retransmission reaches everyone).
        let c = self.committee.len().max(1) as u64;
        let slot = (u64::from(self.cfg.inner.primary(self.view_hint())) + u64::from(tries)) % c;
        let Some(to) = self.committee.get(slot as usize).copied() else {
            return;
        };
        if to == self.id() {
            self.submit(now, &tx, out);
        } else {
            out.send(to, TpbftMsg::Tx(tx));
        }
    }

    /// As a member: check an origin's transaction and submit it to the replica.
    pub(super) fn submit(&mut self, now: u64, tx: &Arc<Tx>, out: &mut Outbox<TpbftMsg>) {
        let key = (tx.origin, tx.id);
        if self.inner.is_none() || self.done.contains(&key) || self.submitted.contains(&key) {
            return;
        }
        if !self.keys.verify(
            tx.origin,
            &tx_statement(tx.origin, tx.id, &tx.payload),
            &tx.sig,
        ) {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                "transaction with a bad origin signature",
            );
            return;
        }
        self.submitted.insert(key);
        let payload = encode(&Payload::Tx((**tx).clone()));
        let id = self.next_local_id();
        self.run_inner(now, out, |r, o| r.on_input(now, Submit { id, payload }, o));
    }

    /// Sign an own transaction as its origin and route it.
    pub(super) fn own_tx(&mut self, now: u64, input: TxSubmit, out: &mut Outbox<TpbftMsg>) {
        let me = self.id();
        if self.mine.contains_key(&input.id) || self.done.contains(&(me, input.id)) {
            return;
        }
        let sig = self
            .signer
            .sign(&tx_statement(me, input.id, &input.payload));
        let tx = Arc::new(Tx {
            origin: me,
            id: input.id,
            payload: Arc::from(input.payload),
            sig,
        });
        self.mine.insert(
            input.id,
            Own {
                tx,
                tries: 0,
                sent_ms: now,
            },
        );
        self.send_tx(now, input.id, out);
        self.wake(now, out);
    }
}
