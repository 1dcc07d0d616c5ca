//! Building a T-PBFT network and its checkers.

use rand::SeedableRng;

use crate::sim::crypto::{Keyring, PublicKeys, Scheme};
use crate::sim::invariants::{
    Invariant, NoDuplicates, NoFalseAccusation, OnCommit, PrefixAgreement,
};
use crate::sim::protocol::NodeId;
use crate::sim::wire::encode;

use super::node::{TpbftNode, TpbftSimNode};
use super::{TpbftConfig, TpbftOut, TxSubmit};

/// A built T-PBFT network.
pub struct TpbftBuilt {
    pub nodes: Vec<TpbftSimNode>,
    pub keys: PublicKeys,
    pub ring: Keyring,
    pub cfg: TpbftConfig,
}

impl TpbftBuilt {
    pub fn honest(&self, id: NodeId) -> Option<TpbftNode> {
        self.ring
            .signer(id)
            .map(|s| TpbftNode::new(self.cfg, s, self.keys.clone()))
    }
}

/// `n` honest T-PBFT nodes with keys derived from `seed`.
pub fn build(seed: u64, cfg: TpbftConfig, scheme: Scheme) -> TpbftBuilt {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7bf7_5eed);
    let ring = Keyring::generate(cfg.n, scheme, &mut rng);
    let keys = ring.public();
    let nodes = (0..cfg.n)
        .filter_map(|id| ring.signer(id))
        .map(|s| Box::new(TpbftNode::new(cfg, s, keys.clone())) as TpbftSimNode)
        .collect();
    TpbftBuilt {
        nodes,
        keys,
        ring,
        cfg,
    }
}

fn out_key(o: &TpbftOut) -> Vec<u8> {
    encode(o)
}

/// Agreement on the whole log (transactions and epoch changes with committee and trust), no
/// transaction applied twice, integrity (an honest origin's transaction is what it submitted),
/// no false accusation.
pub fn safety_invariants() -> Vec<Box<dyn Invariant<TxSubmit, TpbftOut>>> {
    vec![
        Box::new(PrefixAgreement::new(out_key)),
        Box::new(NoDuplicates::new(|o: &TpbftOut| match o {
            TpbftOut::Tx { origin, id, .. } => (0u8, u64::from(*origin), *id),
            TpbftOut::Epoch { epoch, .. } => (1u8, *epoch, 0),
        })),
        Box::new(OnCommit::new(
            "integrity/submitted",
            |ctx: &crate::sim::invariants::Ctx<'_, TxSubmit>, node, o: &TpbftOut| {
                let TpbftOut::Tx {
                    origin, id, digest, ..
                } = o
                else {
                    return Ok(());
                };
                if !ctx.honest.contains(origin) {
                    return Ok(());
                }
                let ok = ctx.inputs.get(origin).is_some_and(|i| {
                    i.iter().any(|(_, s)| {
                        s.id == *id && crate::sim::crypto::hash_parts(&[&s.payload]) == *digest
                    })
                });
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "node {node} applied ({origin}, {id}) never submitted"
                    ))
                }
            },
        )),
        Box::new(NoFalseAccusation),
    ]
}

/// Liveness after GST: every correct node applies every correct origin's transaction within
/// `deadline_ms` of `max(GST, submission)`.
pub fn liveness_invariant(deadline_ms: u64) -> Box<dyn Invariant<TxSubmit, TpbftOut>> {
    Box::new(crate::sim::invariants::Liveness::new(
        |origin, _, s: &TxSubmit| Some((origin, s.id)),
        |o: &TpbftOut| o.tx_key().unwrap_or((NodeId::MAX, u64::MAX)),
        deadline_ms,
    ))
}
