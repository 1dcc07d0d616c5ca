//! # Bullshark (Spiegelman et al., CCS 2022) on a Narwhal-style DAG, sans-IO
//!
//! `n ≥ 3f + 1` validators build a DAG of certified headers and order it without extra messages.
//!
//! * **Data dissemination (Narwhal).** Each validator's worker (one, inside the validator) seals
//!   submitted transactions into a [`Batch`] and broadcasts it; headers carry batch *digests*
//!   only. A [`Header`] of round `r` is signed by its author and references ≥ `2f + 1`
//!   certificates of round `r − 1` (strong parents; round 0 has none) and older certificates not
//!   yet referenced in the author's DAG (weak links, so a late certificate is ordered eventually).
//!   A validator votes at most once per `(author, round)` — and only once it holds every parent
//!   and every batch (it fetches what is missing, by digest). `2f + 1` votes form a
//!   [`Certificate`]; a certificate enters the local [`dag::Dag`] only when its parents and
//!   batches are present, so the DAG is always causally closed and every batch of it is at hand.
//! * **Ordering (Bullshark, [`order`]).** A pure function of the local DAG: the leader of an even
//!   round `r` is validator `(r / 2) mod n`; it commits when `f + 1` certificates of round `r + 1`
//!   reference it (support); then earlier uncommitted leaders reachable from it by strong paths
//!   are ordered first, and each leader's causal history (minus what is already ordered, minus
//!   what is below the garbage-collection horizon) is flattened by `(round, author)`.
//! * **Garbage collection.** Rounds below `last committed leader round − gc_depth` are dropped
//!   from the DAG, the vote records and the batch store; the horizon is a function of the commit
//!   sequence, so every validator applies it at the same place of the order.
//! * **Faults.** Two signed headers of one author for one round ⇒ an `Equivocation` alarm naming
//!   the author (the evidence is its own two signatures). Honest validators never sign two.
//!
//! Not done: durable state (a crashed validator stays down: restarting without its vote records
//! could make it vote twice); the odd-round wait of the paper's partially synchronous variant
//! (only the even-round wait for the leader's certificate, [`BullsharkConfig::leader_timeout_ms`]).

pub mod checks;
pub mod dag;
pub mod order;
mod validator;
mod wire;

use std::sync::Arc;

pub use checks::{build, liveness_invariant, safety_invariants, Built, BullsharkNode};
pub use validator::{Status, Validator};

use crate::sim::crypto::{hash_parts, Digest32};
use crate::sim::protocol::NodeId;

/// A deliberate defect, for showing that the checkers catch it (never use otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit a leader with `f` supporting certificates instead of `f + 1`.
    SupportF,
    /// Commit a leader without ordering the earlier uncommitted leaders linked to it.
    NoLinkedLeaders,
}

/// Parameters shared by all validators of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BullsharkConfig {
    pub n: u32,
    pub f: u32,
    /// A batch is sealed at this many payload bytes…
    pub batch_bytes: usize,
    /// …or this long after its first transaction.
    pub batch_delay_ms: u64,
    /// A header without new batches waits this long after the previous one.
    pub max_header_delay_ms: u64,
    /// A header without a full sealed batch waits this long after the previous one (fewer,
    /// fuller rounds under load: less signing per transaction; 0 = propose at once).
    pub min_header_delay_ms: u64,
    /// How long a validator with `2f + 1` certificates of an even round waits for the leader's.
    pub leader_timeout_ms: u64,
    /// Retransmission of the own header, the latest certificate and outstanding fetches.
    pub retransmit_ms: u64,
    /// Rounds kept below the last committed leader.
    pub gc_depth: u64,
    pub bug: Option<PlantedBug>,
}

impl BullsharkConfig {
    pub fn new(n: u32, f: u32) -> Self {
        Self {
            n,
            f,
            batch_bytes: 64 * 1024,
            batch_delay_ms: 5,
            max_header_delay_ms: 20,
            min_header_delay_ms: 0,
            leader_timeout_ms: 60,
            retransmit_ms: 50,
            gc_depth: 50,
            bug: None,
        }
    }

    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.bug = Some(bug);
        self
    }

    /// `2f + 1`: parents per header, votes per certificate.
    pub fn quorum(&self) -> usize {
        (2 * self.f + 1) as usize
    }

    /// Certificates of the next round that commit a leader: `f + 1` (or `f` under the bug).
    pub fn support(&self) -> usize {
        if self.bug == Some(PlantedBug::SupportF) {
            self.f as usize
        } else {
            (self.f + 1) as usize
        }
    }
}

/// The leader of `round`: round-robin on even rounds, none on odd ones.
pub fn leader_of(round: u64, n: u32) -> Option<NodeId> {
    (round.is_multiple_of(2) && n > 0).then(|| ((round / 2) % u64::from(n)) as NodeId)
}

/// One transaction inside a batch; its origin is the batch's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub id: u64,
    pub payload: Arc<[u8]>,
}

/// A worker's batch, disseminated whole and referenced by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub author: NodeId,
    pub txs: Vec<Tx>,
}

impl Batch {
    pub fn digest(&self) -> Digest32 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"bullshark-batch");
        h.update(self.author.to_le_bytes());
        h.update((self.txs.len() as u64).to_le_bytes());
        for t in &self.txs {
            h.update(t.id.to_le_bytes());
            h.update((t.payload.len() as u64).to_le_bytes());
            h.update(&t.payload);
        }
        h.finalize().into()
    }
}

/// A signed DAG vertex proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub author: NodeId,
    pub round: u64,
    pub batches: Vec<Digest32>,
    /// Certificates of `round − 1` (≥ `2f + 1`, distinct authors).
    pub parents: Vec<Digest32>,
    /// Older certificates not yet referenced in the author's DAG, with their rounds (so a
    /// receiver knows which are below its garbage-collection horizon).
    pub weak: Vec<(u64, Digest32)>,
    pub sig: [u8; 64],
}

impl Header {
    /// What the author signs; also the certificate's identity.
    pub fn digest(&self) -> Digest32 {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(8 + self.batches.len());
        let (a, r) = (self.author.to_le_bytes(), self.round.to_le_bytes());
        let counts = [
            (self.batches.len() as u64).to_le_bytes(),
            (self.parents.len() as u64).to_le_bytes(),
        ];
        parts.extend([
            b"bullshark-header".as_slice(),
            &a,
            &r,
            &counts[0],
            &counts[1],
        ]);
        parts.extend(self.batches.iter().map(|d| d.as_slice()));
        parts.extend(self.parents.iter().map(|d| d.as_slice()));
        let weak: Vec<u8> = self
            .weak
            .iter()
            .flat_map(|(r, d)| r.to_le_bytes().into_iter().chain(d.iter().copied()))
            .collect();
        parts.push(&weak);
        hash_parts(&parts)
    }

    /// Strong then weak parents.
    pub fn all_parents(&self) -> impl Iterator<Item = &Digest32> {
        self.parents.iter().chain(self.weak.iter().map(|(_, d)| d))
    }
}

/// What a voter signs for a header.
pub fn vote_statement(header: &Digest32) -> Digest32 {
    hash_parts(&[b"bullshark-vote", header])
}

/// A vote for one header, sent to its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub header: Digest32,
    pub round: u64,
    pub voter: NodeId,
    pub sig: [u8; 64],
}

/// A header with `2f + 1` votes (distinct voters) over its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub header: Header,
    pub votes: Vec<(NodeId, [u8; 64])>,
    /// `header.digest()`, computed once (not on the wire).
    pub digest: Digest32,
}

impl Certificate {
    pub fn new(header: Header, votes: Vec<(NodeId, [u8; 64])>) -> Self {
        let digest = header.digest();
        Self {
            header,
            votes,
            digest,
        }
    }
    pub fn round(&self) -> u64 {
        self.header.round
    }
    pub fn author(&self) -> NodeId {
        self.header.author
    }
}

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BullsharkMsg {
    Batch(Arc<Batch>),
    Header(Arc<Header>),
    Vote(Vote),
    Cert(Arc<Certificate>),
    FetchCerts(Vec<Digest32>),
    FetchBatches(Vec<Digest32>),
}

/// A transaction submitted to a validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub id: u64,
    pub payload: Vec<u8>,
}

/// The committed sequence: each ordered certificate, followed by its batches' transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordered {
    Cert {
        leader_round: u64,
        round: u64,
        author: NodeId,
        digest: Digest32,
    },
    Tx {
        leader_round: u64,
        round: u64,
        origin: NodeId,
        id: u64,
        payload: Arc<[u8]>,
    },
}

impl Ordered {
    /// `(origin, id)` of a transaction.
    pub fn tx_key(&self) -> Option<(NodeId, u64)> {
        match self {
            Self::Tx { origin, id, .. } => Some((*origin, *id)),
            Self::Cert { .. } => None,
        }
    }
}
