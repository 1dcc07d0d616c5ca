//! Dissemination and catch-up: forwarding executed batches to non-members, certified batches
//! from peers, pulls, and the retry / anti-entropy tick.
//!
//! A node learns committed batches three ways: from its own committee replica (members), from
//! the members that forward each batch (non-members), and by pulling. Forwards are best effort
//! (a lost frame, a peer that restarts, a member that falls behind while the rest of its committee
//! ends the epoch and stops answering that epoch's messages), so every node keeps pulling:
//! * while it has work (own transactions, out-of-order batches, early messages of a later epoch)
//!   a non-member pulls on every tick, and a member does when its position did not move since the
//!   last tick;
//! * when idle, the tick never stops: it slows to a heartbeat (`HEARTBEAT`× the retry period)
//!   that pulls from one node in turn. A node that missed the last batches of a run, after which
//!   nothing more is sent, therefore still catches up.
//!
//! A pull is answered from the archive of applied batches (any node); an inner `Fetch` of an epoch
//! this node has left is answered the same way (it comes from a member left behind).

use std::sync::Arc;

use crate::pbft::{batch_digest, commit_statement, LedgerEntry};
use crate::sim::protocol::{AlarmKind, NodeId, Outbox};

use super::node::{TpbftNode, BUFFER_CAP, PULL_BATCH, RETRY};
use super::TpbftMsg;

/// Idle tick period, in retry periods.
const HEARTBEAT: u64 = 10;

impl TpbftNode {
    /// Work arrived: tick at the retry period (again, if the tick had slowed to a heartbeat).
    pub(super) fn wake(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        self.idle = 0;
        if !self.ticking || self.slow {
            self.ticking = true;
            self.slow = false;
            out.set_timer(RETRY, now + self.cfg.retry_ms);
        }
    }

    /// Send an executed batch to the non-members this member serves: one member per
    /// non-member and batch, rotating with the sequence number (`(k + seq) mod c` for the
    /// `k`-th non-member). The certificate is verified on arrival, so one forwarder is safe; a
    /// member that withholds its share leaves gaps that the next batch (from another member)
    /// reveals, and the non-member pulls them (`catchup.rs`).
    pub(super) fn forward(&self, epoch: u64, entry: &LedgerEntry, out: &mut Outbox<TpbftMsg>) {
        let Some(local) = self.local() else {
            return;
        };
        let c = u64::from(self.cfg.c.max(1));
        let msg = Arc::new(TpbftMsg::Committed(Arc::new(vec![(epoch, entry.clone())])));
        let mut k = 0u64;
        for id in 0..self.cfg.n {
            if self.committee.contains(&id) {
                continue;
            }
            if (k + entry.seq) % c == u64::from(local) {
                out.send_shared(id, Arc::clone(&msg));
            }
            k += 1;
        }
    }

    pub(super) fn on_committed(
        &mut self,
        now: u64,
        es: &[(u64, LedgerEntry)],
        out: &mut Outbox<TpbftMsg>,
    ) {
        for (epoch, e) in es {
            if (*epoch, e.seq) <= (self.epoch, self.applied) {
                continue;
            }
            if self.pending_batches.len() < BUFFER_CAP {
                self.pending_batches.insert((*epoch, e.seq), e.clone());
            }
        }
        self.drain_pending(now, out);
        if !self.pending_batches.is_empty() {
            self.wake(now, out);
        }
    }

    /// Apply buffered certified batches that are next in line (non-members and lagging nodes).
    pub(super) fn drain_pending(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        loop {
            // Batches of past positions are stale.
            let cur = (self.epoch, self.applied);
            self.pending_batches = self.pending_batches.split_off(&(cur.0, cur.1 + 1));
            let Some(e) = self.pending_batches.get(&(cur.0, cur.1 + 1)).cloned() else {
                return;
            };
            self.pending_batches.remove(&(cur.0, cur.1 + 1));
            let digest = batch_digest(&e.batch);
            let st = commit_statement(e.view, e.seq, &digest);
            if e.cert.statement != st || e.cert.verify(&self.scoped, self.cfg.quorum()).is_err() {
                out.alarm(
                    AlarmKind::BadSignature,
                    None,
                    "forwarded batch without a valid commit certificate",
                );
                continue;
            }
            self.apply(now, cur.0, e, digest, out);
        }
    }

    /// Answer with the applied batches from `(epoch, seq)` on (across epoch boundaries).
    pub(super) fn on_pull(&self, from: NodeId, epoch: u64, seq: u64, out: &mut Outbox<TpbftMsg>) {
        if from == self.id() {
            return;
        }
        let es: Vec<(u64, LedgerEntry)> = self
            .archive
            .range((epoch, seq)..)
            .take(PULL_BATCH)
            .map(|((e, _), en)| (*e, en.clone()))
            .collect();
        if !es.is_empty() {
            out.send(from, TpbftMsg::Committed(Arc::new(es)));
        }
    }

    /// Ask the next node in turn for the batches after this node's position.
    fn pull_next(&mut self, out: &mut Outbox<TpbftMsg>) {
        self.pull_turn = (self.pull_turn + 1) % self.cfg.n;
        if self.pull_turn == self.id() {
            self.pull_turn = (self.pull_turn + 1) % self.cfg.n;
        }
        let to = self.pull_turn;
        if to != self.id() {
            out.send(
                to,
                TpbftMsg::Pull {
                    epoch: self.epoch,
                    seq: self.applied + 1,
                },
            );
        }
    }

    pub(super) fn tick(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        let pos = (self.epoch, self.applied);
        let stalled = pos == self.last_pos;
        self.last_pos = pos;
        let busy = !self.mine.is_empty()
            || !self.pending_batches.is_empty()
            || !self.future_msgs.is_empty();
        if busy {
            self.idle = 0;
        } else {
            self.idle += 1;
        }
        if self.idle > self.cfg.idle_rounds {
            // Quiet: a slow heartbeat keeps pulling, so a node that missed the last batches
            // (and hears nothing more) still catches up.
            self.slow = true;
            self.pull_next(out);
            out.set_timer(RETRY, now + self.cfg.retry_ms * HEARTBEAT);
            return;
        }
        // Re-send (to the next member) only what waited a whole retry period since it was
        // last sent, backing off per try: re-sending everything outstanding on every tick put
        // each transaction in the log again whenever commit latency exceeded the period, which
        // raised the latency further (the retransmission storm of T-PBFT(16, c=7)).
        let due: Vec<u64> = self
            .mine
            .iter()
            .filter(|(_, o)| now >= o.sent_ms + self.cfg.retry_ms * (1 << o.tries.min(3)))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(e) = self.mine.get_mut(&id) {
                e.tries += 1;
            }
            self.send_tx(now, id, out);
        }
        let lagging = !self.pending_batches.is_empty() || !self.future_msgs.is_empty();
        let member_stuck = self.inner.is_some() && stalled && !self.mine.is_empty();
        if (self.inner.is_none() && busy) || lagging || member_stuck {
            self.pull_next(out);
        }
        out.set_timer(RETRY, now + self.cfg.retry_ms);
    }
}
