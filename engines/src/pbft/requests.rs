//! Client requests: checking their signatures (one batch verification for a pre-prepare's
//! unverified requests), admitting them, and sending own requests to the primary (to everyone
//! when retransmitting or during a view change).

use std::sync::Arc;

use crate::sim::protocol::{AlarmKind, NodeId, Outbox};

use super::replica::Replica;
use super::{request_statement, PbftMsg, Request};

impl Replica {
    pub(super) fn valid_request(&self, r: &Request) -> bool {
        self.keys.verify(
            r.client,
            &request_statement(r.client, r.id, &r.payload),
            &r.sig,
        )
    }

    /// Every request of `batch` correctly signed by its client (one batch verification).
    pub(super) fn valid_batch<'a>(&self, batch: impl IntoIterator<Item = &'a Request>) -> bool {
        let rs: Vec<&Request> = batch.into_iter().collect();
        let sts: Vec<Vec<u8>> = rs
            .iter()
            .map(|r| request_statement(r.client, r.id, &r.payload))
            .collect();
        let items: Vec<(NodeId, &[u8], &[u8; 64])> = rs
            .iter()
            .zip(&sts)
            .map(|(r, st)| (r.client, st.as_slice(), &r.sig))
            .collect();
        self.keys.verify_all(&items)
    }

    /// Requests already verified here (the same bytes sit in `pending`) are not verified again
    /// when they come back inside a pre-prepare; the others are verified in one batch.
    pub(super) fn known_or_valid(&self, batch: &[Request]) -> bool {
        self.valid_batch(batch.iter().filter(|r| {
            !self
                .pending
                .get(&(r.client, r.id))
                .is_some_and(|p| p.sig == r.sig && p.payload == r.payload)
        }))
    }

    pub(super) fn on_request(&mut self, now: u64, r: &Arc<Request>, out: &mut Outbox<PbftMsg>) {
        let key = (r.client, r.id);
        if let Some(seq) = self.done.get(&key).copied() {
            // A client retransmits until it has f + 1 replies: answer again.
            self.send_reply(r.client, r.id, seq, out);
            return;
        }
        if self.pending.contains_key(&key) {
            return;
        }
        if !self.valid_request(r) {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                "request with a bad client signature",
            );
            return;
        }
        self.admit(now, Arc::clone(r), out);
    }

    /// A verified (or own) request joins `pending`; the primary may propose it.
    pub(super) fn admit(&mut self, now: u64, r: Arc<Request>, out: &mut Outbox<PbftMsg>) {
        self.pending.insert((r.client, r.id), r);
        self.wake(now, out);
        self.arm_view_timer_if_idle(now, out);
        self.propose(now, out, false);
    }

    /// Send an own request: to the primary (the backups see it in its pre-prepare), to everyone
    /// during a view change or when retransmitting (a primary that ignores it is then noticed
    /// by every backup's view timer).
    pub(super) fn send_request(
        &mut self,
        now: u64,
        r: Arc<Request>,
        broadcast: bool,
        out: &mut Outbox<PbftMsg>,
    ) {
        self.mine_sent.insert(r.id, now);
        let primary = self.cfg.primary(self.view);
        if !self.done.contains_key(&(r.client, r.id))
            && !self.pending.contains_key(&(r.client, r.id))
            && (primary == self.id() || broadcast || self.in_vc)
        {
            self.admit(now, Arc::clone(&r), out);
        }
        if broadcast || self.in_vc {
            out.broadcast(PbftMsg::Request(r));
        } else if primary != self.id() {
            out.send(primary, PbftMsg::Request(r));
        }
    }

    pub(super) fn arm_view_timer_if_idle(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        if self.pending.len() == 1 {
            self.arm_view_timer(now, out);
        }
    }
}
