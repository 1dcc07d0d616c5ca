//! # The honest node's `Protocol` implementation and its retransmission
//!
//! Retransmission covers only instances still pending and sends a `Final` only to nodes not yet
//! seen relaying it ("seen" by network sender: a spoofer can only suppress retransmissions to the
//! node it impersonates, a liveness matter the simulator's liveness checker would expose).

use std::sync::Arc;

use super::super::protocol::{NodeId, Outbox, Protocol, TimerId};
use super::honest::{HonestNode, RETRANSMIT};
use super::{send_statement, Broadcast, Delivery, RbcMsg, Value};

impl HonestNode {
    pub(super) fn retransmit(&mut self, out: &mut Outbox<RbcMsg>) {
        let me = self.signer.id();
        let others = self.cfg.n.saturating_sub(1) as usize;
        let mut done = Vec::new();
        for id in &self.pending {
            let Some(inst) = self.instances.get_mut(id) else {
                done.push(*id);
                continue;
            };
            if let Some(relay) = &inst.relay {
                inst.relayed_by.remove(&me);
                if inst.relayed_by.len() >= others {
                    inst.relay = None; // everyone else delivered: drop the relay
                    done.push(*id);
                    continue;
                }
                for to in (0..self.cfg.n).filter(|t| *t != me && !inst.relayed_by.contains(t)) {
                    out.send_shared(to, Arc::clone(relay));
                }
                continue;
            }
            if inst.delivered.is_some() {
                done.push(*id); // delivered before a restart: others relay it
                continue;
            }
            for m in inst.own_send.iter().chain(inst.my_echo.iter()) {
                for to in (0..self.cfg.n).filter(|t| *t != me) {
                    out.send_shared(to, Arc::clone(m));
                }
            }
        }
        for id in done {
            self.pending.remove(&id);
        }
    }
}

impl Protocol for HonestNode {
    type Msg = RbcMsg;
    type Input = Broadcast;
    type Output = Delivery;

    fn on_message(&mut self, now: u64, from: NodeId, msg: &RbcMsg, out: &mut Outbox<RbcMsg>) {
        match msg {
            RbcMsg::Send {
                origin,
                seq,
                value,
                sig,
            } => {
                if self.in_window(*origin, *seq, from, out) {
                    self.on_send(now, from, *origin, *seq, value, sig, out);
                }
            }
            RbcMsg::Echo {
                origin,
                seq,
                digest,
                signer,
                sig,
            } => {
                if self.in_window(*origin, *seq, from, out) {
                    self.on_echo(now, from, (*origin, *seq), *digest, *signer, sig, out);
                }
            }
            RbcMsg::Final {
                origin,
                seq,
                value,
                cert,
            } => {
                if self.keys.is_member(*origin) {
                    self.on_final(now, from, (*origin, *seq), value, cert, out);
                }
            }
        }
    }

    fn on_timer(&mut self, now: u64, _id: TimerId, out: &mut Outbox<RbcMsg>) {
        self.retransmit(out);
        self.rounds_left = self.rounds_left.saturating_sub(1);
        if self.rounds_left > 0 && !self.pending.is_empty() {
            out.set_timer(RETRANSMIT, now + self.cfg.retransmit_ms);
        } else {
            self.rounds_left = 0;
        }
    }

    fn on_input(&mut self, now: u64, input: Broadcast, out: &mut Outbox<RbcMsg>) {
        let origin = self.signer.id();
        let seq = self.next_seq;
        self.next_seq += 1;
        out.persist(
            super::recovery::SEQ_KEY.to_vec(),
            self.next_seq.to_le_bytes().to_vec(),
        );
        out.persist(super::recovery::send_key(seq), input.0.clone());
        let value: Value = Arc::from(input.0);
        let sig = self.signer.sign(&send_statement(origin, seq, &value));
        let msg = Arc::new(RbcMsg::Send {
            origin,
            seq,
            value,
            sig,
        });
        self.instances.entry((origin, seq)).or_default().own_send = Some(Arc::clone(&msg));
        self.pending.insert((origin, seq));
        for to in 0..self.cfg.n {
            out.send_shared(to, Arc::clone(&msg));
        }
        self.activity(now, out);
    }

    fn on_recover(&mut self, now: u64, out: &mut Outbox<RbcMsg>) {
        self.rounds_left = 0;
        self.activity(now, out);
    }

    fn drain_committed(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.committed)
    }
}
