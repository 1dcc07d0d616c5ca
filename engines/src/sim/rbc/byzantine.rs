//! # Byzantine node implementations for the signed echo broadcast
//!
//! Each [`Behaviour`] is an alternate implementation of the same [`Protocol`] (the simulator's fault
//! model): equivocate, double-vote (echo conflicting values, optionally to chosen recipients —
//! the colluding attack that breaks f+1), vote for garbage (invalid signatures and certificates),
//! forge the sender (spoofed network sender, wrong key: must fail signature checks), and spam (validly signed echoes far outside the window — the
//! broadcast analogue of view-change spam). Silence, withholding, replay, spoofing and delay are
//! protocol-independent and live in [`super::super::adversary`]. Byzantine nodes never commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::crypto::{Certificate, Digest32, NodeSigner};
use super::super::protocol::{NodeId, Outbox, Protocol, TimerId};
use super::{
    echo_statement, send_statement, value_digest, Broadcast, Delivery, InstanceId, RbcMsg,
};

/// What the Byzantine node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// On input: sign `a` for `to_a` and `b` for everyone else (and echo each side's value).
    Equivocate {
        a: Vec<u8>,
        b: Vec<u8>,
        to_a: Vec<NodeId>,
    },
    /// Echo values it was never sent. With an empty plan: echo every value seen, to everyone.
    /// Otherwise, on the first `Send` of an instance, echo each planned value to its recipients.
    DoubleVote {
        plan: Vec<(Vec<u8>, Vec<NodeId>)>,
    },
    Garbage,
    ForgeSender {
        victim: NodeId,
    },
    Spam {
        per_message: u32,
    },
}

/// A Byzantine node.
#[derive(Debug)]
pub struct ByzantineNode {
    behaviour: Behaviour,
    n: u32,
    signer: NodeSigner,
    next_seq: u64,
    seen: BTreeSet<(InstanceId, Digest32)>,
    instances: BTreeSet<InstanceId>,
}

impl ByzantineNode {
    pub fn new(behaviour: Behaviour, n: u32, signer: NodeSigner) -> Self {
        Self {
            behaviour,
            n,
            signer,
            next_seq: 0,
            seen: BTreeSet::new(),
            instances: BTreeSet::new(),
        }
    }

    fn echo(&self, id: InstanceId, value: &[u8]) -> RbcMsg {
        let digest = value_digest(value);
        let sig = self.signer.sign(&echo_statement(id.0, id.1, &digest));
        RbcMsg::Echo {
            origin: id.0,
            seq: id.1,
            digest,
            signer: self.signer.id(),
            sig,
        }
    }

    fn on_first_send(&mut self, id: InstanceId, value: &[u8], out: &mut Outbox<RbcMsg>) {
        let first_of_instance = self.instances.insert(id);
        let first_of_value = self.seen.insert((id, value_digest(value)));
        match &self.behaviour {
            Behaviour::DoubleVote { plan } if plan.is_empty() && first_of_value => {
                out.broadcast(self.echo(id, value));
            }
            Behaviour::DoubleVote { plan } if plan.is_empty() => {}
            Behaviour::DoubleVote { plan } if first_of_instance => {
                for (v, to) in plan {
                    let echo = self.echo(id, v);
                    for t in to {
                        out.send(*t, echo.clone());
                    }
                }
            }
            Behaviour::Garbage if first_of_instance => {
                let digest = [0xA5; 32];
                out.broadcast(RbcMsg::Echo {
                    origin: id.0,
                    seq: id.1,
                    digest,
                    signer: self.signer.id(),
                    sig: [7; 64],
                });
                let cert = Certificate {
                    statement: echo_statement(id.0, id.1, &value_digest(b"garbage")),
                    sigs: (0..self.n).map(|i| (i, [9; 64])).collect(),
                };
                out.broadcast(RbcMsg::Final {
                    origin: id.0,
                    seq: id.1,
                    value: Arc::from(b"garbage".as_slice()),
                    cert: Arc::new(cert),
                });
            }
            Behaviour::Spam { per_message } if first_of_instance => {
                for k in 0..u64::from(*per_message) {
                    out.broadcast(self.echo((id.0, (1 << 40) + k), value));
                }
            }
            _ => {}
        }
    }
}

impl Protocol for ByzantineNode {
    type Msg = RbcMsg;
    type Input = Broadcast;
    type Output = Delivery;

    fn on_message(&mut self, _now: u64, _from: NodeId, msg: &RbcMsg, out: &mut Outbox<RbcMsg>) {
        if let (
            Behaviour::DoubleVote { plan },
            RbcMsg::Echo {
                origin,
                seq,
                digest,
                ..
            },
        ) = (&self.behaviour, msg)
        {
            let id = (*origin, *seq);
            if plan.is_empty() && self.seen.insert((id, *digest)) {
                // Echo a digest it never saw a value for: signatures cover digests only.
                let sig = self.signer.sign(&echo_statement(id.0, id.1, digest));
                out.broadcast(RbcMsg::Echo {
                    origin: id.0,
                    seq: id.1,
                    digest: *digest,
                    signer: self.signer.id(),
                    sig,
                });
            }
            return;
        }
        if let RbcMsg::Send {
            origin, seq, value, ..
        } = msg
        {
            let value = Arc::clone(value);
            self.on_first_send((*origin, *seq), &value, out);
        }
    }

    fn on_timer(&mut self, _now: u64, _id: TimerId, _out: &mut Outbox<RbcMsg>) {}

    fn on_input(&mut self, _now: u64, input: Broadcast, out: &mut Outbox<RbcMsg>) {
        let me = self.signer.id();
        let seq = self.next_seq;
        self.next_seq += 1;
        match &self.behaviour {
            Behaviour::Equivocate { a, b, to_a } => {
                for to in 0..self.n {
                    let v = if to_a.contains(&to) { a } else { b };
                    let sig = self.signer.sign(&send_statement(me, seq, v));
                    out.send(
                        to,
                        RbcMsg::Send {
                            origin: me,
                            seq,
                            value: Arc::from(v.as_slice()),
                            sig,
                        },
                    );
                    out.send(to, self.echo((me, seq), v));
                }
            }
            Behaviour::ForgeSender { victim } => {
                let sig = self.signer.sign(&send_statement(*victim, seq, &input.0));
                for to in 0..self.n {
                    let msg = RbcMsg::Send {
                        origin: *victim,
                        seq,
                        value: Arc::from(input.0.as_slice()),
                        sig,
                    };
                    out.send_spoofed(*victim, to, msg);
                }
            }
            Behaviour::Garbage => {
                out.broadcast(RbcMsg::Send {
                    origin: me,
                    seq,
                    value: Arc::from(input.0),
                    sig: [3; 64],
                });
            }
            _ => {}
        }
    }

    fn drain_committed(&mut self) -> Vec<Delivery> {
        Vec::new()
    }

    fn is_honest(&self) -> bool {
        false
    }
}
