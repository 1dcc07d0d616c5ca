//! One T-PBFT node: the epoch machine around an inner PBFT replica.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;

use crate::pbft::{batch_digest, LedgerEntry, PbftMsg, Replica};
use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::protocol::{Decode, NodeId, Outbox, Protocol, TimerId};
use crate::sim::simulator::Node;

use super::trust::{committee, pre_trust};
use super::{
    epoch_context, EquivocationProof, Evidence, Payload, TpbftConfig, TpbftMsg, TpbftOut, Tx,
    TxSubmit,
};

/// Inner replica timers are mapped to `INNER_TIMER + id`.
pub(super) const INNER_TIMER: TimerId = 0x100;
pub(super) const RETRY: TimerId = 0x200;
/// Most future-epoch messages and out-of-order batches held.
pub(super) const BUFFER_CAP: usize = 8192;
/// Most batches in one `Committed` answer to a pull.
pub(super) const PULL_BATCH: usize = 32;

/// An own transaction not yet applied: how often it was re-sent, and when last.
#[derive(Debug, Clone)]
pub(super) struct Own {
    pub(super) tx: Arc<Tx>,
    pub(super) tries: u32,
    pub(super) sent_ms: u64,
}

/// A T-PBFT node as the simulator holds it.
pub type TpbftSimNode = Node<TpbftMsg, TxSubmit, TpbftOut>;

/// One T-PBFT node.
pub struct TpbftNode {
    pub(super) cfg: TpbftConfig,
    pub(super) signer: NodeSigner,
    pub(super) keys: PublicKeys,
    pub(super) epoch: u64,
    pub(super) committee: Vec<NodeId>,
    pub(super) trust: Vec<f64>,
    pub(super) faulty: BTreeSet<NodeId>,
    pub(super) scoped: PublicKeys,
    pub(super) inner: Option<Replica>,
    /// Applied batches of the current epoch: seq → (view, digest).
    pub(super) batches: BTreeMap<u64, (u64, Digest32)>,
    pub(super) applied: u64,
    /// Every applied batch, by `(epoch, seq)` (served to pulls).
    pub(super) archive: BTreeMap<(u64, u64), LedgerEntry>,
    /// Committed evidence of this epoch, by member (global id).
    pub(super) evidence: BTreeMap<NodeId, Evidence>,
    pub(super) evidence_sent: bool,
    /// First prepare statement seen per `(view, seq, local signer)`.
    pub(super) seen: BTreeMap<(u64, u64, u32), (Digest32, [u8; 64])>,
    pub(super) proofs: BTreeMap<(u64, u64, u32), EquivocationProof>,
    pub(super) done: BTreeSet<(NodeId, u64)>,
    /// Own transactions not yet applied.
    pub(super) mine: BTreeMap<u64, Own>,
    /// Transactions submitted to the inner replica this epoch.
    pub(super) submitted: BTreeSet<(NodeId, u64)>,
    pub(super) next_local: u64,
    pub(super) future_msgs: Vec<(NodeId, TpbftMsg)>,
    pub(super) pending_batches: BTreeMap<(u64, u64), LedgerEntry>,
    pub(super) outputs: Vec<TpbftOut>,
    pub(super) ticking: bool,
    /// The tick runs at the heartbeat period (idle).
    pub(super) slow: bool,
    /// `(epoch, applied)` at the last tick.
    pub(super) last_pos: (u64, u64),
    pub(super) idle: u32,
    pub(super) pull_turn: u32,
    /// Alarms raised so far, by kind (for the host's metrics).
    pub alarms_seen: u64,
}

impl TpbftNode {
    pub fn new(cfg: TpbftConfig, signer: NodeSigner, keys: PublicKeys) -> Self {
        let faulty = BTreeSet::new();
        let trust = pre_trust(cfg.n as usize, &faulty);
        let first = committee(&trust, cfg.c as usize, &faulty, &[]);
        let mut node = Self {
            cfg,
            scoped: keys.scoped(&first, epoch_context(0)),
            signer,
            keys,
            epoch: 0,
            committee: first,
            trust,
            faulty,
            inner: None,
            batches: BTreeMap::new(),
            applied: 0,
            archive: BTreeMap::new(),
            evidence: BTreeMap::new(),
            evidence_sent: false,
            seen: BTreeMap::new(),
            proofs: BTreeMap::new(),
            done: BTreeSet::new(),
            mine: BTreeMap::new(),
            submitted: BTreeSet::new(),
            next_local: 0,
            future_msgs: Vec::new(),
            pending_batches: BTreeMap::new(),
            outputs: Vec::new(),
            ticking: false,
            slow: false,
            last_pos: (0, 0),
            idle: 0,
            pull_turn: 0,
            alarms_seen: 0,
        };
        node.inner = node.make_inner();
        node
    }

    pub fn id(&self) -> NodeId {
        self.signer.id()
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn committee(&self) -> &[NodeId] {
        &self.committee
    }
    pub fn trust(&self) -> &[f64] {
        &self.trust
    }
    pub fn faulty(&self) -> &BTreeSet<NodeId> {
        &self.faulty
    }
    /// The inner replica's view (members only).
    pub fn view(&self) -> Option<u64> {
        self.inner.as_ref().map(Replica::view)
    }
    /// Batches applied in total.
    pub fn height(&self) -> u64 {
        self.archive.len() as u64
    }

    pub(super) fn local(&self) -> Option<u32> {
        self.committee
            .iter()
            .position(|m| *m == self.id())
            .map(|p| p as u32)
    }

    pub(super) fn make_inner(&self) -> Option<Replica> {
        let local = self.local()?;
        let s = self.signer.scoped(local, epoch_context(self.epoch));
        Some(Replica::new(self.cfg.inner, s, self.scoped.clone()))
    }

    /// Run the inner replica on `f`, carrying out what it asked for under global ids.
    pub(super) fn run_inner(
        &mut self,
        now: u64,
        out: &mut Outbox<TpbftMsg>,
        f: impl FnOnce(&mut Replica, &mut Outbox<PbftMsg>),
    ) {
        let Some(replica) = self.inner.as_mut() else {
            return;
        };
        let Some(local) = self
            .committee
            .iter()
            .position(|m| *m == out.me)
            .map(|p| p as u32)
        else {
            return;
        };
        let rng = std::mem::replace(&mut out.rng, rand_chacha::ChaCha8Rng::from_seed([0; 32]));
        let mut child: Outbox<PbftMsg> = Outbox::new(local, self.cfg.c, rng);
        f(replica, &mut child);
        let _ = replica.drain_committed(); // applied from the ledger instead (null batches too)
        out.rng = std::mem::replace(&mut child.rng, rand_chacha::ChaCha8Rng::from_seed([0; 32]));
        let mut last: Option<(*const PbftMsg, Arc<TpbftMsg>)> = None;
        for s in child.sends {
            let Some(to) = self.committee.get(s.to as usize).copied() else {
                continue;
            };
            let ptr = Arc::as_ptr(&s.msg);
            let wrapped = match &last {
                Some((p, w)) if *p == ptr => Arc::clone(w),
                _ => {
                    let w = Arc::new(TpbftMsg::Inner {
                        epoch: self.epoch,
                        msg: (*s.msg).clone(),
                    });
                    last = Some((ptr, Arc::clone(&w)));
                    w
                }
            };
            out.send_shared(to, wrapped);
        }
        for t in child.timers {
            match t {
                crate::sim::protocol::TimerCmd::Set { id, at_ms } => {
                    out.set_timer(INNER_TIMER + id, at_ms)
                }
                crate::sim::protocol::TimerCmd::Cancel { id } => out.cancel_timer(INNER_TIMER + id),
            }
        }
        for mut a in child.alarms {
            a.suspect = a
                .suspect
                .and_then(|l| self.committee.get(l as usize).copied());
            out.alarms.push(a);
        }
        self.pump(now, out);
    }

    /// Apply (and forward) what the inner replica executed beyond `applied`.
    fn pump(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        loop {
            let next = self.applied + 1;
            let Some(r) = self.inner.as_ref() else {
                break;
            };
            let Some(entry) = r.ledger_entry(next).cloned() else {
                break;
            };
            let digest = r
                .ledger_digest(next)
                .unwrap_or_else(|| batch_digest(&entry.batch));
            let epoch = self.epoch;
            self.forward(epoch, &entry, out);
            self.apply(now, epoch, entry, digest, out);
            if self.epoch != epoch {
                break;
            }
        }
        self.maybe_submit_evidence(now, out);
    }

    pub(super) fn apply(
        &mut self,
        now: u64,
        epoch: u64,
        entry: LedgerEntry,
        digest: Digest32,
        out: &mut Outbox<TpbftMsg>,
    ) {
        let seq = entry.seq;
        self.applied = seq;
        self.batches.insert(seq, (entry.view, digest));
        let mut ends = false;
        let decoded: Vec<Option<Payload>> = entry
            .batch
            .iter()
            .map(|r| Payload::decode(&r.payload).ok())
            .collect();
        let valid = self.origin_signatures(&decoded);
        for (pos, (r, p)) in entry.batch.iter().zip(decoded).enumerate() {
            let Some(member) = self.committee.get(r.client as usize).copied() else {
                continue;
            };
            match p {
                Some(Payload::Tx(tx)) => {
                    let key = (tx.origin, tx.id);
                    let Some(digest) = valid[pos].filter(|_| !self.done.contains(&key)) else {
                        continue;
                    };
                    self.done.insert(key);
                    if tx.origin == self.id() {
                        self.mine.remove(&tx.id);
                    }
                    self.outputs.push(TpbftOut::Tx {
                        epoch,
                        seq,
                        pos: pos as u32,
                        origin: tx.origin,
                        id: tx.id,
                        digest,
                        payload: Arc::clone(&tx.payload),
                    });
                }
                Some(Payload::Evidence(ev)) => {
                    if ev.epoch != epoch || self.evidence.contains_key(&member) {
                        continue;
                    }
                    let checked = self.check_evidence(ev);
                    self.evidence.insert(member, checked);
                    if self.evidence.len() >= self.cfg.quorum() {
                        ends = true;
                    }
                }
                None => {}
            }
        }
        self.archive.insert((epoch, seq), entry);
        if ends {
            self.end_epoch(now, out);
        }
    }

    pub(super) fn next_local_id(&mut self) -> u64 {
        self.next_local += 1;
        (self.epoch << 40) | self.next_local
    }
}

impl Protocol for TpbftNode {
    type Msg = TpbftMsg;
    type Input = TxSubmit;
    type Output = TpbftOut;

    fn on_start(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
        self.run_inner(now, out, |r, o| r.on_start(now, o));
        self.wake(now, out);
    }

    fn on_message(&mut self, now: u64, from: NodeId, msg: &TpbftMsg, out: &mut Outbox<TpbftMsg>) {
        match msg {
            TpbftMsg::Inner { epoch, msg } => {
                if *epoch > self.epoch {
                    if self.future_msgs.len() < BUFFER_CAP {
                        self.future_msgs.push((
                            from,
                            TpbftMsg::Inner {
                                epoch: *epoch,
                                msg: msg.clone(),
                            },
                        ));
                    }
                    self.wake(now, out);
                    return;
                }
                if *epoch < self.epoch {
                    // A member left behind in an epoch this node has finished: its replica's
                    // state-transfer request is answered from the archive.
                    if let PbftMsg::Fetch { from_seq } = msg {
                        self.on_pull(from, *epoch, *from_seq, out);
                    }
                    return;
                }
                if !self.committee.contains(&from) {
                    return;
                }
                let Some(local_from) = self.committee.iter().position(|m| *m == from) else {
                    return;
                };
                // A pre-prepare is watched after the replica took it, reusing the digest the
                // replica computed (its batch is hashed once); unless that step ended the epoch
                // (sequence numbers restart in the next one).
                let pre = matches!(msg, PbftMsg::PrePrepare { .. });
                if !pre {
                    self.watch(msg);
                }
                let epoch = self.epoch;
                self.run_inner(now, out, |r, o| {
                    r.on_message(now, local_from as NodeId, msg, o)
                });
                if pre && self.epoch == epoch {
                    self.watch(msg);
                }
            }
            TpbftMsg::Tx(tx) => self.submit(now, tx, out),
            TpbftMsg::Committed(es) => self.on_committed(now, es, out),
            TpbftMsg::Pull { epoch, seq } => self.on_pull(from, *epoch, *seq, out),
        }
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<TpbftMsg>) {
        if id == RETRY {
            self.tick(now, out);
        } else if id > INNER_TIMER && id < INNER_TIMER + 0x100 {
            self.run_inner(now, out, |r, o| r.on_timer(now, id - INNER_TIMER, o));
        }
    }

    fn on_input(&mut self, now: u64, input: TxSubmit, out: &mut Outbox<TpbftMsg>) {
        self.own_tx(now, input, out);
    }

    fn drain_committed(&mut self) -> Vec<TpbftOut> {
        std::mem::take(&mut self.outputs)
    }
}
