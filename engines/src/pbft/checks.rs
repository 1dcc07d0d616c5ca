//! Building a PBFT network and its checkers.

use std::collections::BTreeSet;

use rand::SeedableRng;

use crate::sim::crypto::{Keyring, PublicKeys, Scheme};
use crate::sim::durable::Durable;
use crate::sim::invariants::{
    CertificateValidity, Ctx, Invariant, Liveness, NoDuplicates, NoFalseAccusation, OnCommit,
    PrefixAgreement,
};
use crate::sim::protocol::NodeId;
use crate::sim::simulator::Node;

use super::{
    batch_digest, commit_statement, request_digest, Decided, PbftConfig, PbftMsg, Replica, Submit,
};

/// A replica as the simulator holds it.
pub type PbftNode = Node<PbftMsg, Submit, Decided>;

/// A built network: honest replicas, keys, and what is needed to rebuild or wrap one.
pub struct Built {
    pub nodes: Vec<PbftNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub cfg: PbftConfig,
    /// Ids the caller replaced with Byzantine nodes (they are not restarted).
    pub byzantine: BTreeSet<NodeId>,
}

/// `n` honest replicas with keys derived from `seed`.
pub fn build(seed: u64, cfg: PbftConfig, scheme: Scheme) -> Built {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x0bf7_5eed);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let nodes = (0..cfg.n)
        .filter_map(|id| ring.signer(id))
        .map(|s| Box::new(Replica::new(cfg, s, keys.clone())) as PbftNode)
        .collect();
    Built {
        nodes,
        keys,
        ring,
        cfg,
        byzantine: BTreeSet::new(),
    }
}

impl Built {
    /// A fresh honest replica for `id` (to wrap in an adversary).
    pub fn honest(&self, id: NodeId) -> Option<Replica> {
        self.ring
            .signer(id)
            .map(|s| Replica::new(self.cfg, s, self.keys.clone()))
    }

    /// Rebuilds honest replicas from their durable store; Byzantine ones stay down.
    pub fn restart(&self) -> impl FnMut(NodeId, &Durable) -> Option<PbftNode> + 'static {
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
            Some(Box::new(Replica::restore(cfg, signer, keys.clone(), store)) as PbftNode)
        }
    }
}

/// Agreement on the log (by request digest and position), no request executed twice,
/// integrity (an honest client's request is what it submitted, and it sits in the certified
/// batch), commit-certificate validity against the statement the output implies, and no false
/// accusation.
pub fn safety_invariants(
    keys: PublicKeys,
    cfg: PbftConfig,
) -> Vec<Box<dyn Invariant<Submit, Decided>>> {
    // Certificates are checked against the honest threshold even when the replicas run a
    // planted bug: the checker encodes the specification, not the implementation.
    let honest_q = (2 * cfg.f + 1) as usize;
    vec![
        Box::new(PrefixAgreement::new(|d: &Decided| {
            (d.seq, d.pos, d.request().map(request_digest))
        })),
        Box::new(NoDuplicates::new(Decided::key)),
        Box::new(OnCommit::new(
            "integrity/submitted",
            |ctx: &Ctx<'_, Submit>, node, d: &Decided| {
                let Some(r) = d.request() else {
                    return Err(format!("node {node}: output outside its batch"));
                };
                if !ctx.honest.contains(&r.client) {
                    return Ok(());
                }
                let submitted = ctx.inputs.get(&r.client).is_some_and(|i| {
                    i.iter()
                        .any(|(_, s)| s.id == r.id && *s.payload == *r.payload)
                });
                if submitted {
                    Ok(())
                } else {
                    Err(format!(
                        "node {node} executed ({}, {}) never submitted",
                        r.client, r.id
                    ))
                }
            },
        )),
        Box::new(CertificateValidity::new(keys, honest_q, |d: &Decided| {
            (
                commit_statement(d.view, d.seq, &batch_digest(&d.batch)),
                &*d.cert,
            )
        })),
        Box::new(NoFalseAccusation),
    ]
}

/// Liveness after GST: every correct replica executes every correct client's request within
/// `deadline_ms` of `max(GST, submission)`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<Submit, Decided>> {
    Box::new(Liveness::new(
        |client, _, s: &Submit| Some((client, s.id)),
        Decided::key,
        deadline_ms,
    ))
}
