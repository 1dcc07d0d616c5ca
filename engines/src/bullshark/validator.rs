//! One validator (primary + one worker) on the sim [`Protocol`]: state, the worker, proposing
//! and collecting votes here; voting, certificates, fetching and collection in [`inbound`].
//!
//! Timers: [`T_BATCH`] seals the worker's batch, [`T_PROPOSE`] retries a proposal held back by
//! the header delay or the leader wait, [`T_RETRANSMIT`] re-sends the own uncertified header,
//! the own latest certificate (so a validator that missed a round catches up by fetching its
//! ancestry) and outstanding fetches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::protocol::{NodeId, Outbox, Protocol, TimerId};

mod inbound;

use super::dag::Dag;
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
            // Pacing: a header carries at least a full batch or waits `min_header_delay_ms`.
            let early = self.proposed_at + self.cfg.min_header_delay_ms;
            if now < early && self.ready.is_empty() {
                out.set_timer(T_PROPOSE, early);
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
