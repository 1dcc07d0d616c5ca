//! One validator (primary + one worker) on the sim [`Protocol`]. Longer than 400 lines: the
//! header → vote → certificate pipeline and its fetch-and-wait paths read best in one place.
//!
//! Timers: [`T_BATCH`] seals the worker's batch, [`T_PROPOSE`] retries a proposal held back by
//! the header delay or the leader wait, [`T_RETRANSMIT`] re-sends the own uncertified header,
//! the own latest certificate (so a validator that missed a round catches up by fetching its
//! ancestry) and outstanding fetches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::protocol::{AlarmKind, NodeId, Outbox, Protocol, TimerId};

use super::dag::{Dag, InsertError};
use super::order::Orderer;
use super::{
    leader_of, vote_statement, Batch, BullsharkConfig, BullsharkMsg, Certificate, Header, Ordered,
    Submit, Tx, Vote,
};

const T_BATCH: TimerId = 1;
const T_PROPOSE: TimerId = 2;
const T_RETRANSMIT: TimerId = 3;

/// What the host (the companion's HTTP face, a benchmark) may show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The round of the last own header.
    pub round: u64,
    pub last_committed_round: Option<u64>,
    pub committed_leaders: u64,
    pub ordered_certificates: u64,
    pub ordered_txs: u64,
    pub dag_vertices: usize,
    pub gc_round: u64,
    pub waiting_certificates: usize,
    pub waiting_headers: usize,
    pub alarms: u64,
    /// Proposals made without the even round's leader, after the leader timeout.
    pub leader_timeouts: u64,
    /// Fetch requests sent (missing parents or batches).
    pub fetches: u64,
}

/// My header of the current round and the votes it collected.
struct Proposal {
    header: Arc<Header>,
    digest: Digest32,
    votes: BTreeMap<NodeId, [u8; 64]>,
    certified: bool,
}

pub struct Validator {
    cfg: BullsharkConfig,
    signer: NodeSigner,
    keys: PublicKeys,
    dag: Dag,
    orderer: Orderer,
    mine: Option<Proposal>,
    proposed_at: u64,
    /// Round whose quorum is waiting for its leader, and since when.
    leader_wait: Option<(u64, u64)>,
    pending: Vec<Tx>,
    pending_bytes: usize,
    /// Own sealed batches not yet in a certified header.
    ready: Vec<Digest32>,
    /// Every batch held, with the highest round that referenced it (for collection).
    batches: BTreeMap<Digest32, (Arc<Batch>, u64)>,
    /// First header digest seen per `(round, author)` (equivocation evidence).
    seen_headers: BTreeMap<(u64, NodeId), Digest32>,
    /// Slots already reported as equivocations (one alarm each).
    accused: BTreeSet<(u64, NodeId)>,
    /// The one vote given per `(round, author)`.
    voted: BTreeMap<(u64, NodeId), (Digest32, [u8; 64])>,
    verified_headers: BTreeSet<Digest32>,
    waiting_headers: BTreeMap<(u64, NodeId), (Arc<Header>, NodeId)>,
    waiting_certs: BTreeMap<Digest32, Arc<Certificate>>,
    missing_certs: BTreeMap<Digest32, NodeId>,
    missing_batches: BTreeMap<Digest32, NodeId>,
    committed: Vec<Ordered>,
    ordered_txs: u64,
    alarms: u64,
    leader_timeouts: u64,
    fetches: u64,
}

impl Validator {
    pub fn new(cfg: BullsharkConfig, signer: NodeSigner, keys: PublicKeys) -> Self {
        Self {
            orderer: Orderer::new(&cfg),
            cfg,
            signer,
            keys,
            dag: Dag::new(),
            mine: None,
            proposed_at: 0,
            leader_wait: None,
            pending: Vec::new(),
            pending_bytes: 0,
            ready: Vec::new(),
            batches: BTreeMap::new(),
            seen_headers: BTreeMap::new(),
            accused: BTreeSet::new(),
            voted: BTreeMap::new(),
            verified_headers: BTreeSet::new(),
            waiting_headers: BTreeMap::new(),
            waiting_certs: BTreeMap::new(),
            missing_certs: BTreeMap::new(),
            missing_batches: BTreeMap::new(),
            committed: Vec::new(),
            ordered_txs: 0,
            alarms: 0,
            leader_timeouts: 0,
            fetches: 0,
        }
    }

    pub fn status(&self) -> Status {
        Status {
            round: self.mine.as_ref().map_or(0, |m| m.header.round),
            last_committed_round: self.orderer.last_committed_round(),
            committed_leaders: self.orderer.leaders.len() as u64,
            ordered_certificates: self.orderer.ordered_count,
            ordered_txs: self.ordered_txs,
            dag_vertices: self.dag.len(),
            gc_round: self.dag.gc_round(),
            waiting_certificates: self.waiting_certs.len(),
            waiting_headers: self.waiting_headers.len(),
            alarms: self.alarms,
            leader_timeouts: self.leader_timeouts,
            fetches: self.fetches,
        }
    }

    /// `(round, author)` of every committed leader, in commit order.
    pub fn committed_leaders(&self) -> &[(u64, NodeId)] {
        &self.orderer.leaders
    }

    fn me(&self) -> NodeId {
        self.signer.id()
    }

    // ---- worker -------------------------------------------------------------------------

    fn seal(&mut self, out: &mut Outbox<BullsharkMsg>) {
        if self.pending.is_empty() {
            return;
        }
        out.cancel_timer(T_BATCH);
        let batch = Arc::new(Batch {
            author: self.me(),
            txs: std::mem::take(&mut self.pending),
        });
        self.pending_bytes = 0;
        let d = batch.digest();
        let round = self.mine.as_ref().map_or(0, |m| m.header.round);
        self.batches.insert(d, (Arc::clone(&batch), round));
        self.ready.push(d);
        let me = self.me();
        let msg = Arc::new(BullsharkMsg::Batch(batch));
        for to in (0..self.cfg.n).filter(|t| *t != me) {
            out.send_shared(to, Arc::clone(&msg));
        }
    }

    fn on_batch(&mut self, now: u64, b: &Arc<Batch>, out: &mut Outbox<BullsharkMsg>) {
        let d = b.digest();
        if self.batches.contains_key(&d) {
            return;
        }
        let round = self.mine.as_ref().map_or(0, |m| m.header.round);
        self.batches.insert(d, (Arc::clone(b), round));
        if self.missing_batches.remove(&d).is_some() {
            self.settle(now, b.author, out);
            self.retry_headers(out);
        }
    }

    // ---- proposing ----------------------------------------------------------------------

    fn try_propose(&mut self, now: u64, out: &mut Outbox<BullsharkMsg>) {
        let q = self.cfg.quorum();
        let next = match (&self.mine, self.dag.highest_quorum_round(q)) {
            (None, _) => 0,
            (Some(m), Some(t)) if t >= m.header.round => t + 1,
            _ => return,
        };
        if next > 0 {
            let t = next - 1;
            let leader_in = leader_of(t, self.cfg.n).is_none_or(|a| self.dag.at(t, a).is_some());
            if !leader_in {
                let since = match self.leader_wait {
                    Some((r, s)) if r == t => s,
                    _ => {
                        self.leader_wait = Some((t, now));
                        now
                    }
                };
                if now < since + self.cfg.leader_timeout_ms {
                    out.set_timer(T_PROPOSE, since + self.cfg.leader_timeout_ms);
                    return;
                }
                self.leader_timeouts += 1;
            }
            let due = self.proposed_at + self.cfg.max_header_delay_ms;
            if self.ready.is_empty() && self.pending.is_empty() && now < due {
                out.set_timer(T_PROPOSE, due);
                return;
            }
        }
        self.seal(out);
        self.propose(now, next, out);
    }

    fn propose(&mut self, now: u64, round: u64, out: &mut Outbox<BullsharkMsg>) {
        let parents: Vec<Digest32> = match round.checked_sub(1) {
            Some(p) => self.dag.round(p).map(|c| c.digest).collect(),
            None => Vec::new(),
        };
        let weak = round
            .checked_sub(1)
            .map_or_else(Vec::new, |p| self.dag.unreferenced_below(p));
        // An abandoned (uncertified) header's batches go into this one.
        let mut batches = match &self.mine {
            Some(m) if !m.certified => m.header.batches.clone(),
            _ => Vec::new(),
        };
        batches.append(&mut self.ready);
        for b in &batches {
            if let Some(e) = self.batches.get_mut(b) {
                e.1 = e.1.max(round);
            }
        }
        let mut h = Header {
            author: self.me(),
            round,
            batches,
            parents,
            weak,
            sig: [0; 64],
        };
        let digest = h.digest();
        h.sig = self.signer.sign(&digest);
        let header = Arc::new(h);
        self.mine = Some(Proposal {
            header: Arc::clone(&header),
            digest,
            votes: BTreeMap::new(),
            certified: false,
        });
        self.proposed_at = now;
        self.leader_wait = None;
        out.cancel_timer(T_PROPOSE);
        out.broadcast(BullsharkMsg::Header(header));
    }

    fn on_vote(&mut self, v: &Vote, out: &mut Outbox<BullsharkMsg>) {
        let q = self.cfg.quorum();
        let Some(m) = self.mine.as_mut() else {
            return;
        };
        if m.certified || v.header != m.digest || m.votes.contains_key(&v.voter) {
            return;
        }
        if !self
            .keys
            .verify(v.voter, &vote_statement(&v.header), &v.sig)
        {
            return;
        }
        m.votes.insert(v.voter, v.sig);
        if m.votes.len() < q {
            return;
        }
        m.certified = true;
        let votes = m.votes.iter().map(|(i, s)| (*i, *s)).collect();
        let cert = Arc::new(Certificate::new((*m.header).clone(), votes));
        out.broadcast(BullsharkMsg::Cert(cert));
    }

    // ---- voting -------------------------------------------------------------------------

    /// Check the signature once, and the one-header-per-slot rule: a second header for a slot
    /// raises one alarm; a certified one is still admitted (2f + 1 voted for it).
    fn admit_header(
        &mut self,
        h: &Header,
        digest: &Digest32,
        certified: bool,
        out: &mut Outbox<BullsharkMsg>,
    ) -> bool {
        if h.author >= self.cfg.n || h.round < self.dag.gc_round() {
            return false;
        }
        if !self.verified_headers.contains(digest) {
            if !self.keys.verify(h.author, digest, &h.sig) {
                self.alarm(out, AlarmKind::BadSignature, None, "header signature");
                return false;
            }
            self.verified_headers.insert(*digest);
        }
        let slot = (h.round, h.author);
        match self.seen_headers.get(&slot) {
            Some(first) if first != digest => {
                if self.accused.insert(slot) {
                    let detail =
                        format!("two signed headers of {} for round {}", h.author, h.round);
                    self.alarm(out, AlarmKind::Equivocation, Some(h.author), detail);
                }
                if certified {
                    self.seen_headers.insert(slot, *digest);
                }
                certified
            }
            Some(_) => true,
            None => {
                self.seen_headers.insert((h.round, h.author), *digest);
                true
            }
        }
    }

    fn well_formed(&self, h: &Header) -> bool {
        let distinct = |v: &[Digest32]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
        let parents_ok = if h.round == 0 {
            h.parents.is_empty() && h.weak.is_empty()
        } else {
            h.parents.len() >= self.cfg.quorum() && h.parents.len() <= self.cfg.n as usize
        };
        let weak_ok = h.weak.iter().all(|(r, _)| r + 1 < h.round);
        parents_ok && weak_ok && distinct(&h.parents) && distinct(&h.batches)
    }

    fn on_header(&mut self, from: NodeId, h: &Arc<Header>, out: &mut Outbox<BullsharkMsg>) {
        let digest = h.digest();
        if !self.admit_header(h, &digest, false, out) || !self.well_formed(h) {
            return;
        }
        if let Some((d, sig)) = self.voted.get(&(h.round, h.author)) {
            if *d == digest {
                let vote = Vote {
                    header: digest,
                    round: h.round,
                    voter: self.me(),
                    sig: *sig,
                };
                out.send(h.author, BullsharkMsg::Vote(vote));
            }
            return;
        }
        let probe = Certificate::new((**h).clone(), Vec::new());
        let missing = self.dag.missing(&probe);
        let lacking: Vec<Digest32> = h
            .batches
            .iter()
            .filter(|b| !self.batches.contains_key(*b))
            .copied()
            .collect();
        if !missing.is_empty() || !lacking.is_empty() {
            self.fetch(missing, lacking, from, h.author, out);
            self.waiting_headers
                .insert((h.round, h.author), (Arc::clone(h), from));
            return;
        }
        // Distinct authors of round r − 1, all present: the parents are a real quorum.
        let authors: BTreeSet<NodeId> = h
            .parents
            .iter()
            .filter_map(|p| self.dag.get(p))
            .filter(|c| h.round > self.dag.gc_round() && c.round() + 1 == h.round)
            .map(|c| c.author())
            .collect();
        if h.round > self.dag.gc_round() && authors.len() < self.cfg.quorum() {
            return;
        }
        let sig = self.signer.sign(&vote_statement(&digest));
        self.voted.insert((h.round, h.author), (digest, sig));
        let vote = Vote {
            header: digest,
            round: h.round,
            voter: self.me(),
            sig,
        };
        out.send(h.author, BullsharkMsg::Vote(vote));
    }

    // ---- certificates -------------------------------------------------------------------

    fn verify_cert(&mut self, c: &Certificate, out: &mut Outbox<BullsharkMsg>) -> bool {
        if !self.admit_header(&c.header, &c.digest, true, out) || !self.well_formed(&c.header) {
            return false;
        }
        let voters: BTreeSet<NodeId> = c.votes.iter().map(|(v, _)| *v).collect();
        if voters.len() != c.votes.len() || voters.len() < self.cfg.quorum() {
            return false;
        }
        let st = vote_statement(&c.digest);
        let items: Vec<(NodeId, &[u8], &[u8; 64])> = c
            .votes
            .iter()
            .map(|(v, s)| (*v, st.as_slice(), s))
            .collect();
        if !self.keys.verify_all(&items) {
            self.alarm(out, AlarmKind::BadSignature, None, "certificate votes");
            return false;
        }
        true
    }

    fn on_cert(
        &mut self,
        now: u64,
        from: NodeId,
        c: &Arc<Certificate>,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        if self.dag.contains(&c.digest) || self.waiting_certs.contains_key(&c.digest) {
            return;
        }
        if c.round() < self.dag.gc_round() || c.digest != c.header.digest() {
            return;
        }
        // My own certificate, handed to myself: its votes were verified one by one.
        let own = from == self.me()
            && self
                .mine
                .as_ref()
                .is_some_and(|m| m.certified && m.digest == c.digest);
        if !own && !self.verify_cert(c, out) {
            return;
        }
        self.missing_certs.remove(&c.digest);
        self.waiting_certs.insert(c.digest, Arc::clone(c));
        self.settle(now, from, out);
    }

    /// Insert every waiting certificate whose parents and batches are here; fetch the rest.
    fn settle(&mut self, now: u64, from: NodeId, out: &mut Outbox<BullsharkMsg>) {
        let mut progress = true;
        let mut inserted = false;
        while progress {
            progress = false;
            let ready: Vec<Arc<Certificate>> = self.waiting_certs.values().cloned().collect();
            for c in ready {
                let lacking: Vec<Digest32> = c
                    .header
                    .batches
                    .iter()
                    .filter(|b| !self.batches.contains_key(*b))
                    .copied()
                    .collect();
                let missing = self.dag.missing(&c);
                if !missing.is_empty() || !lacking.is_empty() {
                    self.fetch(missing, lacking, from, c.author(), out);
                    continue;
                }
                self.waiting_certs.remove(&c.digest);
                match self.dag.insert(Arc::clone(&c)) {
                    Ok(()) => {}
                    Err(InsertError::SlotTaken) => {
                        let detail =
                            format!("two certificates of {} for round {}", c.author(), c.round());
                        self.alarm(out, AlarmKind::Equivocation, Some(c.author()), detail);
                        continue;
                    }
                    Err(_) => continue,
                }
                for b in &c.header.batches {
                    if let Some(e) = self.batches.get_mut(b) {
                        e.1 = e.1.max(c.round());
                    }
                }
                progress = true;
                inserted = true;
                let done = self.orderer.try_order(&self.dag, c.round());
                self.emit(done);
            }
        }
        if inserted {
            self.collect();
            self.retry_headers(out);
            self.try_propose(now, out);
        }
    }

    fn emit(&mut self, done: Vec<super::order::CommittedLeader>) {
        for l in done {
            let leader_round = l.leader.round();
            for c in l.certs {
                self.committed.push(Ordered::Cert {
                    leader_round,
                    round: c.round(),
                    author: c.author(),
                    digest: c.digest,
                });
                for b in &c.header.batches {
                    let Some((batch, _)) = self.batches.get(b) else {
                        continue; // unreachable: a certificate enters the DAG with its batches
                    };
                    for t in &batch.txs {
                        self.ordered_txs += 1;
                        self.committed.push(Ordered::Tx {
                            leader_round,
                            round: c.round(),
                            origin: c.author(),
                            id: t.id,
                            payload: Arc::clone(&t.payload),
                        });
                    }
                }
            }
        }
    }

    fn collect(&mut self) {
        let h = self.orderer.horizon();
        if h <= self.dag.gc_round() {
            return;
        }
        self.dag.gc(h);
        self.seen_headers = self.seen_headers.split_off(&(h, 0));
        self.accused = self.accused.split_off(&(h, 0));
        self.voted = self.voted.split_off(&(h, 0));
        self.waiting_headers = self.waiting_headers.split_off(&(h, 0));
        self.waiting_certs.retain(|_, c| c.round() >= h);
        self.batches.retain(|_, (_, r)| *r >= h);
        if self.verified_headers.len()
            > 64 * self.cfg.n as usize * self.cfg.gc_depth.max(1) as usize
        {
            self.verified_headers.clear();
        }
    }

    /// Headers waiting for parents or batches are reconsidered after every arrival.
    fn retry_headers(&mut self, out: &mut Outbox<BullsharkMsg>) {
        let hs: Vec<(Arc<Header>, NodeId)> = std::mem::take(&mut self.waiting_headers)
            .into_values()
            .collect();
        for (h, from) in hs {
            self.on_header(from, &h, out);
        }
    }

    // ---- fetching -----------------------------------------------------------------------

    fn fetch(
        &mut self,
        certs: Vec<Digest32>,
        batches: Vec<Digest32>,
        from: NodeId,
        author: NodeId,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        let me = self.me();
        let hint = if from != me { from } else { author };
        let new_c: Vec<Digest32> = certs
            .into_iter()
            .filter(|d| !self.missing_certs.contains_key(d) && !self.waiting_certs.contains_key(d))
            .collect();
        let new_b: Vec<Digest32> = batches
            .into_iter()
            .filter(|d| !self.missing_batches.contains_key(d))
            .collect();
        if hint == me {
            return;
        }
        for d in &new_c {
            self.missing_certs.insert(*d, hint);
        }
        for d in &new_b {
            self.missing_batches.insert(*d, author);
        }
        self.fetches += u64::from(!new_c.is_empty()) + u64::from(!new_b.is_empty());
        if !new_c.is_empty() {
            out.send(hint, BullsharkMsg::FetchCerts(new_c));
        }
        if !new_b.is_empty() && author != me {
            out.send(author, BullsharkMsg::FetchBatches(new_b));
        }
    }

    fn on_fetch_certs(&mut self, from: NodeId, ds: &[Digest32], out: &mut Outbox<BullsharkMsg>) {
        for d in ds.iter().take(1024) {
            if let Some(c) = self.dag.get(d).or_else(|| self.waiting_certs.get(d)) {
                out.send(from, BullsharkMsg::Cert(Arc::clone(c)));
            }
        }
    }

    fn on_fetch_batches(&mut self, from: NodeId, ds: &[Digest32], out: &mut Outbox<BullsharkMsg>) {
        for d in ds.iter().take(1024) {
            if let Some((b, _)) = self.batches.get(d) {
                out.send(from, BullsharkMsg::Batch(Arc::clone(b)));
            }
        }
    }

    fn retransmit(&mut self, now: u64, out: &mut Outbox<BullsharkMsg>) {
        out.set_timer(T_RETRANSMIT, now + self.cfg.retransmit_ms);
        let me = self.me();
        let n = self.cfg.n;
        if let Some(m) = &self.mine {
            if !m.certified {
                for to in (0..n).filter(|t| *t != me && !m.votes.contains_key(t)) {
                    out.send_shared(to, Arc::new(BullsharkMsg::Header(Arc::clone(&m.header))));
                }
            }
        }
        // The latest own certificate: a validator that missed rounds fetches its ancestry.
        let latest = self.dag.highest_round().and_then(|top| {
            (self.dag.gc_round()..=top)
                .rev()
                .find_map(|r| self.dag.at(r, me))
                .cloned()
        });
        if let Some(c) = latest {
            for to in (0..n).filter(|t| *t != me) {
                out.send_shared(to, Arc::new(BullsharkMsg::Cert(Arc::clone(&c))));
            }
        }
        // Ask the next peer for what is still missing (the hint may be dead or lying).
        let rotate = |h: NodeId| {
            let mut x = (h + 1) % n;
            if x == me {
                x = (x + 1) % n;
            }
            x
        };
        let mut by_peer: BTreeMap<NodeId, (Vec<Digest32>, Vec<Digest32>)> = BTreeMap::new();
        for (d, h) in self.missing_certs.iter_mut() {
            *h = rotate(*h);
            by_peer.entry(*h).or_default().0.push(*d);
        }
        for (d, h) in self.missing_batches.iter_mut() {
            *h = rotate(*h);
            by_peer.entry(*h).or_default().1.push(*d);
        }
        for (p, (c, b)) in by_peer {
            if !c.is_empty() {
                out.send(p, BullsharkMsg::FetchCerts(c));
            }
            if !b.is_empty() {
                out.send(p, BullsharkMsg::FetchBatches(b));
            }
        }
        self.try_propose(now, out);
    }

    fn alarm(
        &mut self,
        out: &mut Outbox<BullsharkMsg>,
        kind: AlarmKind,
        suspect: Option<NodeId>,
        detail: impl Into<String>,
    ) {
        self.alarms += 1;
        out.alarm(kind, suspect, detail);
    }
}

impl Protocol for Validator {
    type Msg = BullsharkMsg;
    type Input = Submit;
    type Output = Ordered;

    fn on_start(&mut self, now: u64, out: &mut Outbox<BullsharkMsg>) {
        out.set_timer(T_RETRANSMIT, now + self.cfg.retransmit_ms);
        self.try_propose(now, out);
    }

    fn on_message(
        &mut self,
        now: u64,
        from: NodeId,
        msg: &BullsharkMsg,
        out: &mut Outbox<BullsharkMsg>,
    ) {
        if from >= self.cfg.n {
            return;
        }
        match msg {
            BullsharkMsg::Batch(b) => self.on_batch(now, b, out),
            BullsharkMsg::Header(h) => self.on_header(from, h, out),
            BullsharkMsg::Vote(v) => self.on_vote(v, out),
            BullsharkMsg::Cert(c) => self.on_cert(now, from, c, out),
            BullsharkMsg::FetchCerts(ds) => self.on_fetch_certs(from, ds, out),
            BullsharkMsg::FetchBatches(ds) => self.on_fetch_batches(from, ds, out),
        }
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<BullsharkMsg>) {
        match id {
            T_BATCH => {
                self.seal(out);
                self.try_propose(now, out);
            }
            T_PROPOSE => self.try_propose(now, out),
            T_RETRANSMIT => self.retransmit(now, out),
            _ => {}
        }
    }

    fn on_input(&mut self, now: u64, input: Submit, out: &mut Outbox<BullsharkMsg>) {
        if self.pending.is_empty() {
            out.set_timer(T_BATCH, now + self.cfg.batch_delay_ms);
        }
        self.pending_bytes += input.payload.len();
        self.pending.push(Tx {
            id: input.id,
            payload: Arc::from(input.payload),
        });
        if self.pending_bytes >= self.cfg.batch_bytes {
            self.seal(out);
            self.try_propose(now, out);
        }
    }

    fn drain_committed(&mut self) -> Vec<Ordered> {
        std::mem::take(&mut self.committed)
    }
}
