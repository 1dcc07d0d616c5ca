//! The node's TOML file.
//!
//! ```toml
//! id = 0
//! listen = "127.0.0.1:7100"
//! key_file = "node0.key"          # hex of the 32-byte ed25519 secret, relative to this file
//! [engine]
//! kind = "pbft"                   # or "tpbft" with committee = 4, epoch_len = 64
//! f = 1
//! [[peers]]                       # every node, this one included
//! id = 0
//! addr = "127.0.0.1:7100"
//! public_key = "…64 hex digits…"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dwcp_engines::sim::crypto::{NodeSigner, PublicKeys};
use serde::{Deserialize, Serialize};

use crate::engine::EngineSpec;
use crate::transport::{Peer, TransportConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    pub id: u32,
    pub addr: SocketAddr,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub id: u32,
    pub listen: SocketAddr,
    pub key_file: PathBuf,
    pub engine: EngineSpec,
    pub peers: Vec<PeerFile>,
}

/// A loaded, checked node configuration.
pub struct Loaded {
    pub file: NodeFile,
    pub secret: [u8; 32],
    pub peers: Vec<Peer>,
}

fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let v = hex::decode(s.trim()).context("not hex")?;
    v.try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("{} bytes, 32 expected", v.len()))
}

impl Loaded {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let file: NodeFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let key_path = path.parent().unwrap_or(Path::new(".")).join(&file.key_file);
        let secret = hex32(
            &std::fs::read_to_string(&key_path)
                .with_context(|| format!("key file {}", key_path.display()))?,
        )
        .with_context(|| format!("key file {}", key_path.display()))?;
        let mut peers = Vec::new();
        for (i, p) in file.peers.iter().enumerate() {
            if p.id as usize != i {
                bail!("peers must be listed by id 0..n: entry {i} has id {}", p.id);
            }
            peers.push(Peer {
                id: p.id,
                addr: p.addr,
                public_key: hex32(&p.public_key).with_context(|| format!("peer {}", p.id))?,
            });
        }
        let mine = peers
            .iter()
            .find(|p| p.id == file.id)
            .context("this node's id is not among the peers")?;
        let signer = NodeSigner::from_ed25519(file.id, &secret);
        if signer.ed25519_public() != Some(mine.public_key) {
            bail!("key file does not match this node's public key in the peer list");
        }
        Ok(Self {
            file,
            secret,
            peers,
        })
    }

    pub fn transport(&self) -> TransportConfig {
        TransportConfig::new(self.file.id, self.peers.clone(), self.secret)
    }

    pub fn signer(&self) -> NodeSigner {
        NodeSigner::from_ed25519(self.file.id, &self.secret)
    }

    pub fn keys(&self) -> anyhow::Result<PublicKeys> {
        let pks: Vec<[u8; 32]> = self.peers.iter().map(|p| p.public_key).collect();
        Ok(PublicKeys::from_ed25519(&pks)?)
    }
}
