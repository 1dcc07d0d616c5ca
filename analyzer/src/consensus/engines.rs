//! The [`HostedEngine`] impls of PBFT and T-PBFT (ProBFT: [`super::probft`]), their parameters for an in-process
//! cluster, and their Byzantine mutators (the same rewrites as the engines' simulator tests).

use std::sync::Arc;

use dwcp_engines::pbft::{self, Decided, PbftConfig, PbftMsg, Submit};
use dwcp_engines::sim::crypto::{hash_parts, Keyring, NodeSigner, PublicKeys, Scheme};
use dwcp_engines::sim::outbox::Send;
use dwcp_engines::sim::protocol::NodeId;
use dwcp_engines::tpbft::{self, TpbftConfig, TpbftMsg, TpbftNode, TpbftOut, TxSubmit};
use serde_json::{json, Value};

use super::{Behaviour, CommitRef, HostedEngine, Mutator};

/// Fresh ed25519 keys for `n` replicas from OS randomness.
pub(super) fn keyring(n: u32) -> Keyring {
    Keyring::generate(n, Scheme::Ed25519, &mut rand::rngs::OsRng)
}

/// Timeouts for a cluster that shares its CPU with the companion: long enough that a busy
/// machine does not look like a faulty primary.
fn tuned(mut c: PbftConfig) -> PbftConfig {
    c.batch_max = 64;
    c.batch_delay_ms = 2;
    c.retransmit_ms = 250;
    c.view_timeout_ms = 2_000;
    c.checkpoint_interval = 16;
    c.window = 256;
    c
}

pub(super) fn silent<M>() -> Mutator<M> {
    Box::new(|_, _, _| Vec::new())
}

fn pbft_kind(m: &PbftMsg) -> &'static str {
    match m {
        PbftMsg::Request(_) => "request",
        PbftMsg::PrePrepare { .. } => "pre_prepare",
        PbftMsg::Prepare { .. } => "prepare",
        PbftMsg::Commit { .. } => "commit",
        PbftMsg::Checkpoint { .. } => "checkpoint",
        PbftMsg::ViewChange(_) => "view_change",
        PbftMsg::NewView(_) => "new_view",
        PbftMsg::Reply { .. } => "reply",
        PbftMsg::Fetch { .. } => "fetch",
        PbftMsg::Entries(_) => "entries",
    }
}

/// A second prepare for a fake digest, signed by `signer` (an equivocating backup).
fn twin_prepare(m: &PbftMsg, signer: &NodeSigner) -> Option<PbftMsg> {
    let PbftMsg::Prepare {
        view,
        seq,
        digest,
        signer: who,
        ..
    } = m
    else {
        return None;
    };
    let fake = hash_parts(&[b"equivocation", digest]);
    Some(PbftMsg::Prepare {
        view: *view,
        seq: *seq,
        digest: fake,
        signer: *who,
        sig: signer.sign(&pbft::prepare_statement(*view, *seq, &fake)),
    })
}

pub use super::probft::Probft;

/// PBFT: `n = 3f + 1` replicas, every one a client of the transactions submitted to it.
pub struct Pbft {
    cfg: PbftConfig,
    ring: Keyring,
    keys: PublicKeys,
}

impl Pbft {
    pub fn new(n: u32) -> Self {
        let ring = keyring(n);
        let keys = ring.public();
        Self {
            cfg: tuned(PbftConfig::new(n, (n - 1) / 3)),
            ring,
            keys,
        }
    }
}

impl HostedEngine for Pbft {
    type P = pbft::Replica;
    fn name(&self) -> &'static str {
        "pbft"
    }
    fn n(&self) -> u32 {
        self.cfg.n
    }
    fn f(&self) -> u32 {
        self.cfg.f
    }
    fn replicas(&mut self) -> Vec<pbft::Replica> {
        (0..self.cfg.n)
            .filter_map(|i| self.ring.signer(i))
            .map(|s| pbft::Replica::new(self.cfg, s, self.keys.clone()))
            .collect()
    }
    fn submit(&mut self, tx: u64, payload: &[u8], to: NodeId) -> Vec<(NodeId, Submit)> {
        vec![(
            to,
            Submit {
                id: tx,
                payload: payload.to_vec(),
            },
        )]
    }
    fn commit_ref(&self, d: &Decided) -> CommitRef {
        let (digest, tx) = match d.request() {
            Some(r) => (pbft::request_digest(r), Some(r.id)),
            None => (pbft::batch_digest(&d.batch), None),
        };
        CommitRef {
            position: (0, d.seq, u64::from(d.pos)),
            digest,
            tx,
            batch: (0, d.seq),
        }
    }
    fn msg_kind(&self, m: &PbftMsg) -> &'static str {
        pbft_kind(m)
    }
    fn view_change(&self, m: &PbftMsg) -> Option<(u64, u64)> {
        match m {
            PbftMsg::ViewChange(vc) => Some((0, vc.view)),
            _ => None,
        }
    }
    fn replica_status(&self, p: &pbft::Replica, _decided: u64) -> (u64, u64) {
        (p.executed(), p.view())
    }
    fn extras(&self, p: &pbft::Replica) -> Value {
        json!({"primary": self.cfg.primary(p.view()), "quorum": self.cfg.quorum()})
    }
    fn mutator(&self, replica: NodeId, b: Behaviour) -> Result<Mutator<PbftMsg>, String> {
        match b {
            Behaviour::Silent => Ok(silent()),
            Behaviour::Equivocate => {
                let signer = self.ring.signer(replica).ok_or("no such replica")?;
                Ok(Box::new(move |_, s: Send<PbftMsg>, _| {
                    let twin = twin_prepare(&s.msg, &signer);
                    let mut out = vec![s.clone()];
                    out.extend(twin.map(|m| Send {
                        msg: Arc::new(m),
                        ..s
                    }));
                    out
                }))
            }
            other => Err(format!("{} is not a PBFT behaviour", other.as_str())),
        }
    }
}

/// T-PBFT: `n` nodes, a committee of `c` chosen by EigenTrust each epoch.
pub struct Tpbft {
    cfg: TpbftConfig,
    ring: Keyring,
    keys: PublicKeys,
}

impl Tpbft {
    pub fn new(n: u32, c: u32) -> Self {
        let ring = keyring(n);
        let keys = ring.public();
        let mut cfg = TpbftConfig::new(n, c);
        cfg.inner = tuned(cfg.inner);
        cfg.retry_ms = 500;
        Self { cfg, ring, keys }
    }
}

impl HostedEngine for Tpbft {
    type P = TpbftNode;
    fn name(&self) -> &'static str {
        "tpbft"
    }
    fn n(&self) -> u32 {
        self.cfg.n
    }
    fn f(&self) -> u32 {
        self.cfg.f_c()
    }
    fn replicas(&mut self) -> Vec<TpbftNode> {
        (0..self.cfg.n)
            .filter_map(|i| self.ring.signer(i))
            .map(|s| TpbftNode::new(self.cfg, s, self.keys.clone()))
            .collect()
    }
    fn submit(&mut self, tx: u64, payload: &[u8], to: NodeId) -> Vec<(NodeId, TxSubmit)> {
        vec![(
            to,
            TxSubmit {
                id: tx,
                payload: payload.to_vec(),
            },
        )]
    }
    fn commit_ref(&self, o: &TpbftOut) -> CommitRef {
        match o {
            TpbftOut::Tx {
                epoch,
                seq,
                pos,
                id,
                digest,
                ..
            } => CommitRef {
                position: (*epoch, *seq, u64::from(*pos)),
                digest: *digest,
                tx: Some(*id),
                batch: (*epoch, *seq),
            },
            TpbftOut::Epoch {
                epoch,
                committee,
                trust_ppb,
                faulty,
            } => {
                let c: Vec<u8> = committee.iter().flat_map(|m| m.to_le_bytes()).collect();
                let t: Vec<u8> = trust_ppb.iter().flat_map(|m| m.to_le_bytes()).collect();
                let f: Vec<u8> = faulty.iter().flat_map(|m| m.to_le_bytes()).collect();
                CommitRef {
                    position: (*epoch, u64::MAX, 0),
                    digest: hash_parts(&[b"tpbft-epoch-out", &c, &t, &f]),
                    tx: None,
                    batch: (*epoch, u64::MAX),
                }
            }
        }
    }
    fn msg_kind(&self, m: &TpbftMsg) -> &'static str {
        match m {
            TpbftMsg::Inner { msg, .. } => pbft_kind(msg),
            TpbftMsg::Tx(_) => "tx",
            TpbftMsg::Committed(_) => "committed",
            TpbftMsg::Pull { .. } => "pull",
        }
    }
    fn view_change(&self, m: &TpbftMsg) -> Option<(u64, u64)> {
        match m {
            TpbftMsg::Inner {
                epoch,
                msg: PbftMsg::ViewChange(vc),
            } => Some((*epoch, vc.view)),
            _ => None,
        }
    }
    fn replica_status(&self, p: &TpbftNode, _decided: u64) -> (u64, u64) {
        (p.height(), p.view().unwrap_or(0))
    }
    fn extras(&self, p: &TpbftNode) -> Value {
        json!({
            "epoch": p.epoch(),
            "committee": p.committee(),
            "trust": p.trust(),
            "faulty": p.faulty(),
            "committee_size": self.cfg.c,
            "epoch_len": self.cfg.epoch_len,
        })
    }
    fn mutator(&self, replica: NodeId, b: Behaviour) -> Result<Mutator<TpbftMsg>, String> {
        match b {
            Behaviour::Silent => Ok(silent()),
            Behaviour::Equivocate => {
                let signer = self.ring.signer(replica).ok_or("no such replica")?;
                Ok(Box::new(move |_, s: Send<TpbftMsg>, _| {
                    let TpbftMsg::Inner { epoch, msg } = &*s.msg else {
                        return vec![s];
                    };
                    let PbftMsg::Prepare { signer: local, .. } = msg else {
                        return vec![s];
                    };
                    let scoped = signer.scoped(*local, tpbft::epoch_context(*epoch));
                    let twin = twin_prepare(msg, &scoped).map(|m| TpbftMsg::Inner {
                        epoch: *epoch,
                        msg: m,
                    });
                    let mut out = vec![s.clone()];
                    out.extend(twin.map(|m| Send {
                        msg: Arc::new(m),
                        ..s
                    }));
                    out
                }))
            }
            other => Err(format!("{} is not a T-PBFT behaviour", other.as_str())),
        }
    }
}
