//! Building a ProBFT network (signature and VRF keys from the seed) and its checkers.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};

use crate::sim::crypto::{Keyring, PublicKeys, Scheme};
use crate::sim::invariants::{
    Invariant, KeyedAgreement, Liveness, NoDuplicates, NoFalseAccusation, OnCommit,
};
use crate::sim::protocol::NodeId;
use crate::sim::simulator::Node;

use super::replica::{verify_cert_with, SampleCache};
use super::vrf::{VrfPublic, VrfSecret};
use super::{value_digest, Decision, Phase, ProbftConfig, ProbftMsg, Replica, Submit};

/// A replica as the simulator holds it.
pub type ProbftNode = Node<ProbftMsg, Submit, Decision>;

/// A built network: honest replicas, keys, and what is needed to wrap one.
pub struct Built {
    pub nodes: Vec<ProbftNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub vrf: Vec<Arc<VrfSecret>>,
    pub vrf_keys: Arc<Vec<VrfPublic>>,
    /// The VRF verification memo the replicas share (see [`SampleCache`]).
    pub samples: SampleCache,
    pub cfg: ProbftConfig,
    pub byzantine: BTreeSet<NodeId>,
}

/// VRF key pairs for `n` replicas from `rng`.
pub fn vrf_keys(n: u32, rng: &mut impl RngCore) -> (Vec<Arc<VrfSecret>>, Arc<Vec<VrfPublic>>) {
    let mut secrets = Vec::new();
    let mut publics = Vec::new();
    for _ in 0..n {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        // An RFC 8032 seed always gives a key; a failure here would be a library bug.
        if let Ok(sk) = VrfSecret::from_seed(seed) {
            if let Ok(pk) = VrfPublic::from_bytes(&sk.public()) {
                publics.push(pk);
                secrets.push(Arc::new(sk));
            }
        }
    }
    (secrets, Arc::new(publics))
}

/// `n` honest replicas with keys derived from `seed`.
pub fn build(seed: u64, cfg: ProbftConfig, scheme: Scheme) -> Built {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x9b0f_75ee);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let (vrf, vrf_keys) = vrf_keys(cfg.n, &mut rng);
    let mut built = Built {
        nodes: Vec::new(),
        keys,
        ring,
        vrf,
        vrf_keys,
        samples: SampleCache::default(),
        cfg,
        byzantine: BTreeSet::new(),
    };
    built.nodes = (0..cfg.n)
        .filter_map(|id| built.honest(id))
        .map(|r| Box::new(r) as ProbftNode)
        .collect();
    built
}

impl Built {
    /// A fresh honest replica for `id` (to wrap in an adversary).
    pub fn honest(&self, id: NodeId) -> Option<Replica> {
        Some(Replica::new(
            self.cfg,
            self.ring.signer(id)?,
            self.keys.clone(),
            self.vrf.get(id as usize)?.clone(),
            self.vrf_keys.clone(),
            self.samples.clone(),
        ))
    }
}

/// Verify a decision certificate as an outsider would (the spec's quorum, not a planted one).
pub fn verify_decision(
    cfg: &ProbftConfig,
    keys: &PublicKeys,
    vrf_keys: &[VrfPublic],
    d: &Decision,
) -> Result<(), String> {
    if d.phase != Phase::Commit {
        return Err("not a commit certificate".into());
    }
    verify_cert_with(cfg, keys, vrf_keys, &SampleCache::default(), d)
}

/// Agreement per slot, no slot decided twice by a replica, decision-certificate validity, no
/// false accusation.
pub fn safety_invariants(built: &Built) -> Vec<Box<dyn Invariant<Submit, Decision>>> {
    let (cfg, keys, vrf_keys) = (built.cfg, built.keys.clone(), built.vrf_keys.clone());
    // The memo only holds proofs that verified, so sharing it does not weaken the check.
    let memo = built.samples.clone();
    vec![
        Box::new(KeyedAgreement::new(|d: &Decision| {
            (d.slot, value_digest(&d.value))
        })),
        Box::new(NoDuplicates::new(|d: &Decision| d.slot)),
        Box::new(OnCommit::new(
            "certificate-validity",
            move |_, node, d: &Decision| {
                if d.phase != Phase::Commit {
                    return Err(format!(
                        "node {node} slot {}: not a commit certificate",
                        d.slot
                    ));
                }
                verify_cert_with(&cfg, &keys, &vrf_keys, &memo, d)
                    .map_err(|e| format!("node {node} slot {}: {e}", d.slot))
            },
        )),
        Box::new(NoFalseAccusation),
    ]
}

/// Liveness after GST: every correct replica decides every submitted slot within `deadline_ms`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<Submit, Decision>> {
    Box::new(Liveness::new(
        |_, _, s: &Submit| Some(s.slot),
        |d: &Decision| d.slot,
        deadline_ms,
    ))
}
