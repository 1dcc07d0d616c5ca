//! # ed25519 keyrings and quorum certificates
//!
//! Keys are derived from the simulation's seeded RNG, so a replayed seed replays signatures too.
//! A [`Certificate`] is valid iff it carries at least `threshold` signatures by *distinct members*
//! over the certified statement, each verifying under that member's key (ENGINES.md: certificate
//! validity). Every statement is domain-separated by a context tag.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::protocol::NodeId;

/// A 32-byte SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of `parts`, each length-prefixed (unambiguous concatenation).
pub fn hash_parts(parts: &[&[u8]]) -> Digest32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Every node's public key, indexed by [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeys(Vec<VerifyingKey>);

impl PublicKeys {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        (id as usize) < self.0.len()
    }

    /// Whether `sig` is `id`'s signature over `msg`. Non-members never verify.
    pub fn verify(&self, id: NodeId, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.0
            .get(id as usize)
            .is_some_and(|k| k.verify(msg, &Signature::from_bytes(sig)).is_ok())
    }
}

/// All nodes' signing keys (the simulator hands each node its own).
#[derive(Debug, Clone)]
pub struct Keyring {
    signing: Vec<SigningKey>,
}

impl Keyring {
    pub fn generate(n: u32, rng: &mut impl RngCore) -> Self {
        let signing = (0..n)
            .map(|_| {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                SigningKey::from_bytes(&seed)
            })
            .collect();
        Self { signing }
    }

    pub fn public(&self) -> PublicKeys {
        PublicKeys(self.signing.iter().map(SigningKey::verifying_key).collect())
    }

    pub fn signer(&self, id: NodeId) -> Option<NodeSigner> {
        self.signing
            .get(id as usize)
            .map(|k| NodeSigner { id, key: k.clone() })
    }
}

/// One node's signing key.
#[derive(Debug, Clone)]
pub struct NodeSigner {
    id: NodeId,
    key: SigningKey,
}

impl NodeSigner {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// Signatures of distinct members over one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub statement: Vec<u8>,
    pub sigs: Vec<(NodeId, [u8; 64])>,
}

/// Why a certificate is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertError {
    #[error("signer {0} is not a member")]
    NotMember(NodeId),
    #[error("signer {0} appears twice")]
    Duplicate(NodeId),
    #[error("signature of {0} does not verify")]
    BadSignature(NodeId),
    #[error("{have} distinct signatures, {need} needed")]
    BelowThreshold { have: usize, need: usize },
}

impl Certificate {
    /// Check membership, distinctness, every signature and the threshold.
    pub fn verify(&self, keys: &PublicKeys, threshold: usize) -> Result<(), CertError> {
        let mut seen = std::collections::BTreeSet::new();
        for (id, sig) in &self.sigs {
            if !keys.is_member(*id) {
                return Err(CertError::NotMember(*id));
            }
            if !seen.insert(*id) {
                return Err(CertError::Duplicate(*id));
            }
            if !keys.verify(*id, &self.statement, sig) {
                return Err(CertError::BadSignature(*id));
            }
        }
        if seen.len() < threshold {
            return Err(CertError::BelowThreshold {
                have: seen.len(),
                need: threshold,
            });
        }
        Ok(())
    }
}
