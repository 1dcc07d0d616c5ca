//! # ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03)
//!
//! A thin wrapper over the `vrf-rfc9381` crate: keys are derived as RFC 8032 keys from a 32-byte
//! seed (the secret scalar `x` and `Y = x·B` are exactly an ed25519 key pair), a proof `pi` is
//! `Gamma ‖ c ‖ s` (80 bytes) and the output `beta` is 64 bytes. The RFC test vectors
//! (Appendix B.3) are checked in `engines/tests/probft_vrf.rs`.
//!
//! One check is added on top of the crate: RFC 9381 §5.4.4 step 8 rejects a proof whose `s` is
//! not below the group order `q`; the crate reduces `s` modulo `q`, so `(Gamma, c, s + q)` would
//! verify too (same `beta`, but a second encoding of the proof). [`verify`] refuses it.

use thiserror::Error;
use vrf_rfc9381::ec::edwards25519::tai::{
    EdVrfEdwards25519TaiPublicKey, EdVrfEdwards25519TaiSecretKey,
};
use vrf_rfc9381::{Proof as _, Prover as _, Verifier as _};

/// `pi_string`: `Gamma` (32) ‖ `c` (16) ‖ `s` (32).
pub type VrfProof = [u8; 80];
/// `beta_string`.
pub type VrfOutput = [u8; 64];

/// Why a VRF operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VrfError {
    #[error("the public key is not a valid edwards25519 point of large order")]
    BadPublicKey,
    #[error("the proof does not decode (bad Gamma point or non-canonical s)")]
    BadEncoding,
    #[error("the proof does not verify for this key and input")]
    Invalid,
    #[error("proving failed: {0}")]
    Prove(String),
}

/// The group order `q = 2^252 + 27742317777372353535851937790883648493`, little-endian.
const ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// Whether the little-endian 32-byte integer `s` is below `q`.
fn canonical_scalar(s: &[u8]) -> bool {
    for i in (0..32).rev() {
        let (a, b) = (s.get(i).copied().unwrap_or(0), ORDER_LE[i]);
        if a != b {
            return a < b;
        }
    }
    false
}

/// A VRF secret key with its public key bytes.
pub struct VrfSecret {
    key: EdVrfEdwards25519TaiSecretKey,
    public: [u8; 32],
}

impl std::fmt::Debug for VrfSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrfSecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl VrfSecret {
    /// The key whose RFC 8032 seed is `seed` (RFC 9381 §5.5: `SK` is the ed25519 secret key).
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, VrfError> {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let key = EdVrfEdwards25519TaiSecretKey::from_slice(&seed)
            .map_err(|e| VrfError::Prove(e.to_string()))?;
        Ok(Self { key, public })
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// `(pi, beta)` for `alpha`.
    pub fn prove(&self, alpha: &[u8]) -> Result<(VrfProof, VrfOutput), VrfError> {
        let proof = self
            .key
            .prove(alpha)
            .map_err(|e| VrfError::Prove(e.to_string()))?;
        let pi_vec = proof.encode_to_pi();
        let mut pi = [0u8; 80];
        if pi_vec.len() != 80 {
            return Err(VrfError::Prove(format!("proof of {} bytes", pi_vec.len())));
        }
        pi.copy_from_slice(&pi_vec);
        let beta = proof
            .proof_to_hash(vrf_rfc9381::Ciphersuite::ECVRF_EDWARDS25519_SHA512_TAI)
            .map_err(|e| VrfError::Prove(e.to_string()))?;
        Ok((pi, to64(beta.as_slice())))
    }
}

fn to64(b: &[u8]) -> VrfOutput {
    let mut out = [0u8; 64];
    out.copy_from_slice(&b[..64.min(b.len())]);
    out
}

/// A parsed (decompressed, large-order-checked) public key, for repeated verification.
#[derive(Debug)]
pub struct VrfPublic(EdVrfEdwards25519TaiPublicKey);

impl VrfPublic {
    pub fn from_bytes(pk: &[u8; 32]) -> Result<Self, VrfError> {
        EdVrfEdwards25519TaiPublicKey::from_slice(pk)
            .map(Self)
            .map_err(|_| VrfError::BadPublicKey)
    }

    /// RFC 9381 `ECVRF_verify`: `beta` if `pi` is a valid proof for `alpha` under this key.
    pub fn verify(&self, alpha: &[u8], pi: &VrfProof) -> Result<VrfOutput, VrfError> {
        if !canonical_scalar(&pi[48..80]) {
            return Err(VrfError::BadEncoding);
        }
        let proof = vrf_rfc9381::ec::edwards25519::EdVrfProof::decode_pi(pi)
            .map_err(|_| VrfError::BadEncoding)?;
        self.0
            .verify(alpha, proof)
            .map(|b| to64(b.as_slice()))
            .map_err(|_| VrfError::Invalid)
    }
}

/// [`VrfPublic::from_bytes`] then [`VrfPublic::verify`].
pub fn verify(pk: &[u8; 32], alpha: &[u8], pi: &VrfProof) -> Result<VrfOutput, VrfError> {
    VrfPublic::from_bytes(pk)?.verify(alpha, pi)
}
