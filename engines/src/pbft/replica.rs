//! The replica: its state, the [`Protocol`] entry points and the retransmission tick.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::protocol::{NodeId, Outbox, Protocol, TimerId};

use super::client::ReplyCollector;
use super::{
    request_statement, Decided, LedgerEntry, NewView, PbftConfig, PbftMsg, PreparedProof, Request,
    Stable, Submit, ViewChange,
};

pub(super) const TICK: TimerId = 1;
pub(super) const VIEW_TIMER: TimerId = 2;
pub(super) const BATCH_TIMER: TimerId = 3;

/// Votes for one `(view, seq)`, by digest then signer.
pub(super) type Votes = BTreeMap<Digest32, BTreeMap<NodeId, [u8; 64]>>;

/// One PBFT replica (also the client of the requests submitted to it).
pub struct Replica {
    pub(super) cfg: PbftConfig,
    pub(super) signer: NodeSigner,
    pub(super) keys: PublicKeys,
    pub(super) view: u64,
    /// A view change to `view` is under way (no normal-case messages accepted).
    pub(super) in_vc: bool,
    pub(super) vc_attempts: u32,
    pub(super) stable: Stable,
    pub(super) next_seq: u64,
    /// Accepted pre-prepares, `(view, seq) → (digest, batch)`.
    pub(super) accepted: BTreeMap<(u64, u64), (Digest32, super::Batch)>,
    pub(super) prepares: BTreeMap<(u64, u64), Votes>,
    pub(super) commits: BTreeMap<(u64, u64), Votes>,
    /// Own prepare votes (durable): `(view, seq) → digest`.
    pub(super) voted: BTreeMap<(u64, u64), Digest32>,
    pub(super) commit_voted: BTreeMap<(u64, u64), Digest32>,
    /// Latest prepare certificate per seq (durable).
    pub(super) proofs: BTreeMap<u64, PreparedProof>,
    /// Committed but maybe not yet executed: seq → entry.
    pub(super) committed: BTreeMap<u64, LedgerEntry>,
    pub(super) executed: u64,
    pub(super) state: Digest32,
    pub(super) ledger: BTreeMap<u64, LedgerEntry>,
    /// Per executed seq, its batch digest and the state after it (kept, like the ledger, so a
    /// batch's payloads are hashed once per replica, not again for checkpoints or wrappers).
    pub(super) digests: BTreeMap<u64, (Digest32, Digest32)>,
    /// Batch digests of the entries in `committed`.
    pub(super) committed_digest: BTreeMap<u64, Digest32>,
    /// Executed requests and the seq that executed them.
    pub(super) done: BTreeMap<(NodeId, u64), u64>,
    /// Known, validly signed, not executed.
    pub(super) pending: BTreeMap<(NodeId, u64), Arc<Request>>,
    pub(super) checkpoints: BTreeMap<u64, Votes>,
    pub(super) vcs: BTreeMap<u64, BTreeMap<NodeId, Arc<ViewChange>>>,
    pub(super) my_vc: Option<Arc<ViewChange>>,
    pub(super) new_view: Option<Arc<NewView>>,
    /// Own client requests awaiting `f + 1` matching replies (durable).
    pub(super) mine: BTreeMap<u64, Arc<Request>>,
    /// When each own request was last sent (retransmitted after `retransmit_ms`).
    pub(super) mine_sent: BTreeMap<u64, u64>,
    /// `executed` at the last tick (a busy replica that did not move asks peers for entries).
    pub(super) tick_executed: u64,
    pub(super) replies: ReplyCollector,
    pub(super) outputs: Vec<Decided>,
    pub(super) idle: u32,
    pub(super) ticking: bool,
    /// The batch timer is armed (a partial batch leaves when it fires, however many requests
    /// arrive meanwhile).
    pub(super) batch_armed: bool,
    pub(super) last_served: BTreeMap<NodeId, u64>,
}

impl Replica {
    pub fn new(cfg: PbftConfig, signer: NodeSigner, keys: PublicKeys) -> Self {
        let replies = ReplyCollector::new(signer.id(), cfg.f as usize + 1, keys.clone());
        Self {
            cfg,
            signer,
            keys,
            view: 0,
            in_vc: false,
            vc_attempts: 0,
            stable: Stable {
                seq: 0,
                state: [0; 32],
                cert: None,
            },
            next_seq: 1,
            accepted: BTreeMap::new(),
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            voted: BTreeMap::new(),
            commit_voted: BTreeMap::new(),
            proofs: BTreeMap::new(),
            committed: BTreeMap::new(),
            executed: 0,
            state: [0; 32],
            ledger: BTreeMap::new(),
            digests: BTreeMap::new(),
            committed_digest: BTreeMap::new(),
            done: BTreeMap::new(),
            pending: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            vcs: BTreeMap::new(),
            my_vc: None,
            new_view: None,
            mine: BTreeMap::new(),
            mine_sent: BTreeMap::new(),
            tick_executed: 0,
            replies,
            outputs: Vec::new(),
            idle: 0,
            ticking: false,
            batch_armed: false,
            last_served: BTreeMap::new(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.signer.id()
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    pub fn executed(&self) -> u64 {
        self.executed
    }

    /// The executed batch at `seq` with its commit certificate (the ledger is kept whole; a
    /// wrapper such as T-PBFT forwards it to non-members).
    pub fn ledger_entry(&self, seq: u64) -> Option<&LedgerEntry> {
        self.ledger.get(&seq)
    }

    /// The digest of the pre-prepare accepted for `(view, seq)`, if its batch is `batch` itself
    /// (the same allocation: a wrapper reuses the hash instead of computing it again).
    pub fn accepted_digest(&self, view: u64, seq: u64, batch: &super::Batch) -> Option<Digest32> {
        self.accepted
            .get(&(view, seq))
            .filter(|(_, b)| Arc::ptr_eq(b, batch))
            .map(|(d, _)| *d)
    }

    /// The batch digest of the executed entry at `seq`.
    pub fn ledger_digest(&self, seq: u64) -> Option<Digest32> {
        self.digests.get(&seq).map(|(d, _)| *d)
    }

    pub fn low_watermark(&self) -> u64 {
        self.stable.seq
    }

    pub(super) fn is_primary(&self) -> bool {
        self.cfg.primary(self.view) == self.id()
    }

    pub(super) fn in_window(&self, seq: u64) -> bool {
        seq > self.stable.seq && seq <= self.stable.seq + self.cfg.window
    }

    /// Keep the retransmission tick running while there is work (and a while after).
    pub(super) fn wake(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        self.idle = 0;
        if !self.ticking {
            self.ticking = true;
            out.set_timer(TICK, now + self.cfg.retransmit_ms);
        }
    }

    pub(super) fn busy(&self) -> bool {
        !self.pending.is_empty() || !self.mine.is_empty() || self.in_vc
    }

    /// (Re)arm the view timer while requests wait; cancel it when none do.
    pub(super) fn arm_view_timer(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        if self.pending.is_empty() && !self.in_vc {
            out.cancel_timer(VIEW_TIMER);
            return;
        }
        let backoff = 1u64 << self.vc_attempts.min(6);
        out.set_timer(VIEW_TIMER, now + self.cfg.view_timeout_ms * backoff);
    }

    fn tick(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        if self.busy() {
            self.idle = 0;
        } else {
            self.idle += 1;
        }
        if self.idle > self.cfg.idle_rounds {
            // Quiet: a slow heartbeat pulls what peers executed beyond us (anti-entropy), so a
            // replica that was cut off catches up even when no new request arrives.
            out.broadcast(PbftMsg::Fetch {
                from_seq: self.executed + 1,
            });
            out.set_timer(TICK, now + self.cfg.retransmit_ms * 10);
            return;
        }
        let due: Vec<Arc<Request>> = self
            .mine
            .values()
            .filter(|r| {
                self.mine_sent
                    .get(&r.id)
                    .is_none_or(|t| now >= t + self.cfg.retransmit_ms)
            })
            .cloned()
            .collect();
        for r in due {
            self.send_request(now, r, true, out);
        }
        if self.executed == self.tick_executed && self.busy() {
            // Work waits and nothing executed for a whole tick: maybe the others executed it
            // already (this replica lost messages) — ask; peers that are not ahead send nothing.
            out.broadcast(PbftMsg::Fetch {
                from_seq: self.executed + 1,
            });
        }
        self.tick_executed = self.executed;
        if self.in_vc {
            if let Some(vc) = &self.my_vc {
                out.broadcast(PbftMsg::ViewChange(Arc::clone(vc)));
            }
        } else {
            self.retransmit_view(out);
        }
        self.retransmit_checkpoint(out);
        self.propose(now, out, true);
        out.set_timer(TICK, now + self.cfg.retransmit_ms);
    }

    fn on_submit(&mut self, now: u64, s: Submit, out: &mut Outbox<PbftMsg>) {
        let me = self.id();
        if self.mine.contains_key(&s.id) || self.done.contains_key(&(me, s.id)) {
            return;
        }
        let sig = self.signer.sign(&request_statement(me, s.id, &s.payload));
        let req = Arc::new(Request {
            client: me,
            id: s.id,
            payload: Arc::from(s.payload),
            sig,
        });
        self.persist_request(&req, out);
        self.mine.insert(s.id, Arc::clone(&req));
        self.send_request(now, req, false, out);
        self.wake(now, out);
    }
}

impl Protocol for Replica {
    type Msg = PbftMsg;
    type Input = Submit;
    type Output = Decided;

    fn on_start(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        self.wake(now, out);
    }

    fn on_recover(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        self.wake(now, out);
        self.arm_view_timer(now, out);
    }

    fn on_message(&mut self, now: u64, _from: NodeId, msg: &PbftMsg, out: &mut Outbox<PbftMsg>) {
        match msg {
            PbftMsg::Request(r) => self.on_request(now, r, out),
            PbftMsg::PrePrepare {
                view,
                seq,
                batch,
                sig,
            } => self.on_pre_prepare(now, *view, *seq, batch, sig, out),
            PbftMsg::Prepare {
                view,
                seq,
                digest,
                signer,
                sig,
            } => self.on_prepare(now, *view, *seq, digest, *signer, sig, out),
            PbftMsg::Commit {
                view,
                seq,
                digest,
                signer,
                sig,
            } => self.on_commit(now, *view, *seq, digest, *signer, sig, out),
            PbftMsg::Checkpoint {
                seq,
                state,
                signer,
                sig,
            } => self.on_checkpoint(now, *seq, state, *signer, sig, out),
            PbftMsg::ViewChange(vc) => self.on_view_change(now, vc, out),
            PbftMsg::NewView(nv) => self.on_new_view(now, nv, out),
            PbftMsg::Reply {
                client,
                id,
                seq,
                signer,
                sig,
            } => self.on_reply(*client, *id, *seq, *signer, sig, out),
            PbftMsg::Fetch { from_seq } => self.on_fetch(now, _from, *from_seq, out),
            PbftMsg::Entries(es) => self.on_entries(now, es, out),
        }
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<PbftMsg>) {
        match id {
            TICK => self.tick(now, out),
            VIEW_TIMER => self.on_view_timeout(now, out),
            BATCH_TIMER => {
                self.batch_armed = false;
                self.propose(now, out, true)
            }
            _ => {}
        }
    }

    fn on_input(&mut self, now: u64, input: Submit, out: &mut Outbox<PbftMsg>) {
        self.on_submit(now, input, out);
    }

    fn drain_committed(&mut self) -> Vec<Decided> {
        std::mem::take(&mut self.outputs)
    }
}

/// Distinct signers of `votes[digest]`, as a certificate over `statement`.
pub(super) fn certificate(
    votes: &BTreeMap<NodeId, [u8; 64]>,
    statement: Vec<u8>,
) -> crate::sim::crypto::Certificate {
    crate::sim::crypto::Certificate {
        statement,
        sigs: votes.iter().map(|(id, s)| (*id, *s)).collect(),
    }
}
