//! # T-PBFT — PBFT inside a committee chosen by EigenTrust
//!
//! `n` nodes; in each epoch a committee of `c = 3f_c + 1` of them runs the full PBFT core
//! ([`crate::pbft::Replica`], unchanged) among themselves, and the others receive every
//! committed batch with its commit certificate, which they verify before applying it.
//!
//! * **Scoping.** The committee of epoch `e` is a PBFT group of its own: local member `i` is the
//!   `i`-th node of the committee (rank order), and every inner signature is made in the
//!   context `hash("tpbft", e)` ([`crate::sim::crypto::PublicKeys::scoped`]), so a vote of one
//!   epoch never counts in another.
//! * **Transactions.** A node signs its transaction ([`Tx`]) with its own key and sends it to the
//!   committee's primary as it knows it (the next member on every retry, a retry waiting a retry
//!   period doubled per try, at most 8×); the member checks the signature and submits it to its
//!   replica. Every node re-checks the origin's signature when the batch is applied, and a
//!   transaction committed twice (after a retry) is applied once.
//! * **Evidence.** A member that has applied the epoch's first `epoch_len` batches submits, as an
//!   ordinary request, its [`Evidence`]: for each of those batches the commit signatures it holds
//!   (its certificate) and every equivocation it saw (two valid signed prepare statements of one
//!   member for one `(view, seq)`). Applying evidence re-verifies every signature, so a member can
//!   only omit, never invent.
//! * **Epoch boundary.** The epoch ends after the batch in which evidence of `2f_c + 1` distinct
//!   members is complete. Every node then computes, from the committed evidence only, the reports
//!   `s[i][j]` (valid commit signatures of `j` in `i`'s evidence), the EigenTrust vector
//!   ([`trust`]), the faulty set (members with a committed equivocation proof, excluded for good)
//!   and the next committee (top `c` by trust). Honest nodes apply the same log, so they compute
//!   the same vector bit for bit and switch at the same point of the log.
//! * **Demotion.** An equivocating member is proven faulty by its own signatures and leaves at the
//!   next boundary; a silent member signs nothing, so it earns only the pre-trust share, ties with
//!   the nodes outside, and yields its seat to one of them (ties prefer non-members).
//! * **Catch-up.** Members forward each executed batch (null batches included) to the
//!   non-members (each batch to each non-member from one member, rotating with the sequence
//!   number, so a withholding member leaves gaps that later batches reveal). Any node keeps
//!   the applied batches and answers a `Pull` with them; a node that sees a gap, has its own
//!   transactions outstanding, or (a member) stopped moving, pulls from the nodes in turn, and an
//!   idle node keeps pulling on a slow heartbeat (`catchup.rs`), so a node that missed
//!   the last forwarded batches, or a member left behind when its committee ended the epoch,
//!   catches up without any new traffic.
//!
//! Not durable: a T-PBFT node does not rebuild from stable storage after a crash (the inner PBFT
//! state is per epoch). No hash maps, no clock or RNG reads.

mod catchup;
mod checks;
mod epoch;
mod node;
pub mod trust;
mod txs;
mod wire;

use std::sync::Arc;

pub use checks::{build, liveness_invariant, safety_invariants, TpbftBuilt};
pub use node::{TpbftNode, TpbftSimNode};

use crate::pbft::{LedgerEntry, PbftConfig, PbftMsg};
use crate::sim::crypto::{hash_parts, Digest32};
use crate::sim::protocol::NodeId;

/// Parameters shared by all nodes of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpbftConfig {
    pub n: u32,
    /// Committee size `c = 3f_c + 1`.
    pub c: u32,
    /// Batches per epoch before evidence is submitted.
    pub epoch_len: u64,
    /// EigenTrust pre-trust weight `a`.
    pub alpha: f64,
    /// Retry period for an origin's own transactions and for pulls.
    pub retry_ms: u64,
    /// Ticks without progress after which the retry timer stops.
    pub idle_rounds: u32,
    /// The committee's PBFT parameters (`n = c`, `f = f_c`).
    pub inner: PbftConfig,
}

impl TpbftConfig {
    pub fn new(n: u32, c: u32) -> Self {
        let f_c = (c.saturating_sub(1)) / 3;
        Self {
            n,
            c,
            epoch_len: 8,
            alpha: 0.15,
            retry_ms: 150,
            idle_rounds: 20,
            inner: PbftConfig::new(c, f_c),
        }
    }

    pub fn f_c(&self) -> u32 {
        self.inner.f
    }

    /// `2f_c + 1`.
    pub fn quorum(&self) -> usize {
        (2 * self.inner.f + 1) as usize
    }
}

/// The signing context of epoch `e`'s committee.
pub fn epoch_context(epoch: u64) -> Digest32 {
    hash_parts(&[b"tpbft-epoch", &epoch.to_le_bytes()])
}

/// A transaction, signed by its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub origin: NodeId,
    pub id: u64,
    pub payload: Arc<[u8]>,
    pub sig: [u8; 64],
}

/// What an origin signs for its transaction: the statement over the payload's digest
/// ([`tx_statement_of`]), so a node that applies it hashes the payload once for both the
/// signature check and the output's digest.
pub fn tx_statement(origin: NodeId, id: u64, payload: &[u8]) -> Vec<u8> {
    tx_statement_of(origin, id, &hash_parts(&[payload]))
}

/// The transaction statement from the payload digest `hash_parts(&[payload])`.
pub fn tx_statement_of(origin: NodeId, id: u64, payload_digest: &Digest32) -> Vec<u8> {
    hash_parts(&[
        b"tpbft-tx",
        &origin.to_le_bytes(),
        &id.to_le_bytes(),
        payload_digest,
    ])
    .to_vec()
}

/// What is submitted to a node: a transaction it signs as origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSubmit {
    pub id: u64,
    pub payload: Vec<u8>,
}

/// The commit signatures a member holds for one batch of the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceEntry {
    pub seq: u64,
    pub view: u64,
    pub digest: Digest32,
    /// `(local member, signature over the commit statement)`.
    pub sigs: Vec<(u32, [u8; 64])>,
}

/// Two valid signatures of one member on prepare statements for one `(view, seq)` with
/// different digests (a primary's pre-prepare signs the same statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquivocationProof {
    pub signer: u32,
    pub view: u64,
    pub seq: u64,
    pub a: (Digest32, [u8; 64]),
    pub b: (Digest32, [u8; 64]),
}

/// A member's account of the epoch, committed as an ordinary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub epoch: u64,
    pub entries: Vec<EvidenceEntry>,
    pub proofs: Vec<EquivocationProof>,
}

/// What a committee request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Tx(Tx),
    Evidence(Evidence),
}

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpbftMsg {
    /// A PBFT message of the committee of `epoch` (member ids inside are local).
    Inner { epoch: u64, msg: PbftMsg },
    /// An origin's transaction for a member to submit.
    Tx(Arc<Tx>),
    /// Executed batches with their commit certificates, by epoch.
    Committed(Arc<Vec<(u64, LedgerEntry)>>),
    /// Asks for the batches from `(epoch, seq)` on.
    Pull { epoch: u64, seq: u64 },
}

/// What a node commits, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpbftOut {
    /// An applied transaction and where it sits.
    Tx {
        epoch: u64,
        seq: u64,
        pos: u32,
        origin: NodeId,
        id: u64,
        digest: Digest32,
        /// The transaction's bytes (for the application; the digest is their hash, and the
        /// canonical encoding carries the digest only).
        payload: Arc<[u8]>,
    },
    /// An epoch began: its committee (rank order), the trust vector it was chosen by (parts per
    /// 10⁹) and the nodes proven faulty so far.
    Epoch {
        epoch: u64,
        committee: Vec<NodeId>,
        trust_ppb: Vec<u64>,
        faulty: Vec<NodeId>,
    },
}

impl TpbftOut {
    /// `(origin, id)` of a transaction output.
    pub fn tx_key(&self) -> Option<(NodeId, u64)> {
        match self {
            Self::Tx { origin, id, .. } => Some((*origin, *id)),
            Self::Epoch { .. } => None,
        }
    }
}
