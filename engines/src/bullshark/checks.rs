//! Building a Bullshark network for the simulator, and its checkers.

use std::collections::BTreeSet;

use rand::SeedableRng;

use crate::sim::crypto::{Keyring, PublicKeys, Scheme};
use crate::sim::invariants::{
    Ctx, Invariant, Liveness, NoFalseAccusation, OnCommit, PrefixAgreement,
};
use crate::sim::protocol::NodeId;
use crate::sim::simulator::Node;
use crate::sim::trace::digest_of;

use super::{BullsharkConfig, BullsharkMsg, Ordered, Submit, Validator};

/// A validator as the simulator holds it.
pub type BullsharkNode = Node<BullsharkMsg, Submit, Ordered>;

/// A built network: honest validators and their keys.
pub struct Built {
    pub nodes: Vec<BullsharkNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub cfg: BullsharkConfig,
}

/// `n` honest validators with keys derived from `seed`.
pub fn build(seed: u64, cfg: BullsharkConfig, scheme: Scheme) -> Built {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xb011_5a4c);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let nodes = (0..cfg.n)
        .filter_map(|id| ring.signer(id))
        .map(|s| Box::new(Validator::new(cfg, s, keys.clone())) as BullsharkNode)
        .collect();
    Built {
        nodes,
        keys,
        ring,
        cfg,
    }
}

impl Built {
    /// A fresh honest validator for `id` (to wrap in an adversary).
    pub fn honest(&self, id: NodeId) -> Option<Validator> {
        self.ring
            .signer(id)
            .map(|s| Validator::new(self.cfg, s, self.keys.clone()))
    }
}

/// Agreement on the whole committed sequence (certificates and transactions, by the digest of
/// their encoding: two different orders are a violation → `DataIntegrityViolation`), integrity
/// (a transaction of an honest origin was submitted to it with that payload, and is committed
/// once per validator), and no false accusation.
pub fn safety_invariants() -> Vec<Box<dyn Invariant<Submit, Ordered>>> {
    let mut seen: BTreeSet<(NodeId, NodeId, u64)> = BTreeSet::new();
    vec![
        Box::new(PrefixAgreement::new(|o: &Ordered| digest_of(o))),
        Box::new(OnCommit::new(
            "integrity",
            move |ctx: &Ctx<'_, Submit>, node, o: &Ordered| {
                let Ordered::Tx {
                    origin,
                    id,
                    payload,
                    ..
                } = o
                else {
                    return Ok(());
                };
                if !ctx.honest.contains(origin) {
                    return Ok(());
                }
                if !seen.insert((node, *origin, *id)) {
                    return Err(format!("node {node} committed ({origin}, {id}) twice"));
                }
                let submitted = ctx.inputs.get(origin).is_some_and(|i| {
                    i.iter()
                        .any(|(_, s)| s.id == *id && *s.payload == **payload)
                });
                if submitted {
                    Ok(())
                } else {
                    Err(format!(
                        "node {node} committed ({origin}, {id}), never submitted so"
                    ))
                }
            },
        )),
        Box::new(NoFalseAccusation),
    ]
}

/// Every transaction submitted to a correct validator is committed by every correct validator
/// within `deadline_ms` of `max(GST, submission)`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<Submit, Ordered>> {
    Box::new(Liveness::new(
        |origin: NodeId, _, s: &Submit| Some((origin, s.id)),
        |o: &Ordered| o.tx_key().unwrap_or((NodeId::MAX, u64::MAX)),
        deadline_ms,
    ))
}
