//! # Consensus engines hosted by the companion (PBFT, T-PBFT, ProBFT, Bullshark)
//!
//! For a single machine the companion runs each enabled consensus engine as an *in-process
//! cluster*: `n` replicas of the engine's sans-IO state machine (`dwcp_engines::{pbft, tpbft,
//! probft, bullshark}`, all on `dwcp_engines::sim::Protocol`) driven by one tokio task ([`cluster`]) with an
//! in-memory network (every send is queued and delivered in order, no loss), real timers
//! (milliseconds since the cluster started, `tokio::time::sleep_until` the next deadline) and real
//! signatures: ed25519 keys generated at start from OS randomness, ProBFT's RFC 9381 ECVRF keys
//! likewise. Durable writes (`Outbox::writes`) are dropped: the cluster lives as long as the process.
//!
//! What one engine needs from the host is the [`HostedEngine`] trait: build the replicas, turn a
//! client transaction into inputs, say which committed output is which transaction and where it sits
//! in the log (for the cross-replica conflict check), name message kinds and view changes for the
//! metrics, report per-replica height and view plus engine extras (T-PBFT trust vector and
//! committee, ProBFT sample parameters, Bullshark DAG round, committed leaders and GC round), and
//! build the Byzantine mutators the fault route installs. PBFT and T-PBFT are in [`engines`],
//! ProBFT in [`probft`], Bullshark in [`bullshark`] (a transaction goes to one validator's worker;
//! each validator's committed sequence is numbered as it drains, so the conflict check compares
//! entry `i` of every honest log; height = committed leaders, no views). The driver, the HTTP face,
//! the metrics and the signal fan-out are generic.
//!
//! Signals: every alarm an *honest* replica raises (equivocation, bad signature, forged VRF proof,
//! …) becomes `ByzantineAttackDetected` with the engine's name; a committed output that differs
//! between two honest replicas at one log position (checked by the host), and ProBFT's conflicting
//! decision certificates, become `DataIntegrityViolation`. They go to `EngineHost::events`, so the
//! rollout judgment aborts the rollouts whose config names that engine (`engine = "tpbft"`, triggers
//! 5 and 6) and no other. A Byzantine replica's own alarms are ignored, as in the simulator. One
//! event per (kind, suspect) per second is forwarded; every alarm is counted in
//! `dwcp_consensus_byzantine_detections_total`.
//!
//! Faults (`POST /v1/engines/{engine}/faults`, operator): one replica at a time may be switched to
//! `equivocate` (a second signed vote for another digest — PBFT and T-PBFT prepares; ProBFT: a second
//! signed proposal to half the replicas when it leads; Bullshark: a second signed header for the
//! same `(author, round)` to the `f` validators after it, the first to the rest, so the first is
//! certified and its certificate convicts the author), `forge_vrf` (ProBFT: votes re-signed over a
//! corrupted VRF proof), `silent` (sends nothing) or back to `honest`; at most `f` at once. The
//! mutators have the shape of `sim::adversary::Fault::Mutate` (one send in, sends out); the host
//! switches them at run time on the live replica (`sim::Adversary` fixes its faults when it wraps a
//! fresh node and is not `Send`).
//!
//! Not done: pointing an engine at `dwcp-node` processes instead of the in-process cluster.

pub mod bullshark;
pub mod cluster;
pub mod engines;
pub mod handle;
pub mod http;
pub mod metrics;
pub mod probft;

use std::collections::BTreeMap;
use std::sync::Arc;

use dwcp_core::signals::EngineEvent;
use dwcp_engines::sim::crypto::Digest32;
use dwcp_engines::sim::outbox::Send;
use dwcp_engines::sim::protocol::{NodeId, Protocol};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use handle::ClusterHandle;

/// The consensus engines the companion can host, in route order.
pub const ENGINES: [&str; 4] = ["pbft", "tpbft", "probft", "bullshark"];

/// What a replica does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Honest,
    Equivocate,
    ForgeVrf,
    Silent,
}

impl Behaviour {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Honest => "honest",
            Self::Equivocate => "equivocate",
            Self::ForgeVrf => "forge_vrf",
            Self::Silent => "silent",
        }
    }
}

/// A send rewriter installed on a Byzantine replica (one send in, any number out).
pub type Mutator<M> =
    Box<dyn FnMut(u64, Send<M>, &mut ChaCha8Rng) -> Vec<Send<M>> + core::marker::Send>;

/// Where a committed output sits and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRef {
    /// Log position (engine-defined, e.g. `(epoch, seq, pos)`): two honest replicas must commit the
    /// same `digest` there.
    pub position: (u64, u64, u64),
    pub digest: Digest32,
    /// The client transaction it is, if one of ours.
    pub tx: Option<u64>,
    /// The decision (batch, slot) it belongs to: distinct ones count in `decisions`.
    pub batch: (u64, u64),
}

/// One engine as the host drives it (see the module doc).
pub trait HostedEngine: core::marker::Send + 'static {
    type P: Protocol + core::marker::Send + 'static;
    /// The engine name in routes, metrics and signals.
    fn name(&self) -> &'static str;
    fn n(&self) -> u32;
    /// Byzantine replicas tolerated.
    fn f(&self) -> u32;
    /// The `n` honest replicas.
    fn replicas(&mut self) -> Vec<Self::P>;
    /// The inputs client transaction `tx` becomes, `to` being the replica chosen for it.
    fn submit(
        &mut self,
        tx: u64,
        payload: &[u8],
        to: NodeId,
    ) -> Vec<(NodeId, <Self::P as Protocol>::Input)>;
    fn commit_ref(&self, o: &<Self::P as Protocol>::Output) -> CommitRef;
    /// Metric label of a message.
    fn msg_kind(&self, m: &<Self::P as Protocol>::Msg) -> &'static str;
    /// `(scope, view)` if `m` asks for a view change (scope: epoch or slot; 0 for PBFT).
    fn view_change(&self, m: &<Self::P as Protocol>::Msg) -> Option<(u64, u64)>;
    /// `(committed height, view)` of one replica; `decided` = outputs it committed so far.
    fn replica_status(&self, p: &Self::P, decided: u64) -> (u64, u64);
    /// Engine-specific status fields (trust vector, committee, sample parameters), read from the
    /// first honest replica.
    fn extras(&self, p: &Self::P) -> serde_json::Value;
    /// The mutator that makes `replica` behave so, or why this engine has no such behaviour.
    fn mutator(
        &self,
        replica: NodeId,
        b: Behaviour,
    ) -> Result<Mutator<<Self::P as Protocol>::Msg>, String>;
    /// Signals a replica keeps outside its outbox (ProBFT's conflicting decision certificates).
    fn take_events(&self, _p: &mut Self::P) -> Vec<EngineEvent> {
        Vec::new()
    }
}

/// `[consensus.<engine>]` of the companion TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub n: Option<u32>,
    /// T-PBFT committee size (`3f_c + 1`).
    pub committee: Option<u32>,
    /// How long `POST .../tx` waits for the commit before answering 202.
    #[serde(default = "default_wait")]
    pub tx_wait_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_wait() -> u64 {
    5_000
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            n: None,
            committee: None,
            tx_wait_ms: default_wait(),
        }
    }
}

/// `[consensus]`: one table per engine; absent tables take the defaults (enabled; PBFT n = 4,
/// T-PBFT n = 16 with a committee of 4, ProBFT n = 16, Bullshark n = 4).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    #[serde(default)]
    pub pbft: EngineConfig,
    #[serde(default)]
    pub tpbft: EngineConfig,
    #[serde(default)]
    pub probft: EngineConfig,
    #[serde(default)]
    pub bullshark: EngineConfig,
}

/// Largest cluster the host runs in process.
pub const MAX_N: u32 = 64;

impl ConsensusConfig {
    /// Validated sizes; errors are `(field, message)` with the field under `consensus.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let f = |e: &str, k: &str| format!("consensus.{e}.{k}");
        for (name, c, default_n) in [
            ("pbft", &self.pbft, 4),
            ("tpbft", &self.tpbft, 16),
            ("probft", &self.probft, 16),
            ("bullshark", &self.bullshark, 4),
        ] {
            let n = c.n.unwrap_or(default_n);
            if !(4..=MAX_N).contains(&n) {
                return Err((f(name, "n"), format!("must be between 4 and {MAX_N}")));
            }
            if !(100..=60_000).contains(&c.tx_wait_ms) {
                return Err((
                    f(name, "tx_wait_ms"),
                    "must be between 100 and 60000".into(),
                ));
            }
            match (name, c.committee) {
                ("tpbft", Some(k)) if k < 4 || k > n || (k - 1) % 3 != 0 => {
                    return Err((
                        f(name, "committee"),
                        format!("must be 3f+1 with f >= 1 and at most n = {n}"),
                    ))
                }
                ("tpbft", _) => {}
                (_, Some(_)) => {
                    return Err((f(name, "committee"), "only T-PBFT has a committee".into()))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The running clusters, by engine name.
pub struct ConsensusHost {
    pub clusters: BTreeMap<&'static str, ClusterHandle>,
}

impl ConsensusHost {
    /// Start every enabled engine on the current tokio runtime; signals go to `events`.
    pub fn start(cfg: &ConsensusConfig, events: broadcast::Sender<EngineEvent>) -> Arc<Self> {
        let mut clusters = BTreeMap::new();
        if cfg.pbft.enabled {
            let e = engines::Pbft::new(cfg.pbft.n.unwrap_or(4));
            clusters.insert(
                "pbft",
                cluster::spawn(e, events.clone(), cfg.pbft.tx_wait_ms),
            );
        }
        if cfg.tpbft.enabled {
            let n = cfg.tpbft.n.unwrap_or(16);
            let e = engines::Tpbft::new(n, cfg.tpbft.committee.unwrap_or(4.min(n)));
            clusters.insert(
                "tpbft",
                cluster::spawn(e, events.clone(), cfg.tpbft.tx_wait_ms),
            );
        }
        if cfg.probft.enabled {
            let e = engines::Probft::new(cfg.probft.n.unwrap_or(16));
            clusters.insert(
                "probft",
                cluster::spawn(e, events.clone(), cfg.probft.tx_wait_ms),
            );
        }
        if cfg.bullshark.enabled {
            let e = bullshark::Bullshark::new(cfg.bullshark.n.unwrap_or(4));
            clusters.insert(
                "bullshark",
                cluster::spawn(e, events, cfg.bullshark.tx_wait_ms),
            );
        }
        Arc::new(Self { clusters })
    }
}
