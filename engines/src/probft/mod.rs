//! # ProBFT — probabilistic BFT with VRF-sampled quorums (Avelãs et al., PODC 2024)
//!
//! Single-value consensus per *slot* (independent instances), as a sans-IO state machine on
//! [`crate::sim::Protocol`]. `n ≥ 3f + 1` replicas; the leader of `(slot, view)` is replica
//! `(slot + view) mod n`.
//!
//! * **Normal case.** The leader signs and broadcasts `Propose(slot, view, value)`. A replica that
//!   accepts it (right leader, valid signature, no other value accepted in this view) sends a
//!   signed `Prepare` — to a *sample* of `s = min(n, ⌈o·√n⌉)` recipients, chosen from the
//!   output of its own VRF ([`vrf`], RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI) on
//!   `(slot, view, phase)`; the VRF proof travels in the vote and is covered by the signature.
//!   `q = min(s, ⌈l·√n⌉)` matching Prepares (counted from distinct members) make the replica
//!   *prepared* (it keeps them as a prepared certificate) and it sends a signed `Commit` to its
//!   commit-phase sample; `q` matching Commits decide the value. A receiver checks membership,
//!   the signature, the VRF proof, and that it is in the sender's sample (a message relayed to
//!   a replica outside the sample does not count). Every vote also carries the leader's
//!   signature on the proposal, so a replica can adopt the proposal from a vote, and two
//!   proposals of one leader for one view are evidence of equivocation.
//! * **View change.** A replica whose slot is not decided when its timer expires moves to view
//!   `v + 1` and broadcasts a signed `ViewChange` with its highest prepared certificate (each
//!   enclosed Prepare is re-verified, including that the certificate's holder was in its
//!   sender's sample). The new leader waits for a deterministic quorum of `n − f` of them and
//!   re-proposes the value of the highest prepared certificate (or its own input); replicas
//!   recompute that choice from the enclosed view changes and refuse a proposal that differs.
//!   `f + 1` view changes for a higher view make a replica join it; timeouts double per view.
//! * **Catch-up.** A replica that decided answers a `ViewChange` for that slot with its decision
//!   certificate (the `q` commits it received); the receiver verifies every commit, and that the
//!   certificate's holder was in each committer's sample, before adopting it.
//!
//! Parameters `o` and `l` are configurable ([`ProbftConfig::o`], [`ProbftConfig::l`]). Safety
//! holds with high probability, not always: `engines/src/bin/sim_probft.rs` (`make sim-probft`)
//! measures the rate of conflicting decisions under an equivocating leader with colluders.
//!
//! Signals: a forged VRF proof (signed by its sender) or an equivocation raises an
//! [`crate::sim::Alarm`] (→ `ByzantineAttackDetected`, [`ENGINE`]); a decision certificate that
//! conflicts with a replica's own decision is kept as a `DataIntegrityViolation`
//! ([`Replica::take_integrity_events`]), and the simulator's agreement checker maps a conflicting
//! decision to the same trigger.
//!
//! Not done here: durable state (a crash-recovered replica would forget its votes, so the
//! simulator runs use crash-stop only) and a TCP transport.

mod checks;
pub mod montecarlo;
mod replica;
pub mod vrf;
mod wire;

use std::sync::Arc;

pub use checks::{
    build, liveness_invariant, safety_invariants, verify_decision, Built, ProbftNode,
};
pub use replica::{Replica, SampleCache};

use crate::sim::crypto::{hash_parts, Digest32};
use crate::sim::protocol::NodeId;

/// The engine name in signals and routes.
pub const ENGINE: &str = "probft";

/// A deliberately unsafe variant, for showing that the simulator catches it (never use
/// otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The "hollow" design: votes broadcast to everyone, no VRF, and a deterministic quorum of
    /// `⌈√n⌉` matching votes.
    DeterministicSqrtQuorum,
}

/// Parameters shared by all replicas of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbftConfig {
    pub n: u32,
    pub f: u32,
    /// Sample size factor: each vote goes to `⌈o·√n⌉` VRF-chosen replicas.
    pub o: f64,
    /// Quorum factor: `⌈l·√n⌉` matching votes prepare / decide.
    pub l: f64,
    pub view_timeout_ms: u64,
    /// First retransmission interval of a view; it doubles with each retransmission.
    pub retransmit_ms: u64,
    /// Largest timeout after doubling.
    pub max_timeout_ms: u64,
    pub bug: Option<PlantedBug>,
}

/// Default sample factor `o`.
pub const DEFAULT_O: f64 = 2.0;
/// Default quorum factor `l`.
pub const DEFAULT_L: f64 = 1.5;

impl ProbftConfig {
    pub fn new(n: u32, f: u32) -> Self {
        Self {
            n,
            f,
            o: DEFAULT_O,
            l: DEFAULT_L,
            view_timeout_ms: 400,
            retransmit_ms: 250,
            max_timeout_ms: 6_400,
            bug: None,
        }
    }

    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.bug = Some(bug);
        self
    }

    pub fn with_ol(mut self, o: f64, l: f64) -> Self {
        self.o = o;
        self.l = l;
        self
    }

    /// Votes per phase per replica: `min(n, ⌈o·√n⌉)` (everyone under the planted bug).
    pub fn sample_size(&self) -> usize {
        if self.bug.is_some() {
            return self.n as usize;
        }
        sample_size(self.n, self.o)
    }

    /// Matching votes needed: `min(s, ⌈l·√n⌉)` (`⌈√n⌉` under the planted bug).
    pub fn quorum(&self) -> usize {
        if self.bug.is_some() {
            return (f64::from(self.n)).sqrt().ceil() as usize;
        }
        quorum(self.n, self.o, self.l)
    }

    /// The deterministic view-change quorum `n − f`.
    pub fn vc_quorum(&self) -> usize {
        (self.n - self.f) as usize
    }

    pub fn leader(&self, slot: u64, view: u64) -> NodeId {
        (slot.wrapping_add(view) % u64::from(self.n)) as NodeId
    }

    pub(crate) fn sampled(&self) -> bool {
        self.bug.is_none()
    }
}

/// `min(n, ⌈o·√n⌉)`.
pub fn sample_size(n: u32, o: f64) -> usize {
    ((o * f64::from(n).sqrt()).ceil() as usize).min(n as usize)
}

/// `min(sample, ⌈l·√n⌉)`.
pub fn quorum(n: u32, o: f64, l: f64) -> usize {
    ((l * f64::from(n).sqrt()).ceil() as usize).min(sample_size(n, o))
}

/// The two sampled phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Prepare = 1,
    Commit = 2,
}

/// What a replica is asked to propose for a slot (when it leads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub slot: u64,
    pub value: Vec<u8>,
}

/// The leader's signed proposal; for `view > 0` with the `n − f` view changes that justify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub slot: u64,
    pub view: u64,
    pub value: Arc<[u8]>,
    pub sig: [u8; 64],
    pub justify: Vec<Arc<ViewChange>>,
}

/// A signed Prepare or Commit with the sender's VRF proof for `(slot, view, phase)` and the
/// leader's signature on the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub phase: Phase,
    pub slot: u64,
    pub view: u64,
    pub value: Arc<[u8]>,
    pub signer: NodeId,
    pub proof: [u8; 80],
    pub sig: [u8; 64],
    pub leader_sig: [u8; 64],
}

/// `q` matching votes of one phase received by `holder` (a prepared certificate or a decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumCert {
    pub phase: Phase,
    pub slot: u64,
    pub view: u64,
    pub value: Arc<[u8]>,
    pub holder: NodeId,
    pub votes: Vec<Arc<Vote>>,
}

/// A signed request to move `slot` to `view`, with the signer's highest prepared certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    pub slot: u64,
    pub view: u64,
    pub signer: NodeId,
    pub prepared: Option<Arc<QuorumCert>>,
    pub sig: [u8; 64],
}

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbftMsg {
    Propose(Arc<Proposal>),
    Vote(Arc<Vote>),
    ViewChange(Arc<ViewChange>),
    /// A decision certificate (commit phase), sent to a replica asking for a view change.
    Decided(Arc<QuorumCert>),
}

/// A decided slot: the value and the commit certificate that justifies it.
pub type Decision = Arc<QuorumCert>;

pub fn value_digest(value: &[u8]) -> Digest32 {
    hash_parts(&[b"probft-value", value])
}

pub fn proposal_statement(slot: u64, view: u64, digest: &Digest32) -> Vec<u8> {
    hash_parts(&[
        b"probft-propose",
        &slot.to_le_bytes(),
        &view.to_le_bytes(),
        digest,
    ])
    .to_vec()
}

pub fn vote_statement(
    phase: Phase,
    slot: u64,
    view: u64,
    digest: &Digest32,
    proof: &[u8; 80],
) -> Vec<u8> {
    hash_parts(&[
        b"probft-vote",
        &[phase as u8],
        &slot.to_le_bytes(),
        &view.to_le_bytes(),
        digest,
        proof,
    ])
    .to_vec()
}

/// The VRF input of a sample: `(slot, view, phase)`.
pub fn vrf_alpha(slot: u64, view: u64, phase: Phase) -> Vec<u8> {
    let mut a = b"probft-sample".to_vec();
    a.extend_from_slice(&slot.to_le_bytes());
    a.extend_from_slice(&view.to_le_bytes());
    a.push(phase as u8);
    a
}

/// The `s` recipients (sorted) a VRF output selects out of `0..n`: a ChaCha8 stream seeded with
/// the first 32 bytes of `beta` drives a uniform sample without replacement.
pub fn sample_from_beta(beta: &[u8; 64], n: u32, s: usize) -> Vec<NodeId> {
    use rand::SeedableRng;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&beta[..32]);
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(seed);
    let mut ids: Vec<NodeId> = rand::seq::index::sample(&mut rng, n as usize, s.min(n as usize))
        .into_iter()
        .map(|i| i as NodeId)
        .collect();
    ids.sort_unstable();
    ids
}

pub fn view_change_statement(vc: &ViewChange) -> Vec<u8> {
    let (pv, pd) = match &vc.prepared {
        Some(c) => (c.view, value_digest(&c.value)),
        None => (u64::MAX, [0u8; 32]),
    };
    hash_parts(&[
        b"probft-vc",
        &vc.slot.to_le_bytes(),
        &vc.view.to_le_bytes(),
        &vc.signer.to_le_bytes(),
        &pv.to_le_bytes(),
        &pd,
    ])
    .to_vec()
}

/// The value a leader of `view > 0` must propose given the view changes: that of the highest
/// prepared certificate, or `None` (free choice).
pub fn choose_value(vcs: &[Arc<ViewChange>]) -> Option<Arc<[u8]>> {
    vcs.iter()
        .filter_map(|vc| vc.prepared.as_ref())
        .max_by_key(|c| c.view)
        .map(|c| c.value.clone())
}
