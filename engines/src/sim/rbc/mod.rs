//! # Signed echo broadcast — the simulator's reference protocol
//!
//! Authenticated (signed) echo broadcast after Reiter 1994 / Cachin, Guerraoui, Rodrigues
//! "Introduction to Reliable and Secure Distributed Programming" §3.10, with a final certificate
//! relay for totality. `n` nodes, at most `f` Byzantine, quorum `q = ⌊(n+f)/2⌋ + 1` (2f+1 when
//! n = 3f+1).
//!
//! 1. Origin `o` signs `(o, seq, value)` and sends `Send` to all.
//! 2. A node that receives the first validly signed `Send` for `(o, seq)` signs an `Echo` of the
//!    value's digest and sends it to all. It echoes at most once per instance — across restarts
//!    too: the echo is persisted before it is sent.
//! 3. On `q` echoes from distinct members for one digest, plus the value, it delivers and relays
//!    `Final(value, certificate)`; a valid `Final` makes any node deliver. Deliveries are
//!    persisted, so a replayed `Final` after a restart is not delivered again.
//!
//! Properties with ≤ f Byzantine: consistency (two quorums share ≥ f+1 nodes, so one honest node
//! echoed both — impossible), integrity (deliver once; an honest origin's value is what it
//! signed), certificate validity, and totality/validity after GST via retransmission. With f+1
//! colluders (an equivocating origin plus f double-echoers) two honest nodes can deliver different
//! values: the threshold is tight, and the f+1 test family shows it.
//!
//! [`PlantedBug`] switches on one deliberate defect each; the test suite uses them to show that
//! every checker of the simulator fires on the bug it exists for.

mod byzantine;
mod checks;
mod deliver;
mod honest;
mod node;
mod nodeset;
mod recovery;
pub mod sweep;
mod wire;

use std::sync::Arc;

pub use byzantine::{Behaviour, ByzantineNode};
pub use checks::{build, liveness_invariant, safety_invariants, Built, RbcNode};
pub use honest::HonestNode;

use super::crypto::{hash_parts, Certificate, Digest32};
use super::protocol::NodeId;

/// `(origin, seq)`: one broadcast instance.
pub type InstanceId = (NodeId, u64);
/// A broadcast value, shared rather than copied.
pub type Value = Arc<[u8]>;

/// A deliberate defect of the honest node, for testing the checkers (never use otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Deliver on q − 1 echoes (agreement breaks with f colluders).
    QuorumMinusOne,
    /// Echo a `Send` without checking the origin's signature (forged values get delivered).
    SkipSendSignature,
    /// Deliver on a `Final` without checking its certificate or its statement.
    SkipFinalCheck,
    /// Never retransmit (liveness breaks on a lossy network).
    NoRetransmit,
    /// Blame the unauthenticated network sender for a bad signature.
    AccuseNetworkSender,
    /// Do not persist echoes: after a restart the node echoes a second value.
    ForgetVoteOnRecover,
    /// Do not persist deliveries: after a restart a replayed `Final` is delivered again.
    ForgetDeliveryOnRecover,
}

/// Parameters shared by all nodes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbcConfig {
    pub n: u32,
    pub f: u32,
    pub retransmit_ms: u64,
    /// Cap of an instance's retransmission gap (it doubles from `retransmit_ms`).
    pub retransmit_max_ms: u64,
    /// Retransmission rounds (ticks that resent something) after the last new activity.
    pub retransmit_rounds: u32,
    pub window: u64,
    pub bug: Option<PlantedBug>,
}

impl RbcConfig {
    pub fn new(n: u32, f: u32) -> Self {
        Self {
            n,
            f,
            retransmit_ms: 100,
            retransmit_max_ms: 800,
            retransmit_rounds: 20,
            window: 1024,
            bug: None,
        }
    }

    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.bug = Some(bug);
        self
    }

    /// `⌊(n+f)/2⌋ + 1`: any two quorums intersect in at least f+1 nodes.
    pub fn quorum(&self) -> usize {
        ((self.n + self.f) / 2 + 1) as usize
    }

    pub(crate) fn has(&self, bug: PlantedBug) -> bool {
        self.bug == Some(bug)
    }
}

/// A broadcast request: the node broadcasts `value` with its next sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast(pub Vec<u8>);

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbcMsg {
    Send {
        origin: NodeId,
        seq: u64,
        value: Value,
        sig: [u8; 64],
    },
    Echo {
        origin: NodeId,
        seq: u64,
        digest: Digest32,
        signer: NodeId,
        sig: [u8; 64],
    },
    Final {
        origin: NodeId,
        seq: u64,
        value: Value,
        cert: Arc<Certificate>,
    },
}

/// A delivered broadcast with the certificate that justified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub origin: NodeId,
    pub seq: u64,
    pub value: Value,
    pub cert: Arc<Certificate>,
}

/// The statement an origin signs for `Send`.
pub fn send_statement(origin: NodeId, seq: u64, value: &[u8]) -> Vec<u8> {
    hash_parts(&[
        b"rbc-send",
        &origin.to_le_bytes(),
        &seq.to_le_bytes(),
        value,
    ])
    .to_vec()
}

/// The statement an echoing node signs (also the certificate's statement).
pub fn echo_statement(origin: NodeId, seq: u64, digest: &Digest32) -> Vec<u8> {
    hash_parts(&[
        b"rbc-echo",
        &origin.to_le_bytes(),
        &seq.to_le_bytes(),
        digest,
    ])
    .to_vec()
}

/// The digest a value is echoed under.
pub fn value_digest(value: &[u8]) -> Digest32 {
    hash_parts(&[b"rbc-value", value])
}
