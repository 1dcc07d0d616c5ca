//! An `n`-replica cluster inside one process, over real loopback TCP (tests, the in-process
//! figures of `dwcp-bench-consensus`, the companion's default host).

use dwcp_engines::sim::crypto::{NodeSigner, PublicKeys};
use dwcp_engines::sim::protocol::{Decode, NodeId, Protocol};
use rand::{RngCore, SeedableRng};

use crate::transport::{self, Handle, Peer, TransportConfig};

/// Fresh ed25519 secrets for `n` nodes from `seed` (tests and benchmarks: reproducible keys).
pub fn secrets(n: u32, seed: u64) -> Vec<[u8; 32]> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        })
        .collect()
}

/// Start `n` replicas built by `make(signer, keys)` on 127.0.0.1 ports chosen by the OS.
/// `tweak` may adjust each transport config (queues, backoff).
pub async fn start<P>(
    secrets: &[[u8; 32]],
    mut make: impl FnMut(NodeSigner, PublicKeys) -> P,
    tweak: impl Fn(&mut TransportConfig),
) -> anyhow::Result<Vec<Handle<P>>>
where
    P: Protocol + Send + 'static,
    P::Msg: Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let mut listeners = Vec::new();
    for _ in secrets {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let mut peers = Vec::new();
    for (i, (l, s)) in listeners.iter().zip(secrets).enumerate() {
        let signer = NodeSigner::from_ed25519(i as NodeId, s);
        peers.push(Peer {
            id: i as NodeId,
            addr: l.local_addr()?,
            public_key: signer
                .ed25519_public()
                .ok_or_else(|| anyhow::anyhow!("not an ed25519 key"))?,
        });
    }
    let pks: Vec<[u8; 32]> = peers.iter().map(|p| p.public_key).collect();
    let keys = PublicKeys::from_ed25519(&pks)?;
    let mut handles = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let mut cfg = TransportConfig::new(i as NodeId, peers.clone(), secrets[i]);
        tweak(&mut cfg);
        let signer = NodeSigner::from_ed25519(i as NodeId, &secrets[i]);
        handles.push(transport::spawn(cfg, l, make(signer, keys.clone()))?);
    }
    Ok(handles)
}
