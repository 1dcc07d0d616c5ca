//! Building a broadcast network and its checkers.

use std::collections::BTreeSet;

use rand::SeedableRng;

use super::super::crypto::{Keyring, PublicKeys, Scheme};
use super::super::durable::Durable;
use super::super::invariants::{
    CertificateValidity, Invariant, KeyedAgreement, Liveness, NoDuplicates, NoFalseAccusation,
    OnCommit,
};
use super::super::protocol::NodeId;
use super::super::simulator::Node;
use super::{
    echo_statement, value_digest, Behaviour, Broadcast, ByzantineNode, Delivery, HonestNode,
    RbcConfig, RbcMsg,
};

/// A broadcast node as the simulator holds it.
pub type RbcNode = Node<RbcMsg, Broadcast, Delivery>;

/// A built network: the nodes, the keys, and what is needed to rebuild or wrap a node.
pub struct Built {
    pub nodes: Vec<RbcNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub cfg: RbcConfig,
    pub byzantine: BTreeSet<NodeId>,
}

/// Build `n` nodes (keys derived from `seed`), Byzantine where listed, honest elsewhere.
pub fn build(
    seed: u64,
    cfg: RbcConfig,
    scheme: Scheme,
    byzantine: &[(NodeId, Behaviour)],
) -> Built {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f4_be75);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let mut nodes: Vec<RbcNode> = Vec::new();
    for id in 0..cfg.n {
        let Some(signer) = ring.signer(id) else {
            continue;
        };
        match byzantine.iter().find(|(b, _)| *b == id) {
            Some((_, behaviour)) => nodes.push(Box::new(ByzantineNode::new(
                behaviour.clone(),
                cfg.n,
                signer,
            ))),
            None => nodes.push(Box::new(HonestNode::new(cfg, signer, keys.clone()))),
        }
    }
    let byzantine = byzantine.iter().map(|(b, _)| *b).collect();
    Built {
        nodes,
        keys,
        ring,
        cfg,
        byzantine,
    }
}

impl Built {
    /// A fresh honest node for `id` (to wrap in an adversary, or to replace a node).
    pub fn honest(&self, id: NodeId) -> Option<HonestNode> {
        self.ring
            .signer(id)
            .map(|s| HonestNode::new(self.cfg, s, self.keys.clone()))
    }

    /// Rebuilds honest nodes from their durable store; Byzantine ones stay down.
    pub fn restart(&self) -> impl FnMut(NodeId, &Durable) -> Option<RbcNode> + 'static {
        let (cfg, ring, keys, byz) = (
            self.cfg,
            self.ring.clone(),
            self.keys.clone(),
            self.byzantine.clone(),
        );
        move |id, store| {
            if byz.contains(&id) {
                return None;
            }
            let signer = ring.signer(id)?;
            Some(Box::new(HonestNode::restore(cfg, signer, keys.clone(), store)) as RbcNode)
        }
    }
}

fn instance(d: &Delivery) -> (NodeId, u64) {
    (d.origin, d.seq)
}

/// The broadcast's safety invariants: agreement per instance (on the value's digest, not the
/// per-node certificate), no duplicates, integrity against honest origins' inputs, certificate
/// validity against the statement the delivered value implies, no false accusation.
pub fn safety_invariants(
    keys: PublicKeys,
    cfg: RbcConfig,
) -> Vec<Box<dyn Invariant<Broadcast, Delivery>>> {
    vec![
        Box::new(KeyedAgreement::new(|d: &Delivery| {
            (instance(d), value_digest(&d.value))
        })),
        Box::new(NoDuplicates::new(instance)),
        Box::new(OnCommit::new(
            "integrity/submitted",
            |ctx: &super::super::invariants::Ctx<'_, Broadcast>, node, d: &Delivery| {
                if !ctx.honest.contains(&d.origin) {
                    return Ok(());
                }
                let submitted = ctx
                    .inputs
                    .get(&d.origin)
                    .and_then(|i| i.get(d.seq as usize));
                if submitted.map(|(_, b)| b.0.as_slice()) != Some(&d.value[..]) {
                    return Err(format!(
                        "node {node} delivered ({}, {}) never broadcast",
                        d.origin, d.seq
                    ));
                }
                Ok(())
            },
        )),
        Box::new(CertificateValidity::new(
            keys,
            cfg.quorum(),
            |d: &Delivery| {
                (
                    echo_statement(d.origin, d.seq, &value_digest(&d.value)),
                    &*d.cert,
                )
            },
        )),
        Box::new(NoFalseAccusation),
    ]
}

/// Liveness after GST: every correct node delivers every correct origin's broadcasts within
/// `deadline_ms` of `max(GST, submission)`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<Broadcast, Delivery>> {
    Box::new(Liveness::new(
        |origin, idx, _: &Broadcast| Some((origin, idx as u64)),
        instance,
        deadline_ms,
    ))
}
