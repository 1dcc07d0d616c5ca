//! # Weight files and their manifest
//!
//! `actors.bin` holds the per-agent actor MLPs: magic `DWCPMA01`, then little-endian `u32`
//! agents, nodes, layers-per-actor, each layer's `(input, output)`, then every actor's weights and
//! biases as `f32`. `manifest.json` records how they were made (seed, episodes, environment and
//! training configuration, the command) and the SHA-256 of `actors.bin`.
//!
//! [`load_dir`] recomputes the hash before parsing anything: a file that does not match its
//! manifest is refused with [`LoadError::HashMismatch`], which [`LoadError::to_event`] turns into
//! the `DataIntegrityViolation` (weight hash mismatch) signal that aborts the allocator's rollout.

use std::path::Path;

use dwcp_core::signals::{EngineEvent, IntegrityKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::env::EnvConfig;
use crate::policy::{Dense, Mlp, Model};

/// The engine name allocator signals carry.
pub const ENGINE: &str = "allocator";
const MAGIC: &[u8; 8] = b"DWCPMA01";
pub const WEIGHTS_FILE: &str = "actors.bin";
pub const MANIFEST_FILE: &str = "manifest.json";

/// How a weight file was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub seed: u64,
    pub episodes: u32,
    pub env: EnvConfig,
    /// Training hyper-parameters, as serialised by the trainer.
    pub train: serde_json::Value,
    /// The command that reproduces the weights.
    pub command: String,
    pub weights_file: String,
    pub weights_sha256: String,
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("weights hash {actual} does not match the manifest's {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("weight file malformed: {0}")]
    Malformed(String),
    #[error("actor layers {got:?} do not map the {obs}-feature observation to {actions} actions")]
    Features {
        obs: usize,
        actions: usize,
        got: (usize, usize),
    },
    #[error("weights are for {got_agents} agents × {got_nodes} nodes, the manifest says {agents} × {nodes}")]
    Shape {
        agents: usize,
        nodes: usize,
        got_agents: usize,
        got_nodes: usize,
    },
}

impl LoadError {
    /// The signal for the rollout judgment: a hash mismatch is a data-integrity violation.
    pub fn to_event(&self, at_ms: u64) -> Option<EngineEvent> {
        match self {
            Self::HashMismatch { .. } => Some(EngineEvent::DataIntegrityViolation {
                engine: ENGINE.into(),
                at_ms,
                violation: IntegrityKind::WeightHashMismatch,
                detail: self.to_string(),
            }),
            _ => None,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serialise the actors.
pub fn encode(model: &Model) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let layers = model.actors.first().map_or(0, |a| a.layers.len());
    for v in [model.actors.len(), model.nodes, layers] {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    if let Some(a) = model.actors.first() {
        for l in &a.layers {
            out.extend_from_slice(&(l.input as u32).to_le_bytes());
            out.extend_from_slice(&(l.output as u32).to_le_bytes());
        }
    }
    for a in &model.actors {
        for l in &a.layers {
            for v in l.w.iter().chain(&l.b) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LoadError> {
        if self.0.len() < n {
            return Err(LoadError::Malformed("truncated".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<usize, LoadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, LoadError> {
        let b = self.take(
            n.checked_mul(4)
                .ok_or_else(|| LoadError::Malformed("size".into()))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Parse actors written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Model, LoadError> {
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err(LoadError::Malformed("bad magic".into()));
    }
    let (agents, nodes, layers) = (r.u32()?, r.u32()?, r.u32()?);
    if agents > 1024 || layers > 16 || nodes > 4096 {
        return Err(LoadError::Malformed("implausible shape".into()));
    }
    let mut shapes = Vec::with_capacity(layers);
    for _ in 0..layers {
        let (i, o) = (r.u32()?, r.u32()?);
        if i > 1 << 16 || o > 1 << 16 {
            return Err(LoadError::Malformed("implausible layer".into()));
        }
        if shapes.last().is_some_and(|&(_, prev)| prev != i) {
            return Err(LoadError::Malformed("layers do not chain".into()));
        }
        shapes.push((i, o));
    }
    let mut actors = Vec::with_capacity(agents);
    for _ in 0..agents {
        let mut ls = Vec::with_capacity(layers);
        for &(input, output) in &shapes {
            let w = r.f32s(input * output)?;
            let b = r.f32s(output)?;
            ls.push(Dense {
                input,
                output,
                w,
                b,
            });
        }
        actors.push(Mlp { layers: ls });
    }
    if !r.0.is_empty() {
        return Err(LoadError::Malformed("trailing bytes".into()));
    }
    Ok(Model { nodes, actors })
}

/// Check `bytes` against the manifest's hash, then parse and check the shape.
pub fn verify_and_decode(manifest: &Manifest, bytes: &[u8]) -> Result<Model, LoadError> {
    let actual = sha256_hex(bytes);
    if actual != manifest.weights_sha256 {
        return Err(LoadError::HashMismatch {
            expected: manifest.weights_sha256.clone(),
            actual,
        });
    }
    let model = decode(bytes)?;
    if model.agents() != manifest.env.agents || model.nodes != manifest.env.nodes.len() {
        return Err(LoadError::Shape {
            agents: manifest.env.agents,
            nodes: manifest.env.nodes.len(),
            got_agents: model.agents(),
            got_nodes: model.nodes,
        });
    }
    let (obs, actions) = (crate::observe::obs_dim(model.nodes), model.nodes + 1);
    for a in &model.actors {
        if a.input() != obs || a.output() != actions {
            return Err(LoadError::Features {
                obs,
                actions,
                got: (a.input(), a.output()),
            });
        }
    }
    Ok(model)
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Load `manifest.json` and the weights it names from `dir`, verifying the hash first.
pub fn load_dir(dir: &Path) -> Result<(Manifest, Model), LoadError> {
    let manifest: Manifest = serde_json::from_slice(&read(&dir.join(MANIFEST_FILE))?)?;
    let bytes = read(&dir.join(&manifest.weights_file))?;
    let model = verify_and_decode(&manifest, &bytes)?;
    Ok((manifest, model))
}

/// The weights shipped in the repository (`allocator/model/`), verified against their manifest.
pub fn shipped() -> Result<(Manifest, Model), LoadError> {
    let manifest: Manifest = serde_json::from_slice(include_bytes!("../model/manifest.json"))?;
    let model = verify_and_decode(&manifest, include_bytes!("../model/actors.bin"))?;
    Ok((manifest, model))
}
