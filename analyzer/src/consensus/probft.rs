//! ProBFT as a [`HostedEngine`]: one slot per client transaction, every replica given it as input
//! (the slot's leader proposes), RFC 9381 ECVRF keys from OS randomness, and the forged-proof and
//! equivocating-leader mutators.

use std::sync::Arc;

use dwcp_core::signals::EngineEvent;
use dwcp_engines::probft::{self, vrf, Decision, Phase, ProbftConfig, ProbftMsg, Proposal, Vote};
use dwcp_engines::sim::crypto::{Keyring, PublicKeys};
use dwcp_engines::sim::outbox::Send;
use dwcp_engines::sim::protocol::NodeId;
use rand::RngCore;
use serde_json::{json, Value};

use super::engines::{keyring, silent};
use super::{Behaviour, CommitRef, HostedEngine, Mutator};

/// ProBFT: one slot per transaction, VRF-sampled quorums.
pub struct Probft {
    cfg: ProbftConfig,
    ring: Keyring,
    keys: PublicKeys,
    vrf: Vec<Arc<vrf::VrfSecret>>,
    vrf_keys: Arc<Vec<vrf::VrfPublic>>,
    samples: probft::SampleCache,
    last_slot: u64,
}

impl Probft {
    pub fn new(n: u32) -> Self {
        let ring = keyring(n);
        let keys = ring.public();
        let (mut secrets, mut publics) = (Vec::new(), Vec::new());
        while secrets.len() < n as usize {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            // An RFC 8032 seed always gives a key; a failure here would be a library bug: retry.
            let Ok(sk) = vrf::VrfSecret::from_seed(seed) else {
                continue;
            };
            let Ok(pk) = vrf::VrfPublic::from_bytes(&sk.public()) else {
                continue;
            };
            publics.push(pk);
            secrets.push(Arc::new(sk));
        }
        let mut cfg = ProbftConfig::new(n, (n - 1) / 3);
        cfg.view_timeout_ms = 2_000;
        cfg.retransmit_ms = 500;
        cfg.max_timeout_ms = 16_000;
        Self {
            cfg,
            ring,
            keys,
            vrf: secrets,
            vrf_keys: Arc::new(publics),
            samples: probft::SampleCache::default(),
            last_slot: 0,
        }
    }
}

impl HostedEngine for Probft {
    type P = probft::Replica;
    fn name(&self) -> &'static str {
        probft::ENGINE
    }
    fn n(&self) -> u32 {
        self.cfg.n
    }
    fn f(&self) -> u32 {
        self.cfg.f
    }
    fn replicas(&mut self) -> Vec<probft::Replica> {
        (0..self.cfg.n)
            .filter_map(|i| {
                Some(probft::Replica::new(
                    self.cfg,
                    self.ring.signer(i)?,
                    self.keys.clone(),
                    self.vrf.get(i as usize)?.clone(),
                    self.vrf_keys.clone(),
                    self.samples.clone(),
                ))
            })
            .collect()
    }
    /// Transaction `tx` is slot `tx`; every replica gets it as its input (the leader proposes).
    fn submit(&mut self, tx: u64, payload: &[u8], _to: NodeId) -> Vec<(NodeId, probft::Submit)> {
        self.last_slot = self.last_slot.max(tx);
        (0..self.cfg.n)
            .map(|i| {
                (
                    i,
                    probft::Submit {
                        slot: tx,
                        value: payload.to_vec(),
                    },
                )
            })
            .collect()
    }
    fn commit_ref(&self, d: &Decision) -> CommitRef {
        CommitRef {
            position: (d.slot, 0, 0),
            digest: probft::value_digest(&d.value),
            tx: Some(d.slot),
            batch: (d.slot, 0),
        }
    }
    fn msg_kind(&self, m: &ProbftMsg) -> &'static str {
        match m {
            ProbftMsg::Propose(_) => "propose",
            ProbftMsg::Vote(v) if v.phase == Phase::Prepare => "prepare",
            ProbftMsg::Vote(_) => "commit",
            ProbftMsg::ViewChange(_) => "view_change",
            ProbftMsg::Decided(_) => "decided",
        }
    }
    fn view_change(&self, m: &ProbftMsg) -> Option<(u64, u64)> {
        match m {
            ProbftMsg::ViewChange(vc) => Some((vc.slot, vc.view)),
            _ => None,
        }
    }
    fn replica_status(&self, p: &probft::Replica, decided: u64) -> (u64, u64) {
        (decided, p.view(self.last_slot))
    }
    fn extras(&self, p: &probft::Replica) -> Value {
        json!({
            "sample_size": self.cfg.sample_size(),
            "quorum": self.cfg.quorum(),
            "o": self.cfg.o,
            "l": self.cfg.l,
            "view_change_quorum": self.cfg.vc_quorum(),
            "last_slot": self.last_slot,
            "out_of_sample_refused": p.out_of_sample,
        })
    }
    fn mutator(&self, replica: NodeId, b: Behaviour) -> Result<Mutator<ProbftMsg>, String> {
        let signer = self.ring.signer(replica).ok_or("no such replica")?;
        match b {
            Behaviour::Silent => Ok(silent()),
            // Votes re-signed over a corrupted VRF proof: the signature is the sender's own, so
            // the forged proof is evidence against it.
            Behaviour::ForgeVrf => Ok(Box::new(move |_, mut s: Send<ProbftMsg>, _| {
                if let ProbftMsg::Vote(v) = &*s.msg {
                    let mut v: Vote = (**v).clone();
                    v.proof[40] ^= 0x55;
                    let d = probft::value_digest(&v.value);
                    v.sig = signer.sign(&probft::vote_statement(
                        v.phase, v.slot, v.view, &d, &v.proof,
                    ));
                    s.msg = Arc::new(ProbftMsg::Vote(Arc::new(v)));
                }
                vec![s]
            })),
            // As leader: another signed value for the odd-numbered replicas.
            Behaviour::Equivocate => Ok(Box::new(move |_, mut s: Send<ProbftMsg>, _| {
                if let ProbftMsg::Propose(p) = &*s.msg {
                    if s.to % 2 == 1 && p.justify.is_empty() {
                        let value: Arc<[u8]> = [&p.value[..], b"-twin"].concat().into();
                        let d = probft::value_digest(&value);
                        let twin = Proposal {
                            value,
                            sig: signer.sign(&probft::proposal_statement(p.slot, p.view, &d)),
                            ..(**p).clone()
                        };
                        s.msg = Arc::new(ProbftMsg::Propose(Arc::new(twin)));
                    }
                }
                vec![s]
            })),
            Behaviour::Honest => Err("honest is not a fault".into()),
        }
    }
    fn take_events(&self, p: &mut probft::Replica) -> Vec<EngineEvent> {
        p.take_integrity_events()
    }
}
