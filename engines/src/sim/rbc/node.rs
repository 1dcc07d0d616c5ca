//! # The honest node's `Protocol` implementation and its retransmission
//!
//! Retransmission covers only instances still pending, backs off per instance, and sends a
//! `Final` only to nodes not yet seen relaying it ("seen" by network sender: a spoofer can only suppress retransmissions to the
//! node it impersonates, a liveness matter the simulator's liveness checker would expose).

use std::sync::Arc;

use super::super::protocol::{NodeId, Outbox, Protocol, TimerId};
use super::honest::{HonestNode, RETRANSMIT};
use super::{send_statement, Broadcast, Delivery, RbcMsg, Value};

impl HonestNode {
    /// One retransmission round at `now`. Each pending instance backs off on its own: it is
    /// resent at the first round, then after 2, 4, … rounds, the gap capped at
    /// `retransmit_max_ms`. A relay goes to every node not seen relaying it in an instance's
    /// first round and, from its second round on, to half of them in turn (those with
    /// `me + to + round` even), so each such pair is served at least every second round: after
    /// GST a node missing a delivery gets it from each correct holder within
    /// `2 × retransmit_max_ms` plus a round and a delay (1.72 s with the defaults, inside the
    /// 2 s liveness deadline of the sweeps). Without backoff and turns, relays to nodes that never
    /// answer (silent Byzantine ones) were resent by everyone every round for the whole run:
    /// three quarters of a sweep's messages.
    pub(super) fn retransmit(&mut self, now: u64, out: &mut Outbox<RbcMsg>) -> bool {
        let me = self.signer.id();
        let others = self.cfg.n.saturating_sub(1) as usize;
        let (base, cap) = (
            self.cfg.retransmit_ms.max(1),
            self.cfg
                .retransmit_max_ms
                .max(self.cfg.retransmit_ms.max(1)),
        );
        let mut done = Vec::new();
        let mut due = false;
        for id in &self.pending {
            let Some(inst) = self.instances.get_mut(id) else {
                done.push(*id);
                continue;
            };
            if let Some(relay) = &inst.relay {
                inst.relayed_by.remove(me);
                if inst.relayed_by.len() >= others {
                    inst.relay = None; // everyone else delivered: drop the relay
                    done.push(*id);
                    continue;
                }
                if inst.retx_at > now {
                    continue;
                }
                let k = u64::from(inst.retx_round);
                let turn = |t: NodeId| k == 0 || (u64::from(me) + u64::from(t) + k) % 2 == 0;
                for to in (0..self.cfg.n)
                    .filter(|t| *t != me && !inst.relayed_by.contains(*t) && turn(*t))
                {
                    out.send_shared(to, Arc::clone(relay));
                }
            } else if inst.delivered.is_some() {
                done.push(*id); // delivered before a restart: others relay it
                continue;
            } else {
                if inst.retx_at > now {
                    continue;
                }
                for m in inst.own_send.iter().chain(inst.my_echo.iter()) {
                    for to in (0..self.cfg.n).filter(|t| *t != me) {
                        out.send_shared(to, Arc::clone(m));
                    }
                }
            }
            due = true;
            inst.retx_gap = if inst.retx_gap == 0 {
                base
            } else {
                (inst.retx_gap * 2).min(cap)
            };
            inst.retx_at = now + inst.retx_gap;
            inst.retx_round = inst.retx_round.saturating_add(1);
        }
        for id in done {
            self.pending.remove(&id);
        }
        due
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
        // Only ticks that resent something count as rounds: with backoff, most ticks resend
        // nothing, and counting them would end retransmission after a handful of resends.
        if self.retransmit(now, out) {
            self.rounds_left = self.rounds_left.saturating_sub(1);
        }
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
