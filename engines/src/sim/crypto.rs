//! # Keyrings, signatures and quorum certificates
//!
//! Two schemes behind one API ([`Scheme`]):
//! * **Ed25519** (real signatures) for the correctness suites;
//! * **Mock**, for Monte-Carlo sweeps where ed25519 would dominate the run time: a signature is
//!   two SipHash-2-4 MACs of the message under the signer's secret 256-bit key. Inside the
//!   simulator it is unforgeable in the sense that matters — a node holds only its own
//!   [`NodeSigner`], and [`PublicKeys`] exposes verification only, so no Byzantine implementation
//!   can produce another member's signature except by replaying one it saw (as with real
//!   signatures). It is *not* a cryptographic signature outside the simulator.
//!
//! Keys are derived from a seeded RNG, so a replayed seed replays signatures too. A
//! [`Certificate`] is valid iff it carries at least `threshold` signatures by *distinct members*
//! over the certified statement, each verifying under that member's key.

use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::protocol::NodeId;
use super::siphash::siphash24;

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

/// Which signature scheme a keyring uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    Mock,
}

type MockKey = [u64; 4];

fn mock_sign(key: &MockKey, msg: &[u8]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..8].copy_from_slice(&siphash24(key[0], key[1], msg).to_le_bytes());
    sig[8..16].copy_from_slice(&siphash24(key[2], key[3], msg).to_le_bytes());
    sig[16] = 0x4d; // 'M': a mock signature never verifies under ed25519 and vice versa
    sig
}

#[derive(Debug, PartialEq, Eq)]
enum Verifiers {
    Ed25519(Vec<VerifyingKey>),
    Mock(Vec<MockKey>),
}

/// A sub-group view of a keyring: local id `i` is global node `ids[i]`, and every statement is
/// signed inside the context `ctx` (so a signature made for one group never verifies in another).
#[derive(Debug, PartialEq, Eq)]
struct Scope {
    ids: Vec<NodeId>,
    ctx: Digest32,
}

/// What is actually signed for `msg` inside context `ctx`.
fn scoped_message(ctx: &Digest32, msg: &[u8]) -> Digest32 {
    hash_parts(&[b"dwcp-scope", ctx, msg])
}

/// Every node's verification key, indexed by [`NodeId`]. Cheap to clone (shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeys(Arc<Verifiers>, Option<Arc<Scope>>);

impl PublicKeys {
    pub fn len(&self) -> usize {
        if let Some(s) = &self.1 {
            return s.ids.len();
        }
        match &*self.0 {
            Verifiers::Ed25519(v) => v.len(),
            Verifiers::Mock(v) => v.len(),
        }
    }

    /// Ed25519 verification keys given as bytes (a deployment's configured peers), indexed by id.
    pub fn from_ed25519(keys: &[[u8; 32]]) -> Result<Self, ed25519_dalek::SignatureError> {
        let v = keys
            .iter()
            .map(VerifyingKey::from_bytes)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Arc::new(Verifiers::Ed25519(v)), None))
    }

    /// The keys of the global nodes `ids` as local members `0..ids.len()`, verifying only
    /// signatures made by [`NodeSigner::scoped`] with the same `ctx` (a committee of an epoch).
    pub fn scoped(&self, ids: &[NodeId], ctx: Digest32) -> Self {
        Self(
            Arc::clone(&self.0),
            Some(Arc::new(Scope {
                ids: ids.to_vec(),
                ctx,
            })),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        (id as usize) < self.len()
    }

    /// Whether `sig` is `id`'s signature over `msg`. Non-members never verify.
    pub fn verify(&self, id: NodeId, msg: &[u8], sig: &[u8; 64]) -> bool {
        if let Some(s) = &self.1 {
            return match s.ids.get(id as usize) {
                Some(global) => Self(Arc::clone(&self.0), None).verify_raw(
                    *global,
                    &scoped_message(&s.ctx, msg),
                    sig,
                ),
                None => false,
            };
        }
        self.verify_raw(id, msg, sig)
    }

    /// Whether every `(id, msg, sig)` verifies (all or nothing; empty is true). Ed25519 keys use
    /// one batch verification (`ed25519_dalek::verify_batch`: a random linear combination with
    /// coefficients derived from the inputs, so the answer is a function of the items and their
    /// order). Batch verification is cofactored: it also accepts a valid signature mauled by a
    /// small-order component, which single verification rejects — the signed content is the
    /// same, so callers must not let signature bytes identify anything.
    pub fn verify_all(&self, items: &[(NodeId, &[u8], &[u8; 64])]) -> bool {
        if items.len() < 2 {
            return items.iter().all(|(id, m, s)| self.verify(*id, m, s));
        }
        let Verifiers::Ed25519(keys) = &*self.0 else {
            return items.iter().all(|(id, m, s)| self.verify(*id, m, s));
        };
        let mut scoped: Vec<Digest32> = Vec::new();
        let mut vks = Vec::with_capacity(items.len());
        for (id, m, _) in items {
            let global = match &self.1 {
                Some(sc) => match sc.ids.get(*id as usize) {
                    Some(g) => {
                        scoped.push(scoped_message(&sc.ctx, m));
                        *g
                    }
                    None => return false,
                },
                None => *id,
            };
            match keys.get(global as usize) {
                Some(k) => vks.push(*k),
                None => return false,
            }
        }
        let msgs: Vec<&[u8]> = if self.1.is_some() {
            scoped.iter().map(|d| d.as_slice()).collect()
        } else {
            items.iter().map(|(_, m, _)| *m).collect()
        };
        let sigs: Vec<Signature> = items
            .iter()
            .map(|(_, _, s)| Signature::from_bytes(s))
            .collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &vks).is_ok()
    }

    fn verify_raw(&self, id: NodeId, msg: &[u8], sig: &[u8; 64]) -> bool {
        match &*self.0 {
            Verifiers::Ed25519(v) => v
                .get(id as usize)
                .is_some_and(|k| k.verify(msg, &Signature::from_bytes(sig)).is_ok()),
            Verifiers::Mock(v) => v
                .get(id as usize)
                .is_some_and(|k| mock_sign(k, msg) == *sig),
        }
    }
}

#[derive(Debug, Clone)]
enum SecretKey {
    Ed25519(SigningKey),
    Mock(MockKey),
}

/// All nodes' signing keys (each node gets only its own [`NodeSigner`]).
#[derive(Debug, Clone)]
pub struct Keyring {
    secrets: Vec<SecretKey>,
}

impl Keyring {
    pub fn generate(n: u32, scheme: Scheme, rng: &mut impl RngCore) -> Self {
        let secrets = (0..n)
            .map(|_| {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                match scheme {
                    Scheme::Ed25519 => SecretKey::Ed25519(SigningKey::from_bytes(&seed)),
                    Scheme::Mock => {
                        let mut k = [0u64; 4];
                        for (i, w) in k.iter_mut().enumerate() {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
                            *w = u64::from_le_bytes(b);
                        }
                        SecretKey::Mock(k)
                    }
                }
            })
            .collect();
        Self { secrets }
    }

    pub fn public(&self) -> PublicKeys {
        let ed: Vec<VerifyingKey> = self
            .secrets
            .iter()
            .filter_map(|s| match s {
                SecretKey::Ed25519(k) => Some(k.verifying_key()),
                SecretKey::Mock(_) => None,
            })
            .collect();
        if ed.len() == self.secrets.len() {
            return PublicKeys(Arc::new(Verifiers::Ed25519(ed)), None);
        }
        let mock = self
            .secrets
            .iter()
            .filter_map(|s| match s {
                SecretKey::Mock(k) => Some(*k),
                SecretKey::Ed25519(_) => None,
            })
            .collect();
        PublicKeys(Arc::new(Verifiers::Mock(mock)), None)
    }

    pub fn signer(&self, id: NodeId) -> Option<NodeSigner> {
        self.secrets.get(id as usize).map(|k| NodeSigner {
            id,
            key: k.clone(),
            ctx: None,
        })
    }
}

/// One node's signing key.
#[derive(Debug, Clone)]
pub struct NodeSigner {
    id: NodeId,
    key: SecretKey,
    ctx: Option<Digest32>,
}

impl NodeSigner {
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Node `id`'s signer from its ed25519 secret key bytes (a deployment's key file).
    pub fn from_ed25519(id: NodeId, secret: &[u8; 32]) -> Self {
        Self {
            id,
            key: SecretKey::Ed25519(SigningKey::from_bytes(secret)),
            ctx: None,
        }
    }

    /// The ed25519 public key of this signer (`None` for a mock key).
    pub fn ed25519_public(&self) -> Option<[u8; 32]> {
        match &self.key {
            SecretKey::Ed25519(k) => Some(k.verifying_key().to_bytes()),
            SecretKey::Mock(_) => None,
        }
    }

    /// This key acting as local member `local` of a group with context `ctx` (see
    /// [`PublicKeys::scoped`]).
    pub fn scoped(&self, local: NodeId, ctx: Digest32) -> Self {
        Self {
            id: local,
            key: self.key.clone(),
            ctx: Some(ctx),
        }
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match &self.ctx {
            Some(ctx) => self.sign_raw(&scoped_message(ctx, msg)),
            None => self.sign_raw(msg),
        }
    }

    fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        match &self.key {
            SecretKey::Ed25519(k) => k.sign(msg).to_bytes(),
            SecretKey::Mock(k) => mock_sign(k, msg),
        }
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
    #[error("certifies another statement than the output implies")]
    WrongStatement,
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

    /// A digest of the whole certificate (statement and every signature), for caches.
    pub fn digest(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update((self.statement.len() as u64).to_le_bytes());
        h.update(&self.statement);
        for (id, sig) in &self.sigs {
            h.update(id.to_le_bytes());
            h.update(sig);
        }
        h.finalize().into()
    }
}
