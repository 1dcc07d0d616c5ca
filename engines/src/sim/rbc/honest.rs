//! # The honest signed-echo-broadcast node
//!
//! Invariants kept locally: at most one echo per instance; one counted echo per signer per
//! instance (a second, conflicting echo raises an equivocation alarm and is ignored); at most one
//! delivery per instance; a delivery always carries `q` distinct valid echo signatures. Messages
//! for instances more than `window` sequence numbers ahead of what an origin has delivered here
//! are refused (spam bound). Each alarm is raised once per (kind, suspect).

use std::collections::{BTreeMap, BTreeSet};

use super::super::crypto::{Certificate, Digest32, NodeSigner, PublicKeys};
use super::super::protocol::{AlarmKind, NodeId, Outbox, Protocol, TimerId};
use super::{
    echo_statement, send_statement, value_digest, Broadcast, Delivery, InstanceId, RbcMsg,
};

const RETRANSMIT: TimerId = 1;

/// Parameters shared by all nodes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbcConfig {
    pub n: u32,
    pub f: u32,
    pub retransmit_ms: u64,
    /// Retransmission rounds after the last new activity.
    pub retransmit_rounds: u32,
    pub window: u64,
}

impl RbcConfig {
    pub fn new(n: u32, f: u32) -> Self {
        Self {
            n,
            f,
            retransmit_ms: 100,
            retransmit_rounds: 20,
            window: 1024,
        }
    }

    /// `⌊(n+f)/2⌋ + 1`: any two quorums intersect in at least f+1 nodes.
    pub fn quorum(&self) -> usize {
        ((self.n + self.f) / 2 + 1) as usize
    }
}

#[derive(Debug, Default)]
struct Instance {
    values: BTreeMap<Digest32, Vec<u8>>,
    send_digest: Option<Digest32>,
    own_send: Option<RbcMsg>,
    my_echo: Option<RbcMsg>,
    echoes: BTreeMap<Digest32, BTreeMap<NodeId, [u8; 64]>>,
    echoed_by: BTreeMap<NodeId, Digest32>,
    delivered: Option<Delivery>,
}

/// An honest node.
#[derive(Debug)]
pub struct HonestNode {
    cfg: RbcConfig,
    signer: NodeSigner,
    keys: PublicKeys,
    next_seq: u64,
    instances: BTreeMap<InstanceId, Instance>,
    delivered_upto: BTreeMap<NodeId, u64>,
    committed: Vec<Delivery>,
    rounds_left: u32,
    alarmed: BTreeSet<(AlarmKind, Option<NodeId>)>,
}

impl HonestNode {
    pub fn new(cfg: RbcConfig, signer: NodeSigner, keys: PublicKeys) -> Self {
        Self {
            cfg,
            signer,
            keys,
            next_seq: 0,
            instances: BTreeMap::new(),
            delivered_upto: BTreeMap::new(),
            committed: Vec::new(),
            rounds_left: 0,
            alarmed: BTreeSet::new(),
        }
    }

    fn alarm(
        &mut self,
        out: &mut Outbox<RbcMsg>,
        kind: AlarmKind,
        suspect: Option<NodeId>,
        detail: String,
    ) {
        if self.alarmed.insert((kind, suspect)) {
            out.alarm(kind, suspect, detail);
        }
    }

    /// Note new activity: (re)start the retransmission rounds.
    fn activity(&mut self, now: u64, out: &mut Outbox<RbcMsg>) {
        if self.rounds_left == 0 {
            out.set_timer(RETRANSMIT, now + self.cfg.retransmit_ms);
        }
        self.rounds_left = self.cfg.retransmit_rounds;
    }

    fn in_window(
        &mut self,
        origin: NodeId,
        seq: u64,
        from: NodeId,
        out: &mut Outbox<RbcMsg>,
    ) -> bool {
        if !self.keys.is_member(origin) {
            self.alarm(
                out,
                AlarmKind::NotMember,
                None,
                format!("origin {origin} is not a member"),
            );
            return false;
        }
        let base = self.delivered_upto.get(&origin).copied().unwrap_or(0);
        if seq >= base.saturating_add(self.cfg.window) {
            self.alarm(
                out,
                AlarmKind::Garbage,
                Some(from),
                format!("seq {seq} of origin {origin} outside window"),
            );
            return false;
        }
        true
    }

    fn on_send(
        &mut self,
        now: u64,
        origin: NodeId,
        seq: u64,
        value: Vec<u8>,
        sig: [u8; 64],
        out: &mut Outbox<RbcMsg>,
    ) {
        let digest = value_digest(&value);
        let seen = self
            .instances
            .get(&(origin, seq))
            .and_then(|i| i.send_digest);
        if seen == Some(digest) {
            return; // a retransmission of what was already verified
        }
        if !self
            .keys
            .verify(origin, &send_statement(origin, seq, &value), &sig)
        {
            self.alarm(
                out,
                AlarmKind::BadSignature,
                None,
                format!("send for origin {origin} seq {seq}"),
            );
            return;
        }
        let inst = self.instances.entry((origin, seq)).or_default();
        match inst.send_digest {
            Some(d) if d != digest => {
                self.alarm(
                    out,
                    AlarmKind::Equivocation,
                    Some(origin),
                    format!("two signed values for seq {seq}"),
                );
                return;
            }
            Some(_) => return,
            None => inst.send_digest = Some(digest),
        }
        inst.values.insert(digest, value);
        if inst.my_echo.is_none() {
            let sig = self.signer.sign(&echo_statement(origin, seq, &digest));
            let echo = RbcMsg::Echo {
                origin,
                seq,
                digest,
                signer: self.signer.id(),
                sig,
            };
            inst.my_echo = Some(echo.clone());
            out.broadcast(echo);
            self.activity(now, out);
        }
        self.try_deliver(now, (origin, seq), digest, out);
    }

    fn on_echo(
        &mut self,
        now: u64,
        id: InstanceId,
        digest: Digest32,
        signer: NodeId,
        sig: [u8; 64],
        out: &mut Outbox<RbcMsg>,
    ) {
        if self
            .instances
            .get(&id)
            .and_then(|i| i.echoed_by.get(&signer))
            == Some(&digest)
        {
            return; // a retransmission of what was already verified
        }
        if !self
            .keys
            .verify(signer, &echo_statement(id.0, id.1, &digest), &sig)
        {
            self.alarm(
                out,
                AlarmKind::BadSignature,
                None,
                format!("echo claiming signer {signer}"),
            );
            return;
        }
        let inst = self.instances.entry(id).or_default();
        match inst.echoed_by.get(&signer) {
            Some(d) if *d != digest => {
                self.alarm(
                    out,
                    AlarmKind::Equivocation,
                    Some(signer),
                    format!("two echoes for {id:?}"),
                );
                return;
            }
            Some(_) => return,
            None => {
                inst.echoed_by.insert(signer, digest);
                inst.echoes.entry(digest).or_default().insert(signer, sig);
            }
        }
        self.try_deliver(now, id, digest, out);
    }

    fn on_final(
        &mut self,
        now: u64,
        id: InstanceId,
        value: Vec<u8>,
        cert: Certificate,
        out: &mut Outbox<RbcMsg>,
    ) {
        let digest = value_digest(&value);
        let delivered = self
            .instances
            .get(&id)
            .and_then(|i| i.delivered.as_ref())
            .map(|d| value_digest(&d.value));
        if delivered == Some(digest) {
            return; // already delivered this value: nothing to verify
        }
        if cert.statement != echo_statement(id.0, id.1, &digest) {
            self.alarm(
                out,
                AlarmKind::Garbage,
                None,
                format!("final for {id:?} certifies another statement"),
            );
            return;
        }
        if let Err(e) = cert.verify(&self.keys, self.cfg.quorum()) {
            self.alarm(
                out,
                AlarmKind::BadSignature,
                None,
                format!("final for {id:?}: {e}"),
            );
            return;
        }
        let inst = self.instances.entry(id).or_default();
        if let Some(d) = &inst.delivered {
            if value_digest(&d.value) != digest {
                self.alarm(
                    out,
                    AlarmKind::Equivocation,
                    Some(id.0),
                    format!("conflicting certificates for {id:?}"),
                );
            }
            return;
        }
        inst.values.insert(digest, value.clone());
        self.deliver(
            now,
            Delivery {
                origin: id.0,
                seq: id.1,
                value,
                cert,
            },
            out,
        );
    }

    fn try_deliver(
        &mut self,
        now: u64,
        id: InstanceId,
        digest: Digest32,
        out: &mut Outbox<RbcMsg>,
    ) {
        let q = self.cfg.quorum();
        let Some(inst) = self.instances.get(&id) else {
            return;
        };
        if inst.delivered.is_some() {
            return;
        }
        let (Some(echoes), Some(value)) = (inst.echoes.get(&digest), inst.values.get(&digest))
        else {
            return;
        };
        if echoes.len() < q {
            return;
        }
        let statement = echo_statement(id.0, id.1, &digest);
        let cert = Certificate {
            statement,
            sigs: echoes.iter().map(|(k, s)| (*k, *s)).collect(),
        };
        let d = Delivery {
            origin: id.0,
            seq: id.1,
            value: value.clone(),
            cert,
        };
        self.deliver(now, d, out);
    }

    fn deliver(&mut self, now: u64, d: Delivery, out: &mut Outbox<RbcMsg>) {
        let inst = self.instances.entry((d.origin, d.seq)).or_default();
        inst.delivered = Some(d.clone());
        let signed_other = inst
            .send_digest
            .is_some_and(|s| s != value_digest(&d.value));
        if signed_other {
            // The origin's own signature is on a value other than the certified one.
            let detail = format!(
                "origin signed a value other than the certified one for seq {}",
                d.seq
            );
            self.alarm(out, AlarmKind::Equivocation, Some(d.origin), detail);
        }
        let upto = self.delivered_upto.entry(d.origin).or_insert(0);
        *upto = (*upto).max(d.seq + 1);
        out.broadcast(RbcMsg::Final {
            origin: d.origin,
            seq: d.seq,
            value: d.value.clone(),
            cert: d.cert.clone(),
        });
        self.committed.push(d);
        self.activity(now, out);
    }
}

impl Protocol for HonestNode {
    type Msg = RbcMsg;
    type Input = Broadcast;
    type Output = Delivery;

    fn on_message(&mut self, now: u64, from: NodeId, msg: RbcMsg, out: &mut Outbox<RbcMsg>) {
        match msg {
            RbcMsg::Send {
                origin,
                seq,
                value,
                sig,
            } => {
                if self.in_window(origin, seq, from, out) {
                    self.on_send(now, origin, seq, value, sig, out);
                }
            }
            RbcMsg::Echo {
                origin,
                seq,
                digest,
                signer,
                sig,
            } => {
                if self.in_window(origin, seq, from, out) {
                    self.on_echo(now, (origin, seq), digest, signer, sig, out);
                }
            }
            RbcMsg::Final {
                origin,
                seq,
                value,
                cert,
            } => {
                if self.keys.is_member(origin) {
                    self.on_final(now, (origin, seq), value, cert, out);
                }
            }
        }
    }

    fn on_timer(&mut self, now: u64, _id: TimerId, out: &mut Outbox<RbcMsg>) {
        for inst in self.instances.values() {
            if let Some(d) = &inst.delivered {
                out.broadcast(RbcMsg::Final {
                    origin: d.origin,
                    seq: d.seq,
                    value: d.value.clone(),
                    cert: d.cert.clone(),
                });
                continue;
            }
            if let Some(m) = &inst.own_send {
                out.broadcast(m.clone());
            }
            if let Some(m) = &inst.my_echo {
                out.broadcast(m.clone());
            }
        }
        self.rounds_left = self.rounds_left.saturating_sub(1);
        if self.rounds_left > 0 {
            out.set_timer(RETRANSMIT, now + self.cfg.retransmit_ms);
        }
    }

    fn on_input(&mut self, now: u64, input: Broadcast, out: &mut Outbox<RbcMsg>) {
        let origin = self.signer.id();
        let seq = self.next_seq;
        self.next_seq += 1;
        let sig = self.signer.sign(&send_statement(origin, seq, &input.0));
        let msg = RbcMsg::Send {
            origin,
            seq,
            value: input.0,
            sig,
        };
        self.instances.entry((origin, seq)).or_default().own_send = Some(msg.clone());
        out.broadcast(msg);
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
