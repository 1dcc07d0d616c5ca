//! Bullshark as a [`HostedEngine`]: a client transaction goes to one validator's worker (sealed
//! into its next batch, referenced by its next header); each validator's committed sequence
//! (certificates, then their batches' transactions, leader by leader) is numbered as it drains, so
//! the host's cross-replica check compares entry `i` of every honest validator's log. The
//! equivocating-author mutator sends a second signed header for the same `(author, round)` to a
//! minority of the validators.

use std::sync::Arc;

use dwcp_engines::bullshark::{self, BullsharkConfig, BullsharkMsg, Header, Ordered, Submit};
use dwcp_engines::sim::crypto::{hash_parts, Keyring, PublicKeys};
use dwcp_engines::sim::outbox::Send;
use dwcp_engines::sim::protocol::{NodeId, Outbox, Protocol, TimerId};
use dwcp_engines::sim::wire::Wire;
use serde_json::{json, Value};

use super::engines::{keyring, silent};
use super::{Behaviour, CommitRef, HostedEngine, Mutator};

/// One entry of a validator's committed sequence, with its index in that sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub index: u64,
    pub entry: Ordered,
}

impl Wire for Logged {
    fn wire(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.index.to_le_bytes());
        self.entry.wire(buf);
    }
    fn kind(&self) -> &'static str {
        self.entry.kind()
    }
}

/// A validator whose outputs carry their log index (every honest validator commits the same
/// sequence from its start: none restarts in process).
pub struct BullsharkReplica {
    pub v: bullshark::Validator,
    next: u64,
}

impl Protocol for BullsharkReplica {
    type Msg = BullsharkMsg;
    type Input = Submit;
    type Output = Logged;
    fn on_start(&mut self, now: u64, out: &mut Outbox<BullsharkMsg>) {
        self.v.on_start(now, out);
    }
    fn on_message(
        &mut self,
        now: u64,
        from: NodeId,
        m: &BullsharkMsg,
        o: &mut Outbox<BullsharkMsg>,
    ) {
        self.v.on_message(now, from, m, o);
    }
    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<BullsharkMsg>) {
        self.v.on_timer(now, id, out);
    }
    fn on_input(&mut self, now: u64, input: Submit, out: &mut Outbox<BullsharkMsg>) {
        self.v.on_input(now, input, out);
    }
    fn drain_committed(&mut self) -> Vec<Logged> {
        self.v
            .drain_committed()
            .into_iter()
            .map(|entry| {
                let index = self.next;
                self.next += 1;
                Logged { index, entry }
            })
            .collect()
    }
}

/// Bullshark: `n = 3f + 1` validators, one worker each.
pub struct Bullshark {
    cfg: BullsharkConfig,
    ring: Keyring,
    keys: PublicKeys,
}

impl Bullshark {
    pub fn new(n: u32) -> Self {
        let ring = keyring(n);
        let keys = ring.public();
        let mut cfg = BullsharkConfig::new(n, (n - 1) / 3);
        // A cluster sharing its CPU with the companion: ~10 rounds a second when idle, and waits
        // long enough that a busy machine does not look like a missing leader.
        cfg.max_header_delay_ms = 100;
        cfg.leader_timeout_ms = 1_000;
        cfg.retransmit_ms = 250;
        Self { cfg, ring, keys }
    }
}

impl HostedEngine for Bullshark {
    type P = BullsharkReplica;
    fn name(&self) -> &'static str {
        "bullshark"
    }
    fn n(&self) -> u32 {
        self.cfg.n
    }
    fn f(&self) -> u32 {
        self.cfg.f
    }
    fn replicas(&mut self) -> Vec<BullsharkReplica> {
        (0..self.cfg.n)
            .filter_map(|i| self.ring.signer(i))
            .map(|s| BullsharkReplica {
                v: bullshark::Validator::new(self.cfg, s, self.keys.clone()),
                next: 0,
            })
            .collect()
    }
    /// Into the worker of validator `to` (its next batch).
    fn submit(&mut self, tx: u64, payload: &[u8], to: NodeId) -> Vec<(NodeId, Submit)> {
        vec![(
            to,
            Submit {
                id: tx,
                payload: payload.to_vec(),
            },
        )]
    }
    fn commit_ref(&self, o: &Logged) -> CommitRef {
        let mut buf = Vec::new();
        o.entry.wire(&mut buf);
        let (leader_round, tx) = match &o.entry {
            Ordered::Cert { leader_round, .. } => (*leader_round, None),
            Ordered::Tx {
                leader_round, id, ..
            } => (*leader_round, Some(*id)),
        };
        CommitRef {
            position: (o.index, 0, 0),
            digest: hash_parts(&[b"bullshark-ordered", &buf]),
            tx,
            batch: (leader_round, 0),
        }
    }
    fn msg_kind(&self, m: &BullsharkMsg) -> &'static str {
        m.kind()
    }
    /// No views: a missing leader costs a timeout, not a view change.
    fn view_change(&self, _m: &BullsharkMsg) -> Option<(u64, u64)> {
        None
    }
    /// Height: committed leaders; view: always 0 (the DAG round is in the extras).
    fn replica_status(&self, p: &BullsharkReplica, _decided: u64) -> (u64, u64) {
        (p.v.status().committed_leaders, 0)
    }
    fn extras(&self, p: &BullsharkReplica) -> Value {
        let s = p.v.status();
        json!({
            "round": s.round,
            "last_committed_round": s.last_committed_round,
            "committed_leaders": s.committed_leaders,
            "ordered_certificates": s.ordered_certificates,
            "ordered_txs": s.ordered_txs,
            "dag_vertices": s.dag_vertices,
            "gc_round": s.gc_round,
            "gc_depth": self.cfg.gc_depth,
            "leader_timeouts": s.leader_timeouts,
            "fetches": s.fetches,
            "quorum": self.cfg.quorum(),
            "support": self.cfg.support(),
        })
    }
    fn mutator(&self, replica: NodeId, b: Behaviour) -> Result<Mutator<BullsharkMsg>, String> {
        let signer = self.ring.signer(replica).ok_or("no such replica")?;
        let (n, f) = (self.cfg.n, self.cfg.f);
        match b {
            Behaviour::Silent => Ok(silent()),
            // A second signed header for the same (author, round), to the f validators after it;
            // the other 2f and the author itself get the first, so the first is still certified
            // and its certificate reaches the twin's receivers, who then hold both signatures.
            // (An even split would certify neither header and leave nobody with evidence.)
            Behaviour::Equivocate => Ok(Box::new(move |_, mut s: Send<BullsharkMsg>, _| {
                let twin_to = (s.to + n - replica) % n; // 1..=f: a twin receiver
                if let BullsharkMsg::Header(h) = &*s.msg {
                    if h.round >= 1 && (1..=f).contains(&twin_to) {
                        let mut v: Header = (**h).clone();
                        v.parents.reverse();
                        v.sig = signer.sign(&v.digest());
                        s.msg = Arc::new(BullsharkMsg::Header(Arc::new(v)));
                    }
                }
                vec![s]
            })),
            other => Err(format!("{} is not a Bullshark behaviour", other.as_str())),
        }
    }
}
