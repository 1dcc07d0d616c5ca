//! # PBFT — Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI 1999) as a sans-IO core
//!
//! `n ≥ 3f + 1` replicas order client requests into a log of batches. Quorum `q = 2f + 1`: two
//! quorums intersect in at least `f + 1` replicas, hence in one honest replica, which never signs
//! two digests for one `(view, seq)`.
//!
//! * **Requests.** A client sends a request to the primary only; it retransmits a request
//!   still unexecuted after `retransmit_ms` to every replica (and sends to every replica during
//!   a view change), so a primary that ignores it is noticed by the backups' view timers.
//!   Requests inside a pre-prepare (or a state-transfer entry, or a prepared proof) that a
//!   replica has not verified yet are verified in one ed25519 batch verification.
//! * **Normal case.** The primary of view `v` (replica `v mod n`) batches signed requests and
//!   sends `PrePrepare(v, seq, batch)`, signing the prepare statement `(v, seq, digest)` itself.
//!   A backup that accepts it (right view, inside the watermarks, every request correctly signed
//!   by its client, no other digest accepted or voted for this `(v, seq)`) persists its vote and
//!   signs a `Prepare`. `q` distinct valid signatures on the prepare statement make the batch
//!   *prepared* (a prepare certificate); the replica then persists the certificate and signs a
//!   `Commit`. `q` commit signatures make it *committed* (a commit certificate), and batches are
//!   executed strictly in sequence order. Clients are replicas: a client that executes its own
//!   request is done (it holds the commit certificate); one that is behind retransmits the
//!   request, every replica that executed it answers with a signed `Reply`, and the client
//!   accepts a result on `f + 1` matching replies ([`ReplyCollector`]). No reply is sent
//!   otherwise (a signature and a message per request and replica saved).
//! * **Checkpoints.** Every `checkpoint_interval` sequence numbers a replica signs the digest of
//!   its state (a hash chain over the executed batches). `q` matching checkpoint signatures make
//!   it *stable*: the protocol log at or below it is garbage-collected, and the low watermark
//!   moves to it (the high one is `low + window`). A replica that finds itself behind fetches the
//!   executed batches with their commit certificates from a peer and verifies each certificate
//!   before executing it — state transfer that trusts no single peer.
//! * **View change.** A replica with an unexecuted request whose timer expires moves to view
//!   `v + 1` and broadcasts a signed `ViewChange` carrying its stable checkpoint (with its
//!   certificate) and a prepare certificate for every prepared sequence number above it. The new
//!   primary collects `q` of them and sends `NewView`, re-proposing for each sequence number the
//!   prepared batch of the highest view (or a null batch); replicas recompute that choice from the
//!   enclosed view changes and reject a `NewView` that differs. A replica joins a higher view when
//!   `f + 1` replicas ask for one (so one spammer cannot move anybody), and timeouts double per
//!   failed view.
//!
//! Durable state ([`recovery`]): the view, every prepare and commit vote, prepare certificates,
//! the executed ledger with its certificates, the stable checkpoint, the primary's next sequence
//! number and the client's unanswered requests — each written before the message it justifies
//! leaves. No hash maps, no clock or RNG reads: the simulator or a transport drives it.

mod checks;
mod client;
mod ledger;
mod normal;
mod recovery;
mod replica;
mod requests;
mod viewchange;
pub(crate) mod wire;

use std::sync::Arc;

pub use checks::{build, liveness_invariant, safety_invariants, Built, PbftNode};
pub use client::ReplyCollector;
pub use replica::Replica;

use crate::sim::crypto::{hash_parts, Certificate, Digest32};
use crate::sim::protocol::NodeId;

/// A deliberate defect, for showing that the checkers catch it (never use otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Prepare and commit quorums of `2f` instead of `2f + 1`.
    QuorumTwoF,
}

/// Parameters shared by all replicas of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PbftConfig {
    pub n: u32,
    pub f: u32,
    /// Most requests per batch.
    pub batch_max: usize,
    /// How long the primary waits for a batch to fill.
    pub batch_delay_ms: u64,
    pub checkpoint_interval: u64,
    /// High watermark = low watermark + `window`.
    pub window: u64,
    pub view_timeout_ms: u64,
    pub retransmit_ms: u64,
    /// Retransmission ticks after the last sign of work.
    pub idle_rounds: u32,
    pub bug: Option<PlantedBug>,
}

impl PbftConfig {
    pub fn new(n: u32, f: u32) -> Self {
        Self {
            n,
            f,
            batch_max: 64,
            batch_delay_ms: 2,
            checkpoint_interval: 8,
            window: 32,
            view_timeout_ms: 300,
            retransmit_ms: 60,
            idle_rounds: 20,
            bug: None,
        }
    }

    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.bug = Some(bug);
        self
    }

    /// `2f + 1` (or `2f` under the planted bug).
    pub fn quorum(&self) -> usize {
        if self.has(PlantedBug::QuorumTwoF) {
            (2 * self.f) as usize
        } else {
            (2 * self.f + 1) as usize
        }
    }

    pub fn primary(&self, view: u64) -> NodeId {
        (view % u64::from(self.n)) as NodeId
    }

    pub(crate) fn has(&self, bug: PlantedBug) -> bool {
        self.bug == Some(bug)
    }
}

/// A client request, signed by its client (here: the replica it was submitted to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub client: NodeId,
    pub id: u64,
    pub payload: Arc<[u8]>,
    pub sig: [u8; 64],
}

/// What is submitted to a replica: the request it signs as a client and broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub id: u64,
    pub payload: Vec<u8>,
}

pub type Batch = Arc<Vec<Request>>;

/// A prepared batch and its certificate (`q` signatures on the prepare statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedProof {
    pub view: u64,
    pub seq: u64,
    pub batch: Batch,
    pub cert: Arc<Certificate>,
}

/// An executed batch and its commit certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub view: u64,
    pub seq: u64,
    pub batch: Batch,
    pub cert: Arc<Certificate>,
}

/// A stable checkpoint: `q` signatures on `(seq, state)`; seq 0 needs none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stable {
    pub seq: u64,
    pub state: Digest32,
    pub cert: Option<Arc<Certificate>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    pub view: u64,
    pub signer: NodeId,
    pub executed: u64,
    pub stable: Stable,
    pub prepared: Vec<PreparedProof>,
    pub sig: [u8; 64],
}

/// The new primary's proof (`q` view changes) and its re-proposals, each signed as a pre-prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewView {
    pub view: u64,
    pub vcs: Vec<Arc<ViewChange>>,
    pub pre: Vec<(u64, Batch, [u8; 64])>,
}

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbftMsg {
    Request(Arc<Request>),
    PrePrepare {
        view: u64,
        seq: u64,
        batch: Batch,
        sig: [u8; 64],
    },
    Prepare {
        view: u64,
        seq: u64,
        digest: Digest32,
        signer: NodeId,
        sig: [u8; 64],
    },
    Commit {
        view: u64,
        seq: u64,
        digest: Digest32,
        signer: NodeId,
        sig: [u8; 64],
    },
    Checkpoint {
        seq: u64,
        state: Digest32,
        signer: NodeId,
        sig: [u8; 64],
    },
    ViewChange(Arc<ViewChange>),
    NewView(Arc<NewView>),
    Reply {
        client: NodeId,
        id: u64,
        seq: u64,
        signer: NodeId,
        sig: [u8; 64],
    },
    Fetch {
        from_seq: u64,
    },
    Entries(Arc<Vec<LedgerEntry>>),
}

/// One executed request, with the batch and commit certificate that justify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub view: u64,
    pub seq: u64,
    pub pos: u32,
    pub batch: Batch,
    pub cert: Arc<Certificate>,
}

impl Decided {
    pub fn request(&self) -> Option<&Request> {
        self.batch.get(self.pos as usize)
    }
    /// `(client, id)`, or `(u32::MAX, u64::MAX)` for a malformed output.
    pub fn key(&self) -> (NodeId, u64) {
        self.request()
            .map_or((u32::MAX, u64::MAX), |r| (r.client, r.id))
    }
}

pub fn request_statement(client: NodeId, id: u64, payload: &[u8]) -> Vec<u8> {
    hash_parts(&[
        b"pbft-req",
        &client.to_le_bytes(),
        &id.to_le_bytes(),
        payload,
    ])
    .to_vec()
}

pub fn request_digest(r: &Request) -> Digest32 {
    hash_parts(&[
        b"pbft-req-digest",
        &r.client.to_le_bytes(),
        &r.id.to_le_bytes(),
        &r.payload,
    ])
}

pub fn batch_digest(batch: &[Request]) -> Digest32 {
    let ds: Vec<Digest32> = batch.iter().map(request_digest).collect();
    let parts: Vec<&[u8]> = std::iter::once(b"pbft-batch".as_slice())
        .chain(ds.iter().map(|d| d.as_slice()))
        .collect();
    hash_parts(&parts)
}

pub fn prepare_statement(view: u64, seq: u64, digest: &Digest32) -> Vec<u8> {
    hash_parts(&[
        b"pbft-prepare",
        &view.to_le_bytes(),
        &seq.to_le_bytes(),
        digest,
    ])
    .to_vec()
}

pub fn commit_statement(view: u64, seq: u64, digest: &Digest32) -> Vec<u8> {
    hash_parts(&[
        b"pbft-commit",
        &view.to_le_bytes(),
        &seq.to_le_bytes(),
        digest,
    ])
    .to_vec()
}

pub fn checkpoint_statement(seq: u64, state: &Digest32) -> Vec<u8> {
    hash_parts(&[b"pbft-checkpoint", &seq.to_le_bytes(), state]).to_vec()
}

pub fn reply_statement(client: NodeId, id: u64, seq: u64) -> Vec<u8> {
    hash_parts(&[
        b"pbft-reply",
        &client.to_le_bytes(),
        &id.to_le_bytes(),
        &seq.to_le_bytes(),
    ])
    .to_vec()
}

/// What a view-change signer signs: everything but the proofs' signatures (which verify alone).
pub fn view_change_statement(vc: &ViewChange) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = vec![
        b"pbft-vc".to_vec(),
        vc.view.to_le_bytes().to_vec(),
        vc.signer.to_le_bytes().to_vec(),
        vc.executed.to_le_bytes().to_vec(),
        vc.stable.seq.to_le_bytes().to_vec(),
        vc.stable.state.to_vec(),
    ];
    for p in &vc.prepared {
        parts.push(p.view.to_le_bytes().to_vec());
        parts.push(p.seq.to_le_bytes().to_vec());
        parts.push(batch_digest(&p.batch).to_vec());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    hash_parts(&refs).to_vec()
}

/// The state after executing `digest` at `seq` on `prev`.
pub fn next_state(prev: &Digest32, seq: u64, digest: &Digest32) -> Digest32 {
    hash_parts(&[b"pbft-state", prev, &seq.to_le_bytes(), digest])
}
