//! # Signed echo broadcast — the simulator's reference protocol
//!
//! Authenticated (signed) echo broadcast after Reiter 1994 / Cachin, Guerraoui, Rodrigues
//! "Introduction to Reliable and Secure Distributed Programming" §3.10, with a final certificate
//! relay for totality. `n` nodes, at most `f` Byzantine, quorum `q = ⌊(n+f)/2⌋ + 1` (2f+1 when
//! n = 3f+1).
//!
//! 1. Origin `o` signs `(o, seq, value)` and sends `Send` to all.
//! 2. A node that receives the first validly signed `Send` for `(o, seq)` signs an `Echo` of the
//!    value's digest and sends it to all. It echoes at most once per instance.
//! 3. On `q` echoes from distinct members for one digest, plus the value, it delivers and relays
//!    `Final(value, certificate)`; a valid `Final` makes any node deliver.
//!
//! Properties with ≤ f Byzantine: consistency (two quorums share ≥ f+1 nodes, so one honest node
//! echoed both — impossible), integrity (deliver once; an honest origin's value is what it
//! signed), certificate validity, and totality/validity after GST via retransmission. With f+1
//! colluders (an equivocating origin plus f double-echoers) two honest nodes can deliver different
//! values: the threshold is tight, and the f+1 test family shows it.

mod byzantine;
mod honest;

pub use byzantine::{Behaviour, ByzantineNode};
pub use honest::{HonestNode, RbcConfig};

use super::crypto::{hash_parts, Certificate, Digest32};
use super::protocol::{NodeId, Wire};

/// `(origin, seq)`: one broadcast instance.
pub type InstanceId = (NodeId, u64);

/// A broadcast request: the node broadcasts `value` with its next sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast(pub Vec<u8>);

/// Wire messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbcMsg {
    Send {
        origin: NodeId,
        seq: u64,
        value: Vec<u8>,
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
        value: Vec<u8>,
        cert: Certificate,
    },
}

/// A delivered broadcast with the certificate that justified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub origin: NodeId,
    pub seq: u64,
    pub value: Vec<u8>,
    pub cert: Certificate,
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

fn put_cert(c: &Certificate, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&c.statement);
    for (id, sig) in &c.sigs {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(sig);
    }
}

impl Wire for RbcMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Send {
                origin,
                seq,
                value,
                sig,
            } => {
                buf.push(0);
                buf.extend_from_slice(&origin.to_le_bytes());
                buf.extend_from_slice(&seq.to_le_bytes());
                buf.extend_from_slice(value);
                buf.extend_from_slice(sig);
            }
            Self::Echo {
                origin,
                seq,
                digest,
                signer,
                sig,
            } => {
                buf.push(1);
                buf.extend_from_slice(&origin.to_le_bytes());
                buf.extend_from_slice(&seq.to_le_bytes());
                buf.extend_from_slice(digest);
                buf.extend_from_slice(&signer.to_le_bytes());
                buf.extend_from_slice(sig);
            }
            Self::Final {
                origin,
                seq,
                value,
                cert,
            } => {
                buf.push(2);
                buf.extend_from_slice(&origin.to_le_bytes());
                buf.extend_from_slice(&seq.to_le_bytes());
                buf.extend_from_slice(value);
                put_cert(cert, buf);
            }
        }
    }
}

impl Wire for Broadcast {
    fn wire(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }
}

impl Wire for Delivery {
    fn wire(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.origin.to_le_bytes());
        buf.extend_from_slice(&self.seq.to_le_bytes());
        buf.extend_from_slice(&self.value);
        put_cert(&self.cert, buf);
    }
}

/// Build `n` nodes (keys derived from `seed`), Byzantine where listed, honest elsewhere.
pub fn build_nodes(
    seed: u64,
    cfg: RbcConfig,
    byzantine: &[(NodeId, Behaviour)],
) -> (
    Vec<super::simulator::Node<RbcMsg, Broadcast, Delivery>>,
    super::crypto::PublicKeys,
) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f4_be75);
    let ring = super::crypto::Keyring::generate(cfg.n, &mut rng);
    let keys = ring.public();
    let mut nodes: Vec<super::simulator::Node<RbcMsg, Broadcast, Delivery>> = Vec::new();
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
    (nodes, keys)
}

/// The broadcast's safety invariants: agreement per instance, no duplicates, integrity against
/// honest origins' inputs, certificate validity.
pub fn safety_invariants(
    keys: super::crypto::PublicKeys,
    cfg: RbcConfig,
) -> Vec<super::invariants::FnInvariant<Broadcast, Delivery>> {
    use super::invariants::{certificate_validity, keyed_agreement, no_duplicates, FnInvariant};
    let key = |d: &Delivery| [d.origin.to_le_bytes().as_slice(), &d.seq.to_le_bytes()].concat();
    vec![
        keyed_agreement(|d: &Delivery| {
            (
                [d.origin.to_le_bytes().as_slice(), &d.seq.to_le_bytes()].concat(),
                value_digest(&d.value).to_vec(),
            )
        }),
        no_duplicates(key),
        FnInvariant::safety(
            "integrity/submitted",
            |v: &super::invariants::CommitView<'_, Broadcast, Delivery>| {
                for (node, log) in v.logs {
                    for d in log {
                        if !v.honest.contains(&d.origin) {
                            continue;
                        }
                        let submitted = v.inputs.get(&d.origin).and_then(|i| i.get(d.seq as usize));
                        if submitted.map(|b| &b.0) != Some(&d.value) {
                            return Err(format!(
                                "node {node} delivered ({}, {}) never broadcast",
                                d.origin, d.seq
                            ));
                        }
                    }
                }
                Ok(())
            },
        ),
        certificate_validity(keys, cfg.quorum(), |d: &Delivery| &d.cert),
    ]
}

/// Liveness after GST: every honest node delivered every honest origin's broadcasts.
pub fn liveness_invariant() -> super::invariants::FnInvariant<Broadcast, Delivery> {
    super::invariants::FnInvariant::at_end(
        "liveness",
        |v: &super::invariants::CommitView<'_, Broadcast, Delivery>| {
            for (origin, inputs) in v.inputs {
                if !v.honest.contains(origin) {
                    continue;
                }
                for (node, log) in v.logs {
                    for seq in 0..inputs.len() as u64 {
                        if !log.iter().any(|d| d.origin == *origin && d.seq == seq) {
                            return Err(format!("node {node} never delivered ({origin}, {seq})"));
                        }
                    }
                }
            }
            Ok(())
        },
    )
}
