//! # The honest signed-echo-broadcast node
//!
//! Invariants kept locally: at most one echo per instance (persisted before it leaves); one
//! counted echo per signer per instance (a second, conflicting echo raises an equivocation alarm
//! and is ignored); at most one delivery per instance (persisted); a delivery always carries `q`
//! distinct valid echo signatures over the statement of its value. Messages for instances more
//! than `window` sequence numbers ahead of what an origin has delivered here are refused (spam
//! bound). Each alarm is raised once per (kind, suspect), and a suspect is named only on evidence
//! that suspect signed.
//!
//! Memory stays bounded in long runs: once an instance is delivered its echo state is dropped,
//! and once every other node has been seen relaying its `Final` the relay is dropped too.
//! Retransmission (a tick every `retransmit_ms` until `retransmit_rounds` rounds that resent
//! something have passed since the last activity) covers only instances still pending, each
//! backing off from `retransmit_ms` to `retransmit_max_ms`, and sends a `Final` only to nodes
//! not yet seen relaying it (see [`super::node`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::super::crypto::{Certificate, Digest32, NodeSigner, PublicKeys};
use super::super::protocol::{AlarmKind, NodeId, Outbox, TimerId};
use super::nodeset::NodeSet;
use super::{
    echo_statement, send_statement, value_digest, Delivery, InstanceId, PlantedBug, RbcConfig,
    RbcMsg, Value,
};

pub(super) const RETRANSMIT: TimerId = 1;

#[derive(Debug, Default)]
pub(super) struct Instance {
    pub(super) values: BTreeMap<Digest32, Value>,
    pub(super) send_digest: Option<Digest32>,
    pub(super) own_send: Option<Arc<RbcMsg>>,
    pub(super) my_echo: Option<Arc<RbcMsg>>,
    /// Valid echo signatures per digest, one per signer (`echoed_by` keeps them distinct).
    pub(super) echoes: BTreeMap<Digest32, Vec<(NodeId, [u8; 64])>>,
    /// The echo statement of the last digest echoed here (one hash per digest, not per echo).
    pub(super) echo_stmt: Option<(Digest32, Vec<u8>)>,
    pub(super) echoed_by: BTreeMap<NodeId, Digest32>,
    pub(super) delivered: Option<Digest32>,
    pub(super) relay: Option<Arc<RbcMsg>>,
    pub(super) relayed_by: NodeSet,
    /// Retransmission backoff: next round at or after `retx_at`, current gap (0: none yet),
    /// rounds done.
    pub(super) retx_at: u64,
    pub(super) retx_gap: u64,
    pub(super) retx_round: u32,
}

/// An honest node.
#[derive(Debug)]
pub struct HonestNode {
    pub(super) cfg: RbcConfig,
    pub(super) signer: NodeSigner,
    pub(super) keys: PublicKeys,
    pub(super) next_seq: u64,
    pub(super) instances: BTreeMap<InstanceId, Instance>,
    pub(super) pending: BTreeSet<InstanceId>,
    pub(super) delivered_upto: BTreeMap<NodeId, u64>,
    pub(super) committed: Vec<Delivery>,
    pub(super) rounds_left: u32,
    pub(super) alarmed: BTreeSet<(AlarmKind, Option<NodeId>)>,
}

impl HonestNode {
    pub fn new(cfg: RbcConfig, signer: NodeSigner, keys: PublicKeys) -> Self {
        Self {
            cfg,
            signer,
            keys,
            next_seq: 0,
            instances: BTreeMap::new(),
            pending: BTreeSet::new(),
            delivered_upto: BTreeMap::new(),
            committed: Vec::new(),
            rounds_left: 0,
            alarmed: BTreeSet::new(),
        }
    }

    pub(super) fn local_quorum(&self) -> usize {
        let q = self.cfg.quorum();
        if self.cfg.has(PlantedBug::QuorumMinusOne) {
            q - 1
        } else {
            q
        }
    }

    pub(super) fn alarm(
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

    /// A bad signature proves nothing about who sent it (the network sender is unauthenticated).
    fn bad_signature(&mut self, out: &mut Outbox<RbcMsg>, from: NodeId, detail: String) {
        let suspect = self
            .cfg
            .has(PlantedBug::AccuseNetworkSender)
            .then_some(from);
        self.alarm(out, AlarmKind::BadSignature, suspect, detail);
    }

    /// Note new activity: (re)start the retransmission rounds.
    pub(super) fn activity(&mut self, now: u64, out: &mut Outbox<RbcMsg>) {
        if self.cfg.has(PlantedBug::NoRetransmit) {
            return;
        }
        if self.rounds_left == 0 {
            out.set_timer(RETRANSMIT, now + self.cfg.retransmit_ms);
        }
        self.rounds_left = self.cfg.retransmit_rounds;
    }

    pub(super) fn in_window(
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
            let _ = from; // spam is signed by someone, but a valid echo far ahead is not proof of fault
            self.alarm(
                out,
                AlarmKind::Spam,
                None,
                format!("seq {seq} of origin {origin} outside window"),
            );
            return false;
        }
        true
    }

    fn is_delivered(&self, id: InstanceId) -> bool {
        self.instances
            .get(&id)
            .is_some_and(|i| i.delivered.is_some())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_send(
        &mut self,
        now: u64,
        from: NodeId,
        origin: NodeId,
        seq: u64,
        value: &Value,
        sig: &[u8; 64],
        out: &mut Outbox<RbcMsg>,
    ) {
        if self.is_delivered((origin, seq)) {
            return;
        }
        let digest = value_digest(value);
        let seen = self
            .instances
            .get(&(origin, seq))
            .and_then(|i| i.send_digest);
        if seen == Some(digest) {
            return; // a retransmission of what was already verified
        }
        let skip = self.cfg.has(PlantedBug::SkipSendSignature);
        if !skip
            && !self
                .keys
                .verify(origin, &send_statement(origin, seq, value), sig)
        {
            self.bad_signature(out, from, format!("send for origin {origin} seq {seq}"));
            return;
        }
        let inst = self.instances.entry((origin, seq)).or_default();
        if let Some(d) = inst.send_digest {
            if d != digest {
                self.alarm(
                    out,
                    AlarmKind::Equivocation,
                    Some(origin),
                    format!("two signed values for seq {seq}"),
                );
            }
            return;
        }
        inst.send_digest = Some(digest);
        inst.values.insert(digest, Arc::clone(value));
        if inst.my_echo.is_none() {
            let sig = self.signer.sign(&echo_statement(origin, seq, &digest));
            let echo = Arc::new(RbcMsg::Echo {
                origin,
                seq,
                digest,
                signer: self.signer.id(),
                sig,
            });
            inst.my_echo = Some(Arc::clone(&echo));
            if !self.cfg.has(PlantedBug::ForgetVoteOnRecover) {
                out.persist(super::recovery::echo_key((origin, seq)), digest.to_vec());
            }
            for to in 0..self.cfg.n {
                out.send_shared(to, Arc::clone(&echo));
            }
            self.pending.insert((origin, seq));
            self.activity(now, out);
        }
        self.try_deliver(now, (origin, seq), digest, out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_echo(
        &mut self,
        now: u64,
        from: NodeId,
        id: InstanceId,
        digest: Digest32,
        signer: NodeId,
        sig: &[u8; 64],
        out: &mut Outbox<RbcMsg>,
    ) {
        let inst = self.instances.entry(id).or_default();
        if inst.delivered.is_some() || inst.echoed_by.get(&signer) == Some(&digest) {
            return; // delivered, or a retransmission of what was already verified
        }
        // The statement of the digest being echoed, hashed once for all its echoes.
        if inst.echo_stmt.as_ref().map(|(d, _)| d) != Some(&digest) {
            inst.echo_stmt = Some((digest, echo_statement(id.0, id.1, &digest)));
        }
        let valid = inst
            .echo_stmt
            .as_ref()
            .is_some_and(|(_, st)| self.keys.verify(signer, st, sig));
        if !valid {
            self.bad_signature(out, from, format!("echo claiming signer {signer}"));
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
                inst.echoes.entry(digest).or_default().push((signer, *sig));
            }
        }
        self.try_deliver(now, id, digest, out);
    }

    pub(super) fn on_final(
        &mut self,
        now: u64,
        from: NodeId,
        id: InstanceId,
        value: &Value,
        cert: &Arc<Certificate>,
        out: &mut Outbox<RbcMsg>,
    ) {
        if let Some(inst) = self.instances.get_mut(&id) {
            // The common case, a relay of the very payload delivered here: no digest needed.
            if let Some(RbcMsg::Final { value: mine, .. }) = inst.relay.as_deref() {
                if Arc::ptr_eq(mine, value) {
                    inst.relayed_by.insert(from);
                    return;
                }
            }
        }
        let digest = value_digest(value);
        if let Some(inst) = self.instances.get_mut(&id) {
            if inst.delivered == Some(digest) {
                inst.relayed_by.insert(from);
                return; // already delivered this value: nothing to verify
            }
        }
        if !self.cfg.has(PlantedBug::SkipFinalCheck) {
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
        }
        let inst = self.instances.entry(id).or_default();
        if inst.delivered.is_some() {
            // Two valid certificates need more than f faulty echoers, but do not say who they are.
            self.alarm(
                out,
                AlarmKind::Equivocation,
                None,
                format!("conflicting certificates for {id:?}"),
            );
            return;
        }
        inst.relayed_by.insert(from);
        let d = Delivery {
            origin: id.0,
            seq: id.1,
            value: Arc::clone(value),
            cert: Arc::clone(cert),
        };
        self.deliver(now, d, out);
    }
}
