//! One T-PBFT node: the epoch machine around an inner PBFT replica.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;

use crate::pbft::{
    batch_digest, commit_statement, prepare_statement, LedgerEntry, PbftMsg, Replica, Submit,
};
use crate::sim::crypto::{Digest32, Keyring, NodeSigner, PublicKeys, Scheme};
use crate::sim::invariants::{
    Invariant, NoDuplicates, NoFalseAccusation, OnCommit, PrefixAgreement,
};
use crate::sim::protocol::{AlarmKind, Decode, NodeId, Outbox, Protocol, TimerId};
use crate::sim::simulator::Node;
use crate::sim::wire::encode;

use super::trust::{committee, eigentrust, local_trust, pre_trust, to_ppb};
use super::{
    epoch_context, tx_statement, EquivocationProof, Evidence, EvidenceEntry, Payload, TpbftConfig,
    TpbftMsg, TpbftOut, Tx, TxSubmit,
};

/// Inner replica timers are mapped to `INNER_TIMER + id`.
const INNER_TIMER: TimerId = 0x100;
pub(super) const RETRY: TimerId = 0x200;
/// Most future-epoch messages and out-of-order batches held.
pub(super) const BUFFER_CAP: usize = 8192;
/// Most batches in one `Committed` answer to a pull.
pub(super) const PULL_BATCH: usize = 32;

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
    /// Own transactions not yet applied, with their retry count.
    pub(super) mine: BTreeMap<u64, (Arc<Tx>, u32)>,
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

    fn local(&self) -> Option<u32> {
        self.committee
            .iter()
            .position(|m| *m == self.id())
            .map(|p| p as u32)
    }

    fn make_inner(&self) -> Option<Replica> {
        let local = self.local()?;
        let s = self.signer.scoped(local, epoch_context(self.epoch));
        Some(Replica::new(self.cfg.inner, s, self.scoped.clone()))
    }

    /// Run the inner replica on `f`, carrying out what it asked for under global ids.
    fn run_inner(
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
            let entry = match self.inner.as_ref().and_then(|r| r.ledger_entry(next)) {
                Some(e) => e.clone(),
                None => break,
            };
            let epoch = self.epoch;
            self.forward(epoch, &entry, out);
            self.apply(now, epoch, entry, out);
            if self.epoch != epoch {
                break;
            }
        }
        self.maybe_submit_evidence(now, out);
    }

    /// Send an executed batch to the non-members this member serves: one member per
    /// non-member and batch, rotating with the sequence number (`(k + seq) mod c` for the
    /// `k`-th non-member). The certificate is verified on arrival, so one forwarder is safe; a
    /// member that withholds its share leaves gaps that the next batch (from another member)
    /// reveals, and the non-member pulls them (`catchup.rs`).
    fn forward(&self, epoch: u64, entry: &LedgerEntry, out: &mut Outbox<TpbftMsg>) {
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

    pub(super) fn apply(
        &mut self,
        now: u64,
        epoch: u64,
        entry: LedgerEntry,
        out: &mut Outbox<TpbftMsg>,
    ) {
        let seq = entry.seq;
        self.applied = seq;
        self.batches
            .insert(seq, (entry.view, batch_digest(&entry.batch)));
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
                    if self.done.contains(&key) || !valid[pos] {
                        continue;
                    }
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
                        digest: crate::sim::crypto::hash_parts(&[&tx.payload]),
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

    /// Whether each payload is a transaction correctly signed by its origin: one batch
    /// verification for the batch, each one alone if the batch fails (the answer depends only
    /// on the batch, so every node decides alike at the same log position).
    fn origin_signatures(&self, ps: &[Option<Payload>]) -> Vec<bool> {
        let txs: Vec<(usize, &Tx, Vec<u8>)> = ps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Some(Payload::Tx(tx)) if !self.done.contains(&(tx.origin, tx.id)) => {
                    Some((i, tx, tx_statement(tx.origin, tx.id, &tx.payload)))
                }
                _ => None,
            })
            .collect();
        let items: Vec<(NodeId, &[u8], &[u8; 64])> = txs
            .iter()
            .map(|(_, tx, st)| (tx.origin, st.as_slice(), &tx.sig))
            .collect();
        let mut valid = vec![false; ps.len()];
        let all = self.keys.verify_all(&items);
        for ((i, _, _), (id, st, sig)) in txs.iter().zip(&items) {
            valid[*i] = all || self.keys.verify(*id, st, sig);
        }
        valid
    }

    /// Keep only the parts of `ev` whose signatures verify against this epoch's batches.
    fn check_evidence(&self, ev: Evidence) -> Evidence {
        let entries = ev
            .entries
            .into_iter()
            .filter_map(|en| {
                let (view, digest) = *self.batches.get(&en.seq)?;
                if view != en.view || digest != en.digest || en.seq > self.cfg.epoch_len {
                    return None;
                }
                let st = commit_statement(view, en.seq, &digest);
                let mut seen = BTreeSet::new();
                let sigs: Vec<(u32, [u8; 64])> = en
                    .sigs
                    .into_iter()
                    .filter(|(id, sig)| seen.insert(*id) && self.scoped.verify(*id, &st, sig))
                    .collect();
                Some(EvidenceEntry { sigs, ..en })
            })
            .collect();
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

    fn maybe_submit_evidence(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
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
                digest: batch_digest(&e.batch),
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

    fn next_local_id(&mut self) -> u64 {
        self.next_local += 1;
        (self.epoch << 40) | self.next_local
    }

    fn end_epoch(&mut self, now: u64, out: &mut Outbox<TpbftMsg>) {
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

    /// Route own transaction `id` to its member for this attempt.
    pub(super) fn send_tx(&mut self, now: u64, id: u64, out: &mut Outbox<TpbftMsg>) {
        let Some((tx, tries)) = self.mine.get(&id).cloned() else {
            return;
        };
        let c = self.committee.len().max(1) as u64;
        let slot = (u64::from(tx.origin) + tx.id + u64::from(tries)) % c;
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
    fn submit(&mut self, now: u64, tx: &Arc<Tx>, out: &mut Outbox<TpbftMsg>) {
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

    /// Record prepare statements and turn two valid conflicting ones into a proof.
    fn watch(&mut self, msg: &PbftMsg) {
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
                batch_digest(batch),
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
                self.watch(msg);
                self.run_inner(now, out, |r, o| {
                    r.on_message(now, local_from as NodeId, msg, o)
                });
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
        self.mine.insert(input.id, (tx, 0));
        self.send_tx(now, input.id, out);
        self.wake(now, out);
    }

    fn drain_committed(&mut self) -> Vec<TpbftOut> {
        std::mem::take(&mut self.outputs)
    }
}

/// A built T-PBFT network.
pub struct TpbftBuilt {
    pub nodes: Vec<TpbftSimNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub cfg: TpbftConfig,
}

impl TpbftBuilt {
    pub fn honest(&self, id: NodeId) -> Option<TpbftNode> {
        self.ring
            .signer(id)
            .map(|s| TpbftNode::new(self.cfg, s, self.keys.clone()))
    }
}

/// `n` honest T-PBFT nodes with keys derived from `seed`.
pub fn build(seed: u64, cfg: TpbftConfig, scheme: Scheme) -> TpbftBuilt {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7bf7_5eed);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let nodes = (0..cfg.n)
        .filter_map(|id| ring.signer(id))
        .map(|s| Box::new(TpbftNode::new(cfg, s, keys.clone())) as TpbftSimNode)
        .collect();
    TpbftBuilt {
        nodes,
        keys,
        ring,
        cfg,
    }
}

fn out_key(o: &TpbftOut) -> Vec<u8> {
    encode(o)
}

/// Agreement on the whole log (transactions and epoch changes with committee and trust), no
/// transaction applied twice, integrity (an honest origin's transaction is what it submitted),
/// no false accusation.
pub fn safety_invariants() -> Vec<Box<dyn Invariant<TxSubmit, TpbftOut>>> {
    vec![
        Box::new(PrefixAgreement::new(out_key)),
        Box::new(NoDuplicates::new(|o: &TpbftOut| match o {
            TpbftOut::Tx { origin, id, .. } => (0u8, u64::from(*origin), *id),
            TpbftOut::Epoch { epoch, .. } => (1u8, *epoch, 0),
        })),
        Box::new(OnCommit::new(
            "integrity/submitted",
            |ctx: &crate::sim::invariants::Ctx<'_, TxSubmit>, node, o: &TpbftOut| {
                let TpbftOut::Tx {
                    origin, id, digest, ..
                } = o
                else {
                    return Ok(());
                };
                if !ctx.honest.contains(origin) {
                    return Ok(());
                }
                let ok = ctx.inputs.get(origin).is_some_and(|i| {
                    i.iter().any(|(_, s)| {
                        s.id == *id && crate::sim::crypto::hash_parts(&[&s.payload]) == *digest
                    })
                });
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "node {node} applied ({origin}, {id}) never submitted"
                    ))
                }
            },
        )),
        Box::new(NoFalseAccusation),
    ]
}

/// Liveness after GST: every correct node applies every correct origin's transaction within
/// `deadline_ms` of `max(GST, submission)`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<TxSubmit, TpbftOut>> {
    Box::new(crate::sim::invariants::Liveness::new(
        |origin, _, s: &TxSubmit| Some((origin, s.id)),
        |o: &TpbftOut| o.tx_key().unwrap_or((NodeId::MAX, u64::MAX)),
        deadline_ms,
    ))
}
